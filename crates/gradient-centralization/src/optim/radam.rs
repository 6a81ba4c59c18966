//! RAdam as the seed's `algorithm-GC/algorithm/RAdam.py` computes it, GC on the gradient or on the
//! update; the seed's buffer aliasing on its unrectified steps only behind a switch.

use burn::optim::{LearningRate, Optimizer};
use burn::tensor::{Device, Tensor};

use super::adam::{AdamState, validate_moments};
use super::{Gc, GcOptimizer};
use crate::error::{GcError, check};

/// When RAdam trusts its variance estimate: the length of the approximated simple moving average,
/// `ρₜ`, compared with a threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rectify {
    /// `ρₜ ≥ threshold` (the seed's RAdam: 5).
    AtLeast(f64),
    /// `ρₜ > threshold` (the seed's Ranger: `N_sma_threshhold` 5).
    Above(f64),
}

impl Rectify {
    fn holds(self, rho: f64) -> bool {
        match self {
            Rectify::AtLeast(threshold) => rho >= threshold,
            Rectify::Above(threshold) => rho > threshold,
        }
    }

    fn threshold(self) -> f64 {
        match self {
            Rectify::AtLeast(threshold) | Rectify::Above(threshold) => threshold,
        }
    }
}

/// What RAdam stores as its first moment after an unrectified step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FirstMoment {
    /// The running average of the gradients, as the formula has it.
    #[default]
    Average,
    /// The step's update direction `u` (decay and GC on the update included), as the seed's code
    /// leaves it: there `G_grad = exp_avg` is the stored moment itself, which the in-place
    /// `add_` of the decay and the in-place GC then change (`algorithm-GC/algorithm/RAdam.py`,
    /// lines 97-103; `Ranger.py`, lines 152-158).
    SeedOverwritten,
}

/// Configuration of [`RAdam`] (Liu et al., "On the Variance of the Adaptive Learning Rate and
/// Beyond", 2019). Defaults are the seed's: betas (0.9, 0.999), eps 1e-8, no decay, rectified from
/// `ρₜ ≥ 5`; the first moment as the formula has it ([`FirstMoment::Average`]).
///
/// Per step `t` (from 1), with `ρ∞ = 2/(1 − β₂) − 1` and `ρₜ = ρ∞ − 2t·β₂ᵗ/(1 − β₂ᵗ)`:
///
/// ```text
/// g = GC(g)                                          (GC only with Placement::Gradient)
/// m = β₁·m + (1 − β₁)·g        v = β₂·v + (1 − β₂)·g²
/// rectified (ρₜ ≥ 5):  r = √((1 − β₂ᵗ)(ρₜ − 4)/(ρ∞ − 4)·(ρₜ − 2)/ρₜ·ρ∞/(ρ∞ − 2)) / (1 − β₁ᵗ)
///                      u = m/(√v + ε)
/// otherwise:           r = 1/(1 − β₁ᵗ),  u = m      (SGD with momentum: "degenerated to SGD")
/// u = GC(u + λ·w)                                    (decay always; GC only with Placement::Update)
/// w = w − (r·lr)·u
/// ```
///
/// The seed's code writes the unrectified `u` into its stored first moment (`G_grad = exp_avg`
/// aliases it, then the decay and GC are added in place), so from the first step the moment it
/// carries on differs from the formula above whenever there is decay or GC on the update.
/// [`FirstMoment::SeedOverwritten`] reproduces that.
///
/// ```
/// use gradient_centralization::optim::RAdamConfig;
///
/// let radam = RAdamConfig::new().with_weight_decay(5e-4).build().unwrap();
/// assert!(RAdamConfig::new().with_eps(-1.0).build().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RAdamConfig {
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    rectify: Rectify,
    first_moment: FirstMoment,
}

impl Default for RAdamConfig {
    fn default() -> Self {
        Self {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            rectify: Rectify::AtLeast(5.0),
            first_moment: FirstMoment::Average,
        }
    }
}

impl RAdamConfig {
    /// The seed's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The seed's Ranger defaults for its RAdam part: betas (0.95, 0.999), eps 1e-5, rectified
    /// from `ρₜ > 5`.
    pub fn ranger() -> Self {
        Self {
            betas: (0.95, 0.999),
            eps: 1e-5,
            rectify: Rectify::Above(5.0),
            ..Self::default()
        }
    }

    /// The moment decay rates β₁, β₂, each in [0, 1).
    pub fn with_betas(mut self, beta1: f64, beta2: f64) -> Self {
        self.betas = (beta1, beta2);
        self
    }

    /// ε added to `√v` (>= 0).
    pub fn with_eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Weight decay λ, added to the update direction `u` (after the adaptive division, before GC
    /// on the update) and so scaled by `r·lr`, as the seed does.
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// When the variance is trusted.
    pub fn with_rectify(mut self, rectify: Rectify) -> Self {
        self.rectify = rectify;
        self
    }

    /// What the first moment holds after an unrectified step.
    pub fn with_first_moment(mut self, first_moment: FirstMoment) -> Self {
        self.first_moment = first_moment;
        self
    }

    /// The betas.
    pub fn betas(&self) -> (f64, f64) {
        self.betas
    }

    /// Validate and build the optimizer (without GC; the plan adds it per parameter group).
    pub fn build(&self) -> Result<RAdam, GcError> {
        validate_moments(self.betas, self.eps)?;
        check(
            "weight_decay",
            self.weight_decay,
            self.weight_decay >= 0.0,
            "a finite number >= 0",
        )?;
        let threshold = self.rectify.threshold();
        check(
            "rectify threshold",
            threshold,
            threshold >= 0.0,
            "a finite number >= 0",
        )?;
        Ok(RAdam {
            config: *self,
            gc: Gc::NONE,
        })
    }
}

/// The seed-exact RAdam (see [`RAdamConfig`] for the update rule). Its state is [`AdamState`]
/// (no AMSGrad maximum).
#[derive(Debug, Clone)]
pub struct RAdam {
    config: RAdamConfig,
    gc: Gc,
}

/// The step size `r` and whether the step is rectified, at step `t` (from 1).
pub(super) fn rectification(t: usize, (beta1, beta2): (f64, f64), rectify: Rectify) -> (f64, bool) {
    let t_f = t as f64;
    let beta2_t = beta2.powf(t_f);
    let correction1 = 1.0 - beta1.powf(t_f);
    let rho_inf = 2.0 / (1.0 - beta2) - 1.0;
    let rho = rho_inf - 2.0 * t_f * beta2_t / (1.0 - beta2_t);
    if rectify.holds(rho) {
        // The seed's order of operations, left to right.
        let ratio = (1.0 - beta2_t) * (rho - 4.0) / (rho_inf - 4.0) * (rho - 2.0) / rho * rho_inf
            / (rho_inf - 2.0);
        (ratio.sqrt() / correction1, true)
    } else {
        (1.0 / correction1, false)
    }
}

impl Optimizer for RAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let RAdamConfig {
            betas,
            eps,
            weight_decay,
            rectify,
            first_moment,
        } = self.config;
        let grad = self.gc.on_gradient(grad);
        let (mut state, second) = AdamState::advance(state, grad, betas, false);
        let (r, rectified) = rectification(state.time, betas, rectify);
        let mut direction = if rectified {
            state.moment1.clone() / second.sqrt().add_scalar(eps)
        } else {
            state.moment1.clone()
        };
        if weight_decay != 0.0 {
            direction = direction + tensor.clone().mul_scalar(weight_decay);
        }
        let direction = self.gc.on_update(direction);
        if first_moment == FirstMoment::SeedOverwritten && !rectified {
            state.moment1 = direction.clone();
        }
        (tensor - direction.mul_scalar(r * lr), Some(state))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.moved(device)
    }
}

impl GcOptimizer for RAdam {
    fn with_gc(&self, gc: Gc) -> Self {
        Self {
            config: self.config,
            gc,
        }
    }
}
