//! Gradient Centralization for burn: layer-aware, composable, and number for number the seed's.
//!
//! ```
//! use burn::module::Module;
//! use burn::nn::{Linear, LinearConfig, Relu};
//! use burn::optim::GradientsParams;
//! use burn::tensor::{Device, Distribution, Tensor};
//! use gradient_centralization::prelude::*;
//!
//! #[derive(Module, Debug)]
//! struct Mlp { hidden: Linear, act: Relu, out: Linear }
//!
//! let device = Device::flex().autodiff();
//! let mut model = Mlp {
//!     hidden: LinearConfig::new(4, 16).init(&device),
//!     act: Relu::new(),
//!     out: LinearConfig::new(16, 1).init(&device),
//! };
//! let hyper = Hyperparameters { momentum: Some(0.9), weight_decay: Some(5e-4), ..Hyperparameters::default() };
//! let mut optimizer = paper::sgd_gc(&model, &hyper)?; // the seed's SGD_GC
//! let x = Tensor::<2>::random([64, 4], Distribution::Normal(0.0, 1.0), &device);
//! let y = x.clone().sum_dim(1); // learn the sum of the inputs
//! for _ in 0..50 {
//!     let loss = (model.out.forward(model.act.forward(model.hidden.forward(x.clone()))) - y.clone())
//!         .square()
//!         .mean();
//!     let grads = GradientsParams::from_grads(loss.backward(), &model);
//!     model = optimizer.step(0.01, model, grads);
//! }
//! # Ok::<(), GcError>(())
//! ```
//!
//! GC (Yong, Huang, Hua, Zhang, "Gradient Centralization: A New Optimization Technique for Deep
//! Neural Networks", ECCV 2020, arXiv 2004.01461) subtracts from each weight gradient its mean over
//! the fan-in of every output unit. Which axis that is depends on the layer, not on the tensor's
//! rank: burn's `Linear` weight is `[d_input, d_output]`, so a rank rule would centralize it per input
//! row (and zero the gradient of a `Linear(d, 1)` head). This crate decides per layer:
//!
//! - [`Centralize`]: the operation on one tensor along one output axis.
//! - [`GcPlan`]: one walk over a module; every parameter's layer kind and decision, printable.
//! - [`GcConfig`]: scope ([`Scope`]), placement ([`Placement`]), rules ([`Rule`]) and clipping, turned
//!   into a burn [`ModuleOptimizer`](burn::optim::ModuleOptimizer) for any [`optim::GcOptimizer`].
//! - [`optim`]: the seed's SGD, SGDW, Adam, AdamW (seed and torch formulas) and Adagrad, and
//!   [`optim::Centralized`], GC in front of any burn optimizer.
//! - [`Preset`] and [`paper`]: the optimizers of the paper's reference code under its names (`SGD_GC`,
//!   `AdamW_GCC`, ...), one line each.
//! - [`check_gradients`]: the first parameter whose gradient holds NaN or infinity, by path.
//! - [`trace`]: the replay format behind the `gc-trace` program.
//!
//! The optimizer routes parameters by id and, where loading replaced the id, by their path in the
//! module, so loading weights (`load_record`, `load_file`, a checkpoint) before or after building
//! it keeps GC. Features: `fused` and `flex`
//! (default) add burn's CPU backend and one-pass kernels for it; `wgpu` and `cuda` add those GPU
//! backends and one GPU kernel per step there; without them the crate runs on any burn backend,
//! every step being the tensor definition.
//!
//! Defaults are PyTorch's and the seed's (SGD dampening 0, Adam eps 1e-8, Adagrad eps 1e-10), not
//! burn's.
#![warn(missing_docs)]

mod centralize;
mod config;
mod error;
mod finite;
mod hyperparameters;
pub mod optim;
mod plan;
mod presets;
pub mod trace;

pub use centralize::{Centralize, Placement};
pub use config::GcConfig;
pub use error::{GcError, check_lr};
pub use finite::check_gradients;
pub use hyperparameters::Hyperparameters;
pub use plan::{
    ConvTransposeRule, Decision, GcPlan, LayerKind, PlanConfig, PlanEntry, Rule, Scope, SkipReason,
};
pub use presets::{Family, Preset, paper};

// `#[derive(RecordState)]` on our optimizer states expands to paths at the crate root.
#[doc(hidden)]
pub use burn::optim::{RecordState, StateSink, StateSource, join_index, join_path};

/// The names most programs need.
pub mod prelude {
    pub use crate::optim::{Centralized, GcOptimizer};
    pub use crate::{
        Centralize, GcConfig, GcError, GcPlan, Hyperparameters, Placement, Preset, Rule, Scope,
        paper,
    };
}
