//! Learning-rate schedules of the seed's suites, with linear warmup.

use serde::{Deserialize, Serialize};

/// The learning rate over epochs, after warmup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// Multiply by `gamma` every `every` epochs (the seed's CIFAR-100: 0.1 every 60).
    Step {
        /// Epochs between decays.
        every: usize,
        /// Factor per decay.
        gamma: f64,
    },
    /// Multiply by `gamma` at each milestone epoch (the seed's fine-grained runs: 50 and 80).
    MultiStep {
        /// Epochs at which the rate decays.
        milestones: Vec<usize>,
        /// Factor per decay.
        gamma: f64,
    },
    /// Cosine from the base rate to 0 over the run.
    Cosine,
}

impl Schedule {
    /// The rate at `epoch` (from 0) and fraction `progress` ∈ [0, 1) through it, of `epochs` in all,
    /// with a linear warmup from ~0 over the first `warmup` epochs.
    pub fn lr(&self, base: f64, epoch: usize, progress: f64, epochs: usize, warmup: usize) -> f64 {
        let t = epoch as f64 + progress;
        if (t as usize) < warmup {
            return base * (t + 1e-3).min(warmup as f64) / warmup as f64;
        }
        match self {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => base * gamma.powi((epoch / (*every).max(1)) as i32),
            Schedule::MultiStep { milestones, gamma } => {
                base * gamma.powi(milestones.iter().filter(|&&m| epoch >= m).count() as i32)
            }
            Schedule::Cosine => {
                let span = (epochs.saturating_sub(warmup)).max(1) as f64;
                let done = (t - warmup as f64).max(0.0) / span;
                base * 0.5 * (1.0 + (std::f64::consts::PI * done.min(1.0)).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_step_schedule() {
        let s = Schedule::Step {
            every: 60,
            gamma: 0.1,
        };
        assert_eq!(s.lr(0.1, 59, 0.9, 200, 0), 0.1);
        assert!((s.lr(0.1, 60, 0.0, 200, 0) - 0.01).abs() < 1e-15);
        assert!((s.lr(0.1, 120, 0.0, 200, 0) - 0.001).abs() < 1e-15);
    }

    #[test]
    fn multistep_and_cosine_and_warmup() {
        let m = Schedule::MultiStep {
            milestones: vec![50, 80],
            gamma: 0.1,
        };
        assert!((m.lr(1.0, 79, 0.0, 100, 0) - 0.1).abs() < 1e-12);
        assert!((m.lr(1.0, 80, 0.0, 100, 0) - 0.01).abs() < 1e-12);
        let c = Schedule::Cosine;
        assert!((c.lr(1.0, 5, 0.0, 10, 0) - 0.5).abs() < 1e-12);
        assert!(c.lr(1.0, 9, 0.99, 10, 0) < 0.01);
        // warmup: linear from ~0 to the base over 2 epochs, then the schedule
        assert!(Schedule::Constant.lr(1.0, 0, 0.0, 10, 2) < 0.01);
        assert!((Schedule::Constant.lr(1.0, 1, 0.0, 10, 2) - 0.5005).abs() < 1e-9);
        assert_eq!(Schedule::Constant.lr(1.0, 2, 0.0, 10, 2), 1.0);
    }
}
