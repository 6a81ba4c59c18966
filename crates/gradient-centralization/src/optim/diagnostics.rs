//! Switches and counters of the fused kernels, for the lab's benchmarks and tests: not part of the
//! semver-stable API. One switch for every backend's kernels ([`without_fused`]); counters per
//! backend, each proving that its kernels really ran.

use std::cell::Cell;

thread_local! {
    /// Whether steps may take the fused kernels at all (see [`without_fused`]).
    pub(crate) static ENABLED: Cell<bool> = const { Cell::new(true) };
    /// Steps this thread took through the GPU kernels.
    pub(crate) static CUBE_TAKEN: Cell<usize> = const { Cell::new(0) };
}

/// Run `f` with the fused kernels off on this thread, on every backend (the tensor-op path for
/// every step), to compare the two paths.
pub fn without_fused<T>(f: impl FnOnce() -> T) -> T {
    let before = ENABLED.with(|e| e.replace(false));
    let out = f();
    ENABLED.with(|e| e.set(before));
    out
}

/// How many optimizer steps of single tensors this thread has taken through the GPU kernel (burn's
/// cubecl backends: wgpu, vulkan, cuda), one launch each.
pub fn cube_steps() -> usize {
    CUBE_TAKEN.with(Cell::get)
}

#[cfg(feature = "fused")]
pub use super::fused::{fused_copies, fused_gathers, fused_seconds, fused_steps, without_avx2};
