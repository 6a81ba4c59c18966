//! Adagrad as the seed's `Adagrad_GCC` computes it: coupled L2, then GC.

use burn::optim::{LearningRate, Optimizer, RecordState};
use burn::tensor::{Device, Tensor};

use super::rule::Rule;
use super::{Gc, GcOptimizer};
use crate::error::{GcError, check};

/// Configuration of the seed-exact [`Adagrad`]. Defaults are PyTorch's: lr_decay 0,
/// initial_accumulator_value 0, eps 1e-10 (burn's AdaGrad uses 1e-5 and has no initial value).
///
/// Per step `t` (from 1):
///
/// ```text
/// g = GC(g + λ·w)                         (GC only with Placement::Gradient)
/// s = s + g²                              (s starts at initial_accumulator_value)
/// Δ = lr/(1 + (t − 1)·lr_decay) · g/(√s + ε)
/// w = w − GC(Δ)                           (GC only with Placement::Update)
/// ```
///
/// ```
/// use gradient_centralization::optim::AdagradConfig;
///
/// let adagrad = AdagradConfig::new().with_initial_accumulator_value(0.1).build().unwrap();
/// assert!(AdagradConfig::new().with_eps(-1e-10).build().is_err()); // torch accepts eps >= 0
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdagradConfig {
    lr_decay: f64,
    weight_decay: f64,
    initial_accumulator_value: f64,
    eps: f64,
}

impl Default for AdagradConfig {
    fn default() -> Self {
        Self {
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
        }
    }
}

impl AdagradConfig {
    /// PyTorch's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Learning-rate decay per step (>= 0).
    pub fn with_lr_decay(mut self, lr_decay: f64) -> Self {
        self.lr_decay = lr_decay;
        self
    }

    /// Coupled L2 weight decay λ (added to the gradient before GC).
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// The value the squared-gradient sum starts from (>= 0).
    pub fn with_initial_accumulator_value(mut self, value: f64) -> Self {
        self.initial_accumulator_value = value;
        self
    }

    /// ε added to the denominator (>= 0, as torch accepts).
    pub fn with_eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Validate and build the optimizer (without GC; the plan adds it per parameter group).
    pub fn build(&self) -> Result<Adagrad, GcError> {
        check(
            "lr_decay",
            self.lr_decay,
            self.lr_decay >= 0.0,
            "a finite number >= 0",
        )?;
        check(
            "weight_decay",
            self.weight_decay,
            self.weight_decay >= 0.0,
            "a finite number >= 0",
        )?;
        check(
            "initial_accumulator_value",
            self.initial_accumulator_value,
            self.initial_accumulator_value >= 0.0,
            "a finite number >= 0",
        )?;
        check("eps", self.eps, self.eps >= 0.0, "a finite number >= 0")?;
        Ok(Adagrad {
            config: *self,
            gc: Gc::NONE,
        })
    }
}

/// The seed-exact Adagrad (see [`AdagradConfig`] for the update rule).
#[derive(Debug, Clone)]
pub struct Adagrad {
    config: AdagradConfig,
    gc: Gc,
}

/// State of [`Adagrad`].
#[derive(RecordState, Clone)]
pub struct AdagradState<const D: usize> {
    /// Running sum of squared gradients `s`.
    pub sum: Tensor<D>,
    /// Steps taken, `t`.
    pub time: usize,
}

impl Optimizer for Adagrad {
    type State<const D: usize> = AdagradState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let AdagradConfig {
            lr_decay,
            weight_decay,
            initial_accumulator_value,
            eps,
        } = self.config;
        let time = state.as_ref().map_or(0, |s| s.time);
        let first = state.is_none();
        let clr = (lr / (1.0 + time as f64 * lr_decay)) as f32;
        let (init, eps32) = (initial_accumulator_value as f32, eps as f32);
        // The first step's branch outside the per-element loop (see sgd.rs).
        let fused = if first {
            super::fused::step(
                tensor,
                grad,
                None,
                self.gc,
                weight_decay as f32,
                move |w, d, [_]| {
                    let sum = d * d + init;
                    (w - (d / (sum.sqrt() + eps32)) * clr, [sum])
                },
            )
        } else {
            super::fused::step(
                tensor,
                grad,
                state.map(|s| [s.sum]),
                self.gc,
                weight_decay as f32,
                move |w, d, [sum]| {
                    let sum = sum + d * d;
                    (w - (d / (sum.sqrt() + eps32)) * clr, [sum])
                },
            )
        };
        let rule = Rule::Adagrad {
            init,
            eps: eps32,
            lr: clr,
        };
        let fused = fused
            .or_else(|(w, g, s)| super::cube::step(w, g, s, self.gc, weight_decay as f32, rule));
        let (tensor, grad, state) = match fused {
            Ok((w, [sum])) => {
                return (
                    w,
                    Some(AdagradState {
                        sum,
                        time: time + 1,
                    }),
                );
            }
            Err((w, g, s)) => (w, g, s.map(|[sum]| AdagradState { sum, time })),
        };
        let mut grad = grad;
        if weight_decay != 0.0 {
            grad = grad + tensor.clone().mul_scalar(weight_decay);
        }
        let grad = self.gc.on_gradient(grad);
        let square = grad.clone().square();
        let state = match state {
            None => AdagradState {
                sum: square.add_scalar(initial_accumulator_value),
                time: 1,
            },
            Some(state) => AdagradState {
                sum: state.sum + square,
                time: state.time + 1,
            },
        };
        let clr = lr / (1.0 + (state.time - 1) as f64 * lr_decay);
        let delta = (grad / state.sum.clone().sqrt().add_scalar(eps)).mul_scalar(clr);
        (tensor - self.gc.on_update(delta), Some(state))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        AdagradState {
            sum: state.sum.to_device(device),
            time: state.time,
        }
    }
}

impl GcOptimizer for Adagrad {
    fn with_gc(&self, gc: Gc) -> Self {
        Self {
            config: self.config,
            gc,
        }
    }
}
