//! What the workspace's benchmarks share: their command-line arguments, the order of interleaved
//! rounds, medians and timing, and reading one parameter value to wait for an optimizer step.
//!
//! Every bench compares sides measured in the same run (never against a stored figure): each
//! round visits every side once, starting one side later than the round before ([`rotation`]),
//! so that no side always runs right after the same other one.

use std::str::FromStr;
use std::time::Instant;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// The bench's command-line arguments (cargo passes `--bench` first; it is ignored like any
/// argument no bench asks for).
#[derive(Debug, Clone)]
pub struct Args(Vec<String>);

impl Args {
    /// The arguments of this process.
    pub fn from_env() -> Self {
        Args(std::env::args().collect())
    }

    /// Arguments given directly (for tests).
    pub fn new(args: &[&str]) -> Self {
        Args(args.iter().map(|a| a.to_string()).collect())
    }

    /// All of them, program name first.
    pub fn all(&self) -> &[String] {
        &self.0
    }

    /// Whether `name` (e.g. `--quick`) was given.
    pub fn flag(&self, name: &str) -> bool {
        self.0.iter().any(|a| a == name)
    }

    /// The argument after `name`, if `name` was given.
    pub fn value(&self, name: &str) -> Option<&str> {
        let at = self.0.iter().position(|a| a == name)?;
        self.0.get(at + 1).map(String::as_str)
    }

    /// The argument after `name` parsed as a `T`; exits with a message naming the argument when
    /// it is missing or does not parse.
    pub fn parsed<T: FromStr>(&self, name: &str) -> Option<T> {
        self.0.iter().position(|a| a == name)?;
        match self.value(name).map(str::parse) {
            Some(Ok(value)) => Some(value),
            _ => {
                eprintln!(
                    "{name} needs a value of type {}",
                    std::any::type_name::<T>()
                );
                std::process::exit(2)
            }
        }
    }
}

/// The order in which round `round` visits `sides` sides: all of them, starting one side later
/// than the round before (`round`, `round + 1`, ... modulo `sides`).
pub fn rotation(round: usize, sides: usize) -> impl Iterator<Item = usize> {
    (0..sides).map(move |k| (k + round) % sides.max(1))
}

/// The middle value (the upper one of the two middle values of an even count).
///
/// # Panics
/// On an empty list.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Median and best seconds of `samples` timed calls of `f` after `warmup` untimed ones.
pub fn time(warmup: usize, samples: usize, mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..warmup {
        f();
    }
    let times: Vec<f64> = (0..samples)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    let best = times.iter().copied().fold(f64::INFINITY, f64::min);
    (median(times), best)
}

/// Which parameter [`param_value`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The first float parameter the module visits.
    First,
    /// The last one.
    Last,
}

/// One value of a float parameter of `module`: reading it waits for the operations that write
/// that parameter (burn's backends run lazily or asynchronously).
pub fn param_value<M: Module>(module: &M, which: Which) -> Option<f32> {
    struct Read {
        which: Which,
        value: Option<f32>,
    }
    impl ModuleVisitor for Read {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if self.which == Which::First && self.value.is_some() {
                return;
            }
            let first = param.val().flatten::<1>(0, D - 1).slice(0..1);
            self.value = Some(first.into_scalar::<f32>());
        }
    }
    let mut read = Read { which, value: None };
    module.visit(&mut read);
    read.value
}

/// Tells `perf record` (started with `--delay=-1 --control=fifo:CTL,ACK`) to start sampling
/// now, when the environment names its control and acknowledgement FIFOs (`GC_PERF_CTL`,
/// `GC_PERF_ACK`): so that a profile holds the measured steps, not the warm-up's first touch of
/// memory. Waits for perf's acknowledgement; does nothing without the variables.
pub fn perf_enable() {
    use std::io::{Read, Write};
    let (Some(ctl), Some(ack)) = (
        std::env::var_os("GC_PERF_CTL"),
        std::env::var_os("GC_PERF_ACK"),
    ) else {
        return;
    };
    let mut ctl = std::fs::OpenOptions::new()
        .write(true)
        .open(&ctl)
        .expect("GC_PERF_CTL names perf's control FIFO");
    ctl.write_all(b"enable\n")
        .expect("perf reads its control FIFO");
    // perf's reply is "ack\n", with NUL bytes around it (it writes C strings whole).
    let mut ack = std::fs::File::open(&ack).expect("GC_PERF_ACK names perf's acknowledgement FIFO");
    let mut reply = Vec::new();
    let mut byte = [0u8];
    while !reply.ends_with(b"ack\n") {
        ack.read_exact(&mut byte)
            .expect("perf acknowledges on GC_PERF_ACK");
        reply.push(byte[0]);
        assert!(reply.len() < 64, "perf's acknowledgement: {reply:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_by_name() {
        let args = Args::new(&["bench", "--bench", "--quick", "--rounds", "7", "resnet50"]);
        assert!(args.flag("--quick") && args.flag("resnet50") && !args.flag("--burn-ops"));
        assert_eq!(args.value("--rounds"), Some("7"));
        assert_eq!(args.parsed::<usize>("--rounds"), Some(7));
        assert_eq!(args.parsed::<usize>("--samples"), None);
    }

    #[test]
    fn each_round_starts_one_side_later() {
        let order: Vec<Vec<usize>> = (0..4).map(|r| rotation(r, 3).collect()).collect();
        assert_eq!(order, [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 1, 2]]);
        assert_eq!(rotation(5, 0).count(), 0);
    }

    #[test]
    fn the_median_is_the_upper_middle() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 3.0);
    }
}
