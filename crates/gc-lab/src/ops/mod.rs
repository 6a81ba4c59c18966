//! The lab's own kernels for the CPU backend (flex, f32), for the two operations that took most
//! of a training step there: [`conv`] (2-D convolution) and [`batch_norm`] (training-mode batch
//! norm). Each is a burn backend extension with its own backward pass; the models call
//! [`conv::forward`] and [`batch_norm::forward`] in place of the modules' `forward`.
//! `benches/conv_layers.rs` and `train_step --burn-ops` measure them against burn's own.

pub mod batch_norm;
pub mod conv;

use std::sync::atomic::{AtomicBool, Ordering};

static BURNS: AtomicBool = AtomicBool::new(false);

/// Makes the functions here use burn's own operations from now on, in every thread (`true`), or
/// the lab's kernels again (`false`): for measuring one against the other in one process.
pub fn use_burns(yes: bool) {
    BURNS.store(yes, Ordering::Relaxed);
}

/// Whether the functions here use burn's own operations ([`use_burns`]).
pub fn uses_burns() -> bool {
    BURNS.load(Ordering::Relaxed)
}
