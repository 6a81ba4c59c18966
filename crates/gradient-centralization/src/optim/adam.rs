//! Adam as the seed's `Adam_GC` / `Adam_GCC` (and `*_GC2`) compute it: coupled L2, then GC.

use burn::optim::{LearningRate, Optimizer, RecordState};
use burn::tensor::{Device, Tensor};

use super::rule::{Moments, Rule};
use super::{Gc, GcOptimizer};
use crate::error::{GcError, check};

/// Configuration of the seed-exact [`Adam`]. Defaults are PyTorch's: betas (0.9, 0.999), eps 1e-8
/// (burn's Adam uses 1e-5), no decay, no AMSGrad.
///
/// Per step `t` (from 1):
///
/// ```text
/// g = GC(g + λ·w)                                   (GC only with Placement::Gradient)
/// m = β₁·m + (1 − β₁)·g        v = β₂·v + (1 − β₂)·g²      (AMSGrad: v̂ = max(v̂, v), used for v)
/// Δ = lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
/// w = w − GC(Δ)                                     (GC only with Placement::Update: "Adam_GC2")
/// ```
///
/// ```
/// use gradient_centralization::optim::AdamConfig;
///
/// let adam = AdamConfig::new().with_weight_decay(5e-4).build().unwrap();
/// assert!(AdamConfig::new().with_betas(0.9, 1.0).build().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    amsgrad: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
        }
    }
}

impl AdamConfig {
    /// PyTorch's defaults.
    pub fn new() -> Self {
        Self::default()
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

    /// Coupled L2 weight decay λ (added to the gradient before GC).
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
    pub fn build(&self) -> Result<Adam, GcError> {
        validate_moments(self.betas, self.eps)?;
        check(
            "weight_decay",
            self.weight_decay,
            self.weight_decay >= 0.0,
            "a finite number >= 0",
        )?;
        Ok(Adam {
            config: *self,
            gc: Gc::NONE,
        })
    }
}

pub(super) fn validate_moments(betas: (f64, f64), eps: f64) -> Result<(), GcError> {
    check(
        "betas[0]",
        betas.0,
        (0.0..1.0).contains(&betas.0),
        "a number in [0, 1)",
    )?;
    check(
        "betas[1]",
        betas.1,
        (0.0..1.0).contains(&betas.1),
        "a number in [0, 1)",
    )?;
    check("eps", eps, eps >= 0.0, "a finite number >= 0")
}

/// The seed-exact Adam (see [`AdamConfig`] for the update rule).
#[derive(Debug, Clone)]
pub struct Adam {
    config: AdamConfig,
    gc: Gc,
}

/// Moments of the Adam family, shared by [`Adam`] and [`AdamW`](super::AdamW).
#[derive(RecordState, Clone)]
pub struct AdamState<const D: usize> {
    /// First moment `m`.
    pub moment1: Tensor<D>,
    /// Second moment `v`.
    pub moment2: Tensor<D>,
    /// Running maximum of `v` (AMSGrad only).
    pub max_moment2: Option<Tensor<D>>,
    /// Steps taken, `t`.
    pub time: usize,
}

impl<const D: usize> AdamState<D> {
    /// Advance the moments with gradient `g`; returns the state at step `t` and the second moment
    /// to divide by (the AMSGrad maximum when enabled).
    pub(super) fn advance(
        state: Option<Self>,
        grad: Tensor<D>,
        (beta1, beta2): (f64, f64),
        amsgrad: bool,
    ) -> (Self, Tensor<D>) {
        let square = grad.clone().square();
        let next = match state {
            // Moments start at zero, so the first update is (1 − β)·g exactly.
            None => {
                let moment2 = square.mul_scalar(1.0 - beta2);
                AdamState {
                    moment1: grad.mul_scalar(1.0 - beta1),
                    max_moment2: amsgrad.then(|| moment2.clone()),
                    moment2,
                    time: 1,
                }
            }
            Some(state) => {
                let moment2 = state.moment2.mul_scalar(beta2) + square.mul_scalar(1.0 - beta2);
                AdamState {
                    moment1: state.moment1.mul_scalar(beta1) + grad.mul_scalar(1.0 - beta1),
                    max_moment2: match (amsgrad, state.max_moment2) {
                        (false, _) => None,
                        (true, Some(max)) => Some(max.max_pair(moment2.clone())),
                        (true, None) => Some(moment2.clone()),
                    },
                    moment2,
                    time: state.time + 1,
                }
            }
        };
        let second = next.max_moment2.clone().unwrap_or(next.moment2.clone());
        (next, second)
    }

    /// The bias corrections `(1 − β₁ᵗ, 1 − β₂ᵗ)` of the step that follows `state`.
    pub(super) fn next_corrections(state: &Option<Self>, (beta1, beta2): (f64, f64)) -> (f64, f64) {
        let t = state.as_ref().map_or(1, |s| s.time + 1) as i32;
        (1.0 - beta1.powi(t), 1.0 - beta2.powi(t))
    }

    /// The moment updates of [`advance`](Self::advance) for one element (without AMSGrad), for
    /// the fused kernels: the first step's zero moments give `(1 − β)·g` exactly, as there.
    pub(super) fn moments(
        (beta1, beta2): (f64, f64),
    ) -> impl Fn(f32, [f32; 2]) -> [f32; 2] + Sync + Copy {
        let (b1, b2) = (beta1 as f32, beta2 as f32);
        let (k1, k2) = ((1.0 - beta1) as f32, (1.0 - beta2) as f32);
        move |g, [m, v]| [m * b1 + g * k1, v * b2 + (g * g) * k2]
    }

    /// One fused step: on flex `update(w, d, [m, v])` gives the new weight and moments (see
    /// `fused`), on a GPU `rule` does (see `cube`).
    #[allow(clippy::type_complexity)]
    pub(super) fn fused(
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self>,
        gc: super::Gc,
        l2: f64,
        update: impl Fn(f32, f32, [f32; 2]) -> (f32, [f32; 2]) + Sync,
        rule: Rule,
    ) -> Result<(Tensor<D>, Option<Self>), (Tensor<D>, Tensor<D>, Option<Self>)> {
        let time = state.as_ref().map_or(0, |s| s.time);
        let l2 = l2 as f32;
        super::fused::step(
            tensor,
            grad,
            state.map(|s| [s.moment1, s.moment2]),
            gc,
            l2,
            update,
        )
        .or_else(|(w, g, s)| super::cube::step(w, g, s, gc, l2, rule))
        .map(|(w, [moment1, moment2])| {
            (
                w,
                Some(AdamState {
                    moment1,
                    moment2,
                    max_moment2: None,
                    time: time + 1,
                }),
            )
        })
        .map_err(|(w, g, s)| {
            (
                w,
                g,
                s.map(|[moment1, moment2]| AdamState {
                    moment1,
                    moment2,
                    max_moment2: None,
                    time,
                }),
            )
        })
    }

    pub(super) fn moved(self, device: &Device) -> Self {
        AdamState {
            moment1: self.moment1.to_device(device),
            moment2: self.moment2.to_device(device),
            max_moment2: self.max_moment2.map(|max| max.to_device(device)),
            time: self.time,
        }
    }
}

impl Optimizer for Adam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let AdamConfig {
            betas,
            eps,
            weight_decay,
            amsgrad,
        } = self.config;
        let (tensor, grad, state) = if amsgrad {
            (tensor, grad, state)
        } else {
            let (correction1, correction2) = AdamState::next_corrections(&state, betas);
            let (sqrt_c2, eps32, step) = (
                correction2.sqrt() as f32,
                eps as f32,
                (lr / correction1) as f32,
            );
            let moments = AdamState::<D>::moments(betas);
            match AdamState::fused(
                tensor,
                grad,
                state,
                self.gc,
                weight_decay,
                move |w, d, ms| {
                    let [m, v] = moments(d, ms);
                    let denom = v.sqrt() / sqrt_c2 + eps32;
                    (w - (m / denom) * step, [m, v])
                },
                Rule::Adam {
                    moments: Moments::of(betas),
                    root2: sqrt_c2,
                    eps: eps32,
                    step,
                },
            ) {
                Ok(done) => return done,
                Err(declined) => declined,
            }
        };
        let mut grad = grad;
        if weight_decay != 0.0 {
            grad = grad + tensor.clone().mul_scalar(weight_decay);
        }
        let grad = self.gc.on_gradient(grad);
        let (state, second) = AdamState::advance(state, grad, betas, amsgrad);

        let t = state.time as i32;
        let correction1 = 1.0 - betas.0.powi(t);
        let correction2 = 1.0 - betas.1.powi(t);
        let denom = second.sqrt().div_scalar(correction2.sqrt()).add_scalar(eps);
        let delta = (state.moment1.clone() / denom).mul_scalar(lr / correction1);
        (tensor - self.gc.on_update(delta), Some(state))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.moved(device)
    }
}

impl GcOptimizer for Adam {
    fn with_gc(&self, gc: Gc) -> Self {
        Self {
            config: self.config,
            gc,
        }
    }
}
