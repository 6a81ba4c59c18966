//! AdamW in two formulas that must not be confused: the seed's `AdamW_GCC` and torch's `AdamW`.

use burn::optim::{LearningRate, Optimizer};
use burn::tensor::{Device, Tensor};

use super::adam::{AdamState, validate_moments};
use super::rule::{Moments, Rule};
use super::{Gc, GcOptimizer};
use crate::error::{GcError, check};

/// Which AdamW update rule to use. They differ in where ε sits and how the decay is scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AdamWFormula {
    /// The seed's `AdamW_GC`/`AdamW_GCC` (its `algorithm/Adam.py`):
    ///
    /// ```text
    /// s = lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ)
    /// Δ = s·(λ·w + m/(√v + ε))          decay scaled by the bias-corrected step
    /// ```
    #[default]
    Seed,
    /// `torch.optim.AdamW`:
    ///
    /// ```text
    /// w = w·(1 − lr·λ)
    /// Δ = lr/(1 − β₁ᵗ) · m/(√v/√(1 − β₂ᵗ) + ε)
    /// ```
    Torch,
}

/// Configuration of [`AdamW`]: decoupled weight decay, GC on the raw gradient (the decay is never
/// centralized on the gradient; with `Placement::Update` the whole update, decay included, is).
///
/// Defaults: the seed's formula, betas (0.9, 0.999), eps 1e-8, weight decay 0 (the seed's default;
/// [`AdamWConfig::torch`] starts from torch's 1e-2). burn's own AdamW uses eps 1e-5 and decay 1e-4.
///
/// ```
/// use gradient_centralization::optim::{AdamWConfig, AdamWFormula};
///
/// let seed = AdamWConfig::new().with_weight_decay(5e-4).build().unwrap();
/// let torch = AdamWConfig::torch().build().unwrap();
/// assert_eq!(AdamWConfig::torch().formula(), AdamWFormula::Torch);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    formula: AdamWFormula,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    amsgrad: bool,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            formula: AdamWFormula::Seed,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
        }
    }
}

impl AdamWConfig {
    /// The seed's formula with its defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// torch's formula with torch's defaults (weight decay 1e-2).
    pub fn torch() -> Self {
        Self {
            formula: AdamWFormula::Torch,
            weight_decay: 1e-2,
            ..Self::default()
        }
    }

    /// The formula.
    pub fn formula(&self) -> AdamWFormula {
        self.formula
    }

    /// Choose the formula.
    pub fn with_formula(mut self, formula: AdamWFormula) -> Self {
        self.formula = formula;
        self
    }

    /// The moment decay rates β₁, β₂, each in [0, 1).
    pub fn with_betas(mut self, beta1: f64, beta2: f64) -> Self {
        self.betas = (beta1, beta2);
        self
    }

    /// ε added to the denominator (>= 0, as torch accepts).
    pub fn with_eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Decoupled weight decay λ.
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// AMSGrad: divide by the running maximum of the second moment.
    pub fn with_amsgrad(mut self, amsgrad: bool) -> Self {
        self.amsgrad = amsgrad;
        self
    }

    /// Validate and build the optimizer (without GC; the plan adds it per parameter group).
    pub fn build(&self) -> Result<AdamW, GcError> {
        validate_moments(self.betas, self.eps)?;
        check(
            "weight_decay",
            self.weight_decay,
            self.weight_decay >= 0.0,
            "a finite number >= 0",
        )?;
        Ok(AdamW {
            config: *self,
            gc: Gc::NONE,
        })
    }
}

/// AdamW with decoupled decay (see [`AdamWConfig`] and [`AdamWFormula`]).
#[derive(Debug, Clone)]
pub struct AdamW {
    config: AdamWConfig,
    gc: Gc,
}

impl Optimizer for AdamW {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let AdamWConfig {
            formula,
            betas,
            eps,
            weight_decay,
            amsgrad,
        } = self.config;
        let (tensor, grad, state) = if amsgrad {
            (tensor, grad, state)
        } else {
            let (correction1, correction2) = AdamState::next_corrections(&state, betas);
            let moments = AdamState::<D>::moments(betas);
            let (eps32, wd) = (eps as f32, weight_decay as f32);
            // One loop per case, the decay's branch outside it (see sgd.rs).
            let fused = match (formula, weight_decay != 0.0) {
                (AdamWFormula::Seed, decays) => {
                    let step = (lr * correction2.sqrt() / correction1) as f32;
                    let wd = if decays { wd } else { 0.0 };
                    let rule = Rule::AdamWSeed {
                        moments: Moments::of(betas),
                        eps: eps32,
                        decay: wd,
                        step,
                    };
                    let update = move |w, d, ms| {
                        let [m, v] = moments(d, ms);
                        let direction = m / (v.sqrt() + eps32) + w * wd;
                        (w - direction * step, [m, v])
                    };
                    AdamState::fused(tensor, grad, state, self.gc, 0.0, update, rule)
                }
                (AdamWFormula::Torch, decays) => {
                    let (sqrt_c2, step) = (correction2.sqrt() as f32, (lr / correction1) as f32);
                    let lr_wd = if decays {
                        (lr * weight_decay) as f32
                    } else {
                        0.0
                    };
                    let rule = Rule::AdamWTorch {
                        moments: Moments::of(betas),
                        root2: sqrt_c2,
                        eps: eps32,
                        step,
                        decay: lr_wd,
                    };
                    let update = move |w, d, ms| {
                        let [m, v] = moments(d, ms);
                        let delta = (m / (v.sqrt() / sqrt_c2 + eps32)) * step + w * lr_wd;
                        (w - delta, [m, v])
                    };
                    AdamState::fused(tensor, grad, state, self.gc, 0.0, update, rule)
                }
            };
            match fused {
                Ok(done) => return done,
                Err(declined) => declined,
            }
        };
        let grad = self.gc.on_gradient(grad);
        let (state, second) = AdamState::advance(state, grad, betas, amsgrad);

        let t = state.time as i32;
        let correction1 = 1.0 - betas.0.powi(t);
        let correction2 = 1.0 - betas.1.powi(t);
        let moment1 = state.moment1.clone();
        let delta = match formula {
            AdamWFormula::Seed => {
                let step = lr * correction2.sqrt() / correction1;
                let mut direction = moment1 / second.sqrt().add_scalar(eps);
                if weight_decay != 0.0 {
                    direction = direction + tensor.clone().mul_scalar(weight_decay);
                }
                direction.mul_scalar(step)
            }
            AdamWFormula::Torch => {
                let denom = second.sqrt().div_scalar(correction2.sqrt()).add_scalar(eps);
                let mut delta = (moment1 / denom).mul_scalar(lr / correction1);
                if weight_decay != 0.0 {
                    delta = delta + tensor.clone().mul_scalar(lr * weight_decay);
                }
                delta
            }
        };
        (tensor - self.gc.on_update(delta), Some(state))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.moved(device)
    }
}

impl GcOptimizer for AdamW {
    fn with_gc(&self, gc: Gc) -> Self {
        Self {
            config: self.config,
            gc,
        }
    }
}
