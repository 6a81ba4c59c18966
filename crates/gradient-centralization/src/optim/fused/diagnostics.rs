//! The flex kernels' switches and counters, per thread: for benchmarks, which compare the two
//! instruction sets, and for tests, which check that a path really ran (the switch between the
//! fused and tensor paths is `optim::diagnostics::without_fused`, for every backend's kernels).

use std::cell::Cell;

thread_local! {
    /// Whether the kernels may use AVX2 where the CPU has it.
    pub(super) static WIDE: Cell<bool> = const { Cell::new(true) };
    /// Steps this thread took through the kernels (tests check that a path really ran).
    pub(super) static TAKEN: Cell<usize> = const { Cell::new(0) };
    /// Weight and state buffers this thread had to copy because they were shared or not dense.
    pub(super) static COPIED: Cell<usize> = const { Cell::new(0) };
    /// Gradients this thread had to lay out densely first (burn hands convolution weight
    /// gradients over as strided views).
    pub(super) static GATHERED: Cell<usize> = const { Cell::new(0) };
    /// Seconds this thread spent in the kernels' passes, by GC's layout.
    pub(super) static SPENT: Cell<[f64; 3]> = const { Cell::new([0.0; 3]) };
}

/// Run `f` with the kernels compiled for the baseline instruction set only (SSE2 on x86-64, not
/// the AVX2 version chosen at run time) on this thread, to measure what AVX2 brings. Results are
/// the same either way.
pub fn without_avx2<T>(f: impl FnOnce() -> T) -> T {
    let before = WIDE.with(|e| e.replace(false));
    let out = f();
    WIDE.with(|e| e.set(before));
    out
}

/// How many optimizer steps of single tensors this thread has taken through the fused kernels (a
/// diagnostic for benchmarks: the rest took the tensor-op path).
pub fn fused_steps() -> usize {
    TAKEN.with(Cell::get)
}

/// How many weight and state buffers those steps had to copy first, because burn handed them over
/// shared (held elsewhere too) or as a strided view; the rest were updated where they lay.
pub fn fused_copies() -> usize {
    COPIED.with(Cell::get)
}

/// How many gradients those steps had to lay out densely first: strided views other than rows
/// along the first axis (the convolution weight gradients of burn's backward pass, strided views
/// themselves, are read where they lie).
pub fn fused_gathers() -> usize {
    GATHERED.with(Cell::get)
}

/// Seconds this thread's fused steps spent in their passes over memory, by GC's layout of the
/// tensor: `[no GC, GC by rows, GC by columns]` (a diagnostic for benchmarks: the rest of a step
/// is burn's bookkeeping and the preparation of the buffers).
pub fn fused_seconds() -> [f64; 3] {
    SPENT.with(Cell::get)
}
