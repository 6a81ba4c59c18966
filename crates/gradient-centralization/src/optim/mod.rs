//! Optimizers with Gradient Centralization: the seed's, number for number, and a wrapper for any
//! burn optimizer.
//!
//! Each is a burn [`Optimizer`] (one tensor at a time) that carries the GC operation for the
//! parameters it is given; [`GcConfig::init`](crate::GcConfig::init) hands every parameter group of
//! a plan its own copy, inside one burn `ModuleOptimizer`.

// The fused paths hand their inputs back by value when they decline a step; boxing them would
// allocate on every tensor step.
#![allow(clippy::result_large_err)]

mod adagrad;
mod adam;
mod adamw;
// A GPU kernel for burn's cubecl backends: the same step as `fused`, one launch per tensor.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod cube;
#[cfg(not(any(feature = "wgpu", feature = "cuda")))]
#[path = "uncubed.rs"]
mod cube;
mod declined;
#[doc(hidden)]
pub mod diagnostics;
// The kernels' raw pointers, SIMD and prefetch hints: the crate's only `unsafe`, each block with
// its SAFETY note.
#[cfg(feature = "fused")]
#[allow(unsafe_code)]
mod fused;
#[cfg(not(feature = "fused"))]
#[path = "unfused.rs"]
mod fused;
mod lookahead;
mod radam;
mod rule;
mod sgd;
#[cfg(any(feature = "fused", feature = "wgpu", feature = "cuda"))]
mod units;
mod wrap;

pub use adagrad::{Adagrad, AdagradConfig, AdagradState};
pub use adam::{Adam, AdamConfig, AdamState};
pub use adamw::{AdamW, AdamWConfig, AdamWFormula};
pub use lookahead::{Lookahead, LookaheadConfig, LookaheadState, Phase, Ranger, ranger};
pub use radam::{FirstMoment, RAdam, RAdamConfig, Rectify};
pub use sgd::{Sgd, SgdConfig, SgdState, WeightDecay};
pub use wrap::Centralized;

use burn::optim::Optimizer;
use burn::tensor::Tensor;

use crate::centralize::{Centralize, Placement};

/// An optimizer that can centralize: the seed's optimizers of this crate, and [`Centralized`] around
/// any burn optimizer.
pub trait GcOptimizer: Optimizer {
    /// A copy of this optimizer that applies `gc` to the tensors it steps.
    fn with_gc(&self, gc: Gc) -> Self;
}

/// The GC an optimizer instance applies: which operation (none for parameters the plan leaves
/// alone) and where in the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Gc {
    /// The operation, or `None` to leave the tensor alone.
    pub op: Option<Centralize>,
    /// Where it sits in the step.
    pub placement: Placement,
}

impl Gc {
    /// No centralization.
    pub const NONE: Gc = Gc {
        op: None,
        placement: Placement::Gradient,
    };

    /// Centralize with `op` at `placement`.
    pub fn new(op: Centralize, placement: Placement) -> Self {
        Self {
            op: Some(op),
            placement,
        }
    }

    /// Apply to a gradient when the placement is [`Placement::Gradient`].
    pub fn on_gradient<const D: usize>(&self, grad: Tensor<D>) -> Tensor<D> {
        match (self.op, self.placement) {
            (Some(op), Placement::Gradient) => op.apply(grad),
            _ => grad,
        }
    }

    /// Apply to a final update when the placement is [`Placement::Update`].
    pub fn on_update<const D: usize>(&self, delta: Tensor<D>) -> Tensor<D> {
        match (self.op, self.placement) {
            (Some(op), Placement::Update) => op.apply(delta),
            _ => delta,
        }
    }
}
