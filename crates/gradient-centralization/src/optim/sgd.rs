//! SGD as the seed's `SGD_GC` / `SGD_GCC` / `SGDW_GCC` compute it.

use burn::optim::{LearningRate, Optimizer, RecordState};
use burn::tensor::{Device, Tensor};

use super::rule::Rule;
use super::{Gc, GcOptimizer};
use crate::error::{GcError, check};

/// How weight decay enters an update.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum WeightDecay {
    /// No decay.
    #[default]
    None,
    /// Coupled L2: `g ← g + λ·w` before GC, so GC sees the decay term (torch's SGD, the seed's
    /// `SGD_GC`).
    L2(f64),
    /// Decoupled: `w ← w − lr·λ·w_old` beside the gradient step, never centralized (the seed's
    /// `SGDW`, after Loshchilov & Hutter).
    Decoupled(f64),
}

impl WeightDecay {
    fn validate(&self) -> Result<(), GcError> {
        match *self {
            WeightDecay::None => Ok(()),
            WeightDecay::L2(wd) | WeightDecay::Decoupled(wd) => {
                check("weight_decay", wd, wd >= 0.0, "a finite number >= 0")
            }
        }
    }
}

/// Configuration of the seed-exact [`Sgd`]. Defaults are PyTorch's (dampening 0, unlike burn's 0.1).
///
/// Per step `t` (from 1), with `lr` the step's learning rate:
///
/// ```text
/// d = g + λ·w                       (WeightDecay::L2)
/// d = GC(d)                         (Placement::Gradient)
/// b = d  if t = 1  else  μ·b + (1 − τ)·d          (μ > 0)
/// d = d + μ·b  (nesterov)  or  b
/// Δ = lr·d  [+ lr·λ·w   (WeightDecay::Decoupled, pre-update w)]
/// Δ = GC(Δ)                         (Placement::Update)
/// w = w − Δ
/// ```
///
/// ```
/// use gradient_centralization::optim::{SgdConfig, WeightDecay};
///
/// let sgd = SgdConfig::new()
///     .with_momentum(0.9)
///     .with_weight_decay(WeightDecay::L2(5e-4))
///     .build()
///     .unwrap();
/// assert!(SgdConfig::new().with_nesterov(true).build().is_err()); // nesterov needs momentum
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SgdConfig {
    momentum: f64,
    dampening: f64,
    nesterov: bool,
    weight_decay: WeightDecay,
}

impl SgdConfig {
    /// Plain SGD: no momentum, no decay.
    pub fn new() -> Self {
        Self::default()
    }

    /// Momentum factor μ (PyTorch's `momentum`, default 0).
    pub fn with_momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }

    /// Dampening τ of the momentum buffer (default 0).
    pub fn with_dampening(mut self, dampening: f64) -> Self {
        self.dampening = dampening;
        self
    }

    /// Nesterov momentum (needs μ > 0 and τ = 0, as in PyTorch).
    pub fn with_nesterov(mut self, nesterov: bool) -> Self {
        self.nesterov = nesterov;
        self
    }

    /// Weight decay and how it couples.
    pub fn with_weight_decay(mut self, weight_decay: WeightDecay) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// Validate and build the optimizer (without GC; the plan adds it per parameter group).
    pub fn build(&self) -> Result<Sgd, GcError> {
        check(
            "momentum",
            self.momentum,
            self.momentum >= 0.0,
            "a finite number >= 0",
        )?;
        // torch.optim.SGD accepts any dampening.
        check("dampening", self.dampening, true, "a finite number")?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(GcError::Nesterov {
                momentum: self.momentum,
                dampening: self.dampening,
            });
        }
        self.weight_decay.validate()?;
        Ok(Sgd {
            config: *self,
            gc: Gc::NONE,
        })
    }
}

/// The seed-exact SGD (see [`SgdConfig`] for the update rule).
#[derive(Debug, Clone)]
pub struct Sgd {
    config: SgdConfig,
    gc: Gc,
}

/// State of [`Sgd`]: the momentum buffer (SGD without momentum keeps none).
#[derive(RecordState, Clone)]
pub struct SgdState<const D: usize> {
    /// The momentum buffer `b`.
    pub momentum: Tensor<D>,
}

impl Optimizer for Sgd {
    type State<const D: usize> = SgdState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let SgdConfig {
            momentum,
            dampening,
            nesterov,
            weight_decay,
        } = self.config;
        let (tensor, grad, state) = match self.fused(lr, tensor, grad, state) {
            Ok(done) => return done,
            Err(declined) => declined,
        };
        let mut d = grad;
        if let WeightDecay::L2(wd) = weight_decay
            && wd != 0.0
        {
            d = d + tensor.clone().mul_scalar(wd);
        }
        d = self.gc.on_gradient(d);

        let mut next = None;
        if momentum != 0.0 {
            let buf = match state {
                // torch: the first buffer is the gradient itself, undamped.
                None => d.clone(),
                Some(SgdState { momentum: buf }) => {
                    buf.mul_scalar(momentum) + d.clone().mul_scalar(1.0 - dampening)
                }
            };
            d = if nesterov {
                d + buf.clone().mul_scalar(momentum)
            } else {
                buf.clone()
            };
            next = Some(SgdState { momentum: buf });
        }

        let mut delta = d.mul_scalar(lr);
        if let WeightDecay::Decoupled(wd) = weight_decay
            && wd != 0.0
        {
            delta = delta + tensor.clone().mul_scalar(wd * lr);
        }
        (tensor - self.gc.on_update(delta), next)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        SgdState {
            momentum: state.momentum.to_device(device),
        }
    }
}

impl Sgd {
    /// The same step in one pass ([`fused`](super::fused)), or the inputs back.
    #[allow(clippy::type_complexity)]
    fn fused<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<SgdState<D>>,
    ) -> Result<(Tensor<D>, Option<SgdState<D>>), (Tensor<D>, Tensor<D>, Option<SgdState<D>>)> {
        let SgdConfig {
            momentum,
            dampening,
            nesterov,
            weight_decay,
        } = self.config;
        let (l2, decoupled) = match weight_decay {
            WeightDecay::None => (0.0, 0.0),
            WeightDecay::L2(wd) => (wd, 0.0),
            WeightDecay::Decoupled(wd) => (0.0, wd),
        };
        // The scalars as the tensor path's `mul_scalar` rounds them.
        let k = SgdScalars {
            lr: lr as f32,
            wd_lr: (decoupled * lr) as f32,
            mu: momentum as f32,
            keep: (1.0 - dampening) as f32,
        };
        let l2 = l2 as f32;
        if momentum == 0.0 {
            let declined = if decoupled != 0.0 {
                super::fused::step::<D, 0>(tensor, grad, None, self.gc, l2, |w, d, []| {
                    (k.finish::<true>(w, d), [])
                })
            } else {
                super::fused::step::<D, 0>(tensor, grad, None, self.gc, l2, |w, d, []| {
                    (k.finish::<false>(w, d), [])
                })
            };
            let rule = Rule::Sgd {
                lr: k.lr,
                decay: k.wd_lr,
            };
            return declined
                .or_else(|(w, g, s)| super::cube::step(w, g, s, self.gc, l2, rule))
                .map(|(w, [])| (w, None))
                .map_err(|(w, g, _)| (w, g, state));
        }
        let first = state.is_none();
        let states = state.map(|s| [s.momentum]);
        // One monomorphic loop per case: branches inside the per-element loop cost a factor of
        // several here (measured with benches/optim_step.rs).
        let stepped = match (first, nesterov, decoupled != 0.0) {
            (true, false, false) => {
                sgd_kernel::<D, true, false, false>(tensor, grad, states, self.gc, l2, k)
            }
            (true, false, true) => {
                sgd_kernel::<D, true, false, true>(tensor, grad, states, self.gc, l2, k)
            }
            (true, true, false) => {
                sgd_kernel::<D, true, true, false>(tensor, grad, states, self.gc, l2, k)
            }
            (true, true, true) => {
                sgd_kernel::<D, true, true, true>(tensor, grad, states, self.gc, l2, k)
            }
            (false, false, false) => {
                sgd_kernel::<D, false, false, false>(tensor, grad, states, self.gc, l2, k)
            }
            (false, false, true) => {
                sgd_kernel::<D, false, false, true>(tensor, grad, states, self.gc, l2, k)
            }
            (false, true, false) => {
                sgd_kernel::<D, false, true, false>(tensor, grad, states, self.gc, l2, k)
            }
            (false, true, true) => {
                sgd_kernel::<D, false, true, true>(tensor, grad, states, self.gc, l2, k)
            }
        };
        let rule = Rule::Momentum {
            lr: k.lr,
            decay: k.wd_lr,
            mu: k.mu,
            keep: k.keep,
            nesterov,
        };
        stepped
            .or_else(|(w, g, s)| super::cube::step(w, g, s, self.gc, l2, rule))
            .map(|(w, [b])| (w, Some(SgdState { momentum: b })))
            .map_err(|(w, g, s)| (w, g, s.map(|[momentum]| SgdState { momentum })))
    }
}

/// The scalars of one SGD step, rounded to f32 as the tensor path rounds them.
#[derive(Clone, Copy)]
struct SgdScalars {
    lr: f32,
    wd_lr: f32,
    mu: f32,
    keep: f32,
}

impl SgdScalars {
    /// `w − (lr·d [+ lr·λ·w])`, as the tensor path.
    #[inline(always)]
    fn finish<const DECOUPLED: bool>(self, w: f32, d: f32) -> f32 {
        let delta = d * self.lr;
        let delta = if DECOUPLED {
            delta + w * self.wd_lr
        } else {
            delta
        };
        w - delta
    }
}

/// SGD with momentum through the fused kernels, for one combination of the per-step branches.
#[allow(clippy::type_complexity)]
fn sgd_kernel<const D: usize, const FIRST: bool, const NESTEROV: bool, const DECOUPLED: bool>(
    tensor: Tensor<D>,
    grad: Tensor<D>,
    states: Option<[Tensor<D>; 1]>,
    gc: Gc,
    l2: f32,
    k: SgdScalars,
) -> Result<(Tensor<D>, [Tensor<D>; 1]), super::declined::Declined<D, 1>> {
    super::fused::step(tensor, grad, states, gc, l2, move |w, d, [b]| {
        // torch: the first buffer is the gradient itself, undamped.
        let b = if FIRST { d } else { b * k.mu + d * k.keep };
        let d = if NESTEROV { d + b * k.mu } else { b };
        (k.finish::<DECOUPLED>(w, d), [b])
    })
}

impl GcOptimizer for Sgd {
    fn with_gc(&self, gc: Gc) -> Self {
        Self {
            config: self.config,
            gc,
        }
    }
}
