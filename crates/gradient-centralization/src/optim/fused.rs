//! One-pass CPU kernels for burn's `flex` backend in f32: each optimizer step reads the weight, the
//! gradient and the state once and writes the weight and the state once, in place, on all cores,
//! with GC's mean subtracted on the way.
//!
//! The tensor-op path (several passes and allocations per step) remains the definition and the
//! fallback: other backends and dtypes, GC on the update (`Placement::Update`), grouped transposed
//! convolutions, AMSGrad. Both paths compute the same expressions in the same order per element;
//! only GC's mean is summed in a different order (32 f32 lanes here, flex's reduction there),
//! so results agree to rounding, not bit for bit.
//!
//! Buffers are written in place when burn hands them over uniquely owned and dense, as
//! `ModuleOptimizer` does in training; otherwise they are copied once. Gradients are only read:
//! strided views with rows along the first axis (burn's convolution weight gradients) are read
//! where they lie, other views are laid out densely once.
//!
//! The per-task loop is compiled for the baseline instruction set and for AVX2, picked at run time;
//! both give the same bits.

use std::cell::Cell;

use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::{BackendTensor, DispatchAutodiffContext, DispatchTensor, DispatchTensorKind};
use burn::tensor::{Bytes, DType, Tensor};
use rayon::prelude::*;

use super::Gc;
use crate::centralize::Placement;

thread_local! {
    static ENABLED: Cell<bool> = const { Cell::new(true) };
    /// Whether the kernels may use AVX2 where the CPU has it.
    static WIDE: Cell<bool> = const { Cell::new(true) };
    /// Steps this thread took through the kernels (tests check that a path really ran).
    static TAKEN: Cell<usize> = const { Cell::new(0) };
    /// Weight and state buffers this thread had to copy because they were shared or not dense.
    static COPIED: Cell<usize> = const { Cell::new(0) };
    /// Gradients this thread had to lay out densely first (burn hands convolution weight
    /// gradients over as strided views).
    static GATHERED: Cell<usize> = const { Cell::new(0) };
    /// The tile a task gathers a strided gradient's rows into, kept for the thread's next task
    /// (it only grows: at most a task's rows of the largest strided gradient, ~0.5 MiB for
    /// ResNet-50).
    static TILE: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    /// Seconds this thread spent in the kernels' passes, by GC's layout.
    static SPENT: Cell<[f64; 3]> = const { Cell::new([0.0; 3]) };
}

/// Run `f` with the fused kernels off on this thread (the tensor-op path for every step), to
/// compare the two paths.
pub fn without_fused<T>(f: impl FnOnce() -> T) -> T {
    let before = ENABLED.with(|e| e.replace(false));
    let out = f();
    ENABLED.with(|e| e.set(before));
    out
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

/// Elements per parallel task: big enough to amortize scheduling, small enough that a task's rows
/// stay in cache between computing their means and updating them. (Whole rows per task: a task
/// holds more when a row is longer, or when a strided gradient needs more rows per read.)
const CHUNK: usize = 1 << 14;

/// Blocks of rows whose column sums are taken in parallel, for GC by columns.
const COLUMN_BLOCKS: usize = 16;

/// Padding after each row of a strided gradient's tile, in elements: with rows a multiple of 1 KiB
/// apart (most convolutions' rows: 64·k² floats or a multiple) a gather's stores to consecutive
/// rows would fall into a few sets of the L1 cache and evict each other; one extra cache line per
/// row spreads them.
const TILE_PAD: usize = 16;

/// How many steps of a strided gradient's outer axis [`Strided::gather`] prefetches ahead.
const AHEAD: usize = 16;

/// Where GC's units lie in a dense buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Units {
    /// No centralization.
    None,
    /// Contiguous rows of `len` elements, one per unit (output axis first: convolutions).
    Rows { len: usize },
    /// Element `i` belongs to unit `i % units` (output axis last: burn's `Linear [in, out]`).
    Cols { units: usize },
}

impl Units {
    /// The layout of `gc` on `dims`, or `None` when the kernels do not cover it.
    fn of(gc: Gc, dims: &[usize]) -> Option<Units> {
        let Some(op) = gc.op else {
            return Some(Units::None);
        };
        if gc.placement == Placement::Update || op.fits(dims).is_err() || op.groups() != 1 {
            return None;
        }
        let lead: usize = dims[..op.axis()].iter().product();
        let units = dims[op.axis()];
        let trail: usize = dims[op.axis() + 1..].iter().product();
        if lead == 1 {
            Some(Units::Rows { len: trail })
        } else if trail == 1 {
            Some(Units::Cols { units })
        } else {
            None
        }
    }
}

fn into_flex<const D: usize>(t: Tensor<D>) -> Result<FlexTensor, Tensor<D>> {
    match t.into_dispatch() {
        DispatchTensor {
            kind: DispatchTensorKind::Flex(BackendTensor::Float(ft)),
            autodiff: DispatchAutodiffContext::Disabled,
        } if ft.dtype() == DType::F32 => Ok(ft),
        other => Err(Tensor::from_dispatch(other)),
    }
}

fn from_flex<const D: usize>(ft: FlexTensor) -> Tensor<D> {
    Tensor::from_dispatch(DispatchTensor {
        kind: DispatchTensorKind::Flex(BackendTensor::Float(ft)),
        autodiff: DispatchAutodiffContext::Disabled,
    })
}

/// Contiguous from offset 0 and exactly the logical size.
fn is_dense(ft: &FlexTensor) -> bool {
    let n = ft.layout().num_elements();
    ft.layout().contiguous_offsets() == Some((0, n)) && ft.bytes().len() == n * 4
}

/// A gradient read through its strides, one logical row (one output unit of a convolution) at a
/// time: the element of row `o` at inner index `(i_1, .., i_k)` lies at
/// `offset + o·row_stride + Σ i_j·s_j` of the buffer.
///
/// After a backward pass burn 0.22.1 hands every convolution weight gradient over as such a view
/// (`conv2d_weight_grad_no_groups` computes it with the first two axes swapped and swaps them back
/// as a view; with a stride above 1 it also slices a larger kernel), so the kernels read it where
/// it lies instead of laying it out densely first.
#[derive(Debug, Clone, PartialEq)]
struct Strided {
    offset: usize,
    row_stride: usize,
    /// The inner axes as `(length, stride)`, axes of length 1 dropped and neighbours that are
    /// contiguous with each other merged; the last one, always of stride 1, is copied in runs.
    inner: Vec<(usize, usize)>,
}

impl Strided {
    /// The view of `ft` as rows along its first axis; `None` for fewer than two axes, negative
    /// strides or a view that reaches past its buffer.
    fn of(ft: &FlexTensor, dims: &[usize]) -> Option<Strided> {
        let layout = ft.layout();
        let strides: Vec<usize> = layout
            .strides()
            .iter()
            .map(|&s| usize::try_from(s).ok())
            .collect::<Option<_>>()?;
        if dims.len() < 2 || strides.len() != dims.len() || dims.contains(&0) {
            return None;
        }
        let offset = layout.start_offset();
        let last = dims.iter().zip(&strides).try_fold(offset, |at, (d, s)| {
            at.checked_add((d - 1).checked_mul(*s)?)
        })?;
        if last >= ft.bytes().len() / 4 {
            return None;
        }
        let mut inner: Vec<(usize, usize)> = Vec::new();
        for (&d, &s) in dims[1..].iter().zip(&strides[1..]) {
            match inner.last_mut() {
                _ if d == 1 => {}
                Some((run, step)) if *step == d * s => (*run, *step) = (*run * d, s),
                _ => inner.push((d, s)),
            }
        }
        // The innermost axis is copied in runs: a strided one becomes an outer axis over runs of
        // one element, so that a gather visits the rows in turn at each of its steps (reading
        // the rows' neighbouring elements together) rather than walking each row through memory
        // on its own (for a 1x1 convolution's swapped gradient, a row's elements lie a whole
        // block of output channels apart, and every row would fetch the same cache lines again).
        if inner.last().is_none_or(|&(_, step)| step != 1) {
            inner.push((1, 1));
        }
        Some(Strided {
            offset,
            row_stride: strides[0],
            inner,
        })
    }

    /// How many rows a task should read at least. In burn's swapped layout one step of the
    /// outer axis holds the task's rows next to each other, a piece of `rows · row_stride`
    /// elements, and consecutive steps lie far apart (a whole block of output channels): pieces of
    /// at least 64 elements (four cache lines) keep memory reads long. (From `CHUNK` alone a 1x1
    /// convolution with 2048 inputs gets 8 rows per task: half a cache line per piece, each line
    /// fetched by two neighbouring tasks.)
    fn rows(&self) -> usize {
        64usize.div_ceil(self.row_stride.max(1))
    }

    /// Rows `first .. first + rows` of `data`, each `row` long, laid out `pitch` apart in `tile`
    /// (rows a little more than `row` apart stay clear of each other in the L1 cache). Within
    /// each run of the innermost axis the rows are visited in turn, so that views whose rows lie
    /// close together in memory (burn's swapped axes) are read nearly in order.
    fn gather(
        &self,
        data: &[f32],
        first: usize,
        rows: usize,
        (row, pitch): (usize, usize),
        tile: &mut Vec<f32>,
    ) {
        // Every element of the tile's rows is written below; only the padding keeps old values.
        if tile.len() < rows * pitch {
            tile.resize(rows * pitch, 0.0);
        }
        let (&(run, step), outer) = self.inner.split_last().expect("at least one inner axis");
        debug_assert_eq!(
            step, 1,
            "the innermost axis is contiguous (see `Strided::of`)"
        );
        let mut index = vec![0usize; outer.len()];
        let mut at = 0;
        loop {
            let base = self.offset
                + outer
                    .iter()
                    .zip(&index)
                    .map(|(&(_, s), &i)| s * i)
                    .sum::<usize>();
            // Ask for the rows' elements a few steps of the last outer axis ahead: consecutive
            // steps lie far apart (a whole output-channel block in burn's swapped layout), too
            // far for the hardware's prefetchers. (`units_step`, two runs, swapped over dense
            // time: 1x1 1.9-2.0 with the hint, 2.1-2.8 without; 3x3 1.4-1.7 and 1.9. Distances of
            // 8, 16, 32 and 64 steps differed by less than the runs did.)
            if let Some(&(len, stride)) = outer.last()
                && index[outer.len() - 1] + AHEAD < len
            {
                let lo = base + AHEAD * stride + first * self.row_stride;
                let hi = lo + (rows - 1) * self.row_stride + run;
                if hi - lo <= 4096 {
                    for at in (lo..hi).step_by(16) {
                        prefetch(&data[at], Cache::L1);
                    }
                    prefetch(&data[hi - 1], Cache::L1);
                }
            }
            if run == 1 {
                // One element per row (1x1 convolutions): a transposition, element by element.
                let from = &data[base + first * self.row_stride..];
                for r in 0..rows {
                    tile[r * pitch + at] = from[r * self.row_stride];
                }
            } else {
                for r in 0..rows {
                    let from = base + (first + r) * self.row_stride;
                    tile[r * pitch + at..r * pitch + at + run]
                        .copy_from_slice(&data[from..from + run]);
                }
            }
            at += run;
            if !next(&mut index, outer) {
                debug_assert_eq!(at, row, "a whole row gathered");
                return;
            }
        }
    }
}

/// Steps `index` over the axes `outer` (`(length, stride)`), last axis fastest; false after the
/// last index.
#[inline(always)]
fn next(index: &mut [usize], outer: &[(usize, usize)]) -> bool {
    for k in (0..outer.len()).rev() {
        index[k] += 1;
        if index[k] < outer[k].0 {
            return true;
        }
        index[k] = 0;
    }
    false
}

/// A uniquely owned dense buffer: `ft` itself when it is one, else one copy.
fn owned_dense(ft: FlexTensor) -> FlexTensor {
    if ft.is_unique() && is_dense(&ft) {
        return ft;
    }
    COPIED.with(|c| c.set(c.get() + 1));
    let shape = ft.layout().shape().clone();
    let values: Vec<f32> = match ft.as_slice::<f32>() {
        Some(s) if is_dense(&ft) => s.to_vec(),
        _ => ft
            .to_contiguous()
            .as_slice::<f32>()
            .expect("a contiguous f32 tensor")
            .to_vec(),
    };
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(shape),
        DType::F32,
    )
}

fn zeros_like(ft: &FlexTensor) -> FlexTensor {
    let shape = ft.layout().shape().clone();
    let n = ft.layout().num_elements();
    FlexTensor::new(
        Bytes::from_elems(vec![0f32; n]),
        Layout::contiguous(shape),
        DType::F32,
    )
}

fn slice_mut(ft: &mut FlexTensor) -> &mut [f32] {
    let n = ft.layout().num_elements();
    &mut ft
        .try_storage_mut::<f32>()
        .expect("owned_dense made the buffer unique")[..n]
}

/// What the optimizer gets back when the fused path does not apply: its inputs, untouched.
pub(super) type Declined<const D: usize, const N: usize> =
    (Tensor<D>, Tensor<D>, Option<[Tensor<D>; N]>);

/// One fused step: `d = GC(g + l2·w)` per element, then `(w, state) ← update(w, d, state)`.
///
/// `states` are the optimizer's `N` state tensors (zeros on the first step, `None`). Returns the
/// new weight and states, or the untouched inputs when the kernels do not cover the case.
pub(super) fn step<const D: usize, const N: usize>(
    tensor: Tensor<D>,
    grad: Tensor<D>,
    states: Option<[Tensor<D>; N]>,
    gc: Gc,
    l2: f32,
    update: impl Fn(f32, f32, [f32; N]) -> (f32, [f32; N]) + Sync,
) -> Result<(Tensor<D>, [Tensor<D>; N]), Declined<D, N>> {
    let dims = tensor.dims();
    let units = match Units::of(gc, &dims) {
        Some(units) if ENABLED.with(Cell::get) && grad.dims() == dims => units,
        _ => return Err((tensor, grad, states)),
    };
    let w = match into_flex(tensor) {
        Ok(w) => w,
        Err(tensor) => return Err((tensor, grad, states)),
    };
    let g = match into_flex(grad) {
        Ok(g) => g,
        Err(grad) => return Err((from_flex(w), grad, states)),
    };
    let states = match states {
        None => None,
        Some(states) => {
            let taken = states.map(into_flex);
            if taken.iter().any(Result::is_err) {
                let back = taken.map(|s| match s {
                    Ok(ft) => from_flex(ft),
                    Err(t) => t,
                });
                return Err((from_flex(w), from_flex(g), Some(back)));
            }
            Some(taken.map(|s| s.unwrap_or_else(|_| unreachable!("checked above"))))
        }
    };
    let mut w = owned_dense(w);
    let n = w.layout().num_elements();
    // Rows of the logical layout, for a gradient read through its strides: GC's units for
    // convolutions, rows that are only read (no mean) when not centralizing.
    // (GC's rows are the first axis's only when no axis of length above 1 precedes the unit
    // axis; rows that are only read must be enough to keep every core busy.)
    let rows = match units {
        Units::Rows { len } if dims.len() >= 2 && dims[0] * len == n => Some((len, true)),
        Units::None if dims.len() >= 2 && n > 0 && dims[0] >= 4 * rayon::current_num_threads() => {
            Some((n / dims[0], false))
        }
        _ => None,
    };
    let strided = match rows {
        Some(_) if !is_dense(&g) => Strided::of(&g, &dims),
        _ => None,
    };
    let g = if is_dense(&g) || strided.is_some() {
        g
    } else {
        GATHERED.with(|c| c.set(c.get() + 1));
        let g = g.to_contiguous();
        if is_dense(&g) { g } else { owned_dense(g) }
    };
    let mut states: [FlexTensor; N] = match states {
        Some(states) => states.map(owned_dense),
        None => std::array::from_fn(|_| zeros_like(&w)),
    };
    let layout = match units {
        Units::None => 0,
        Units::Rows { .. } => 1,
        Units::Cols { .. } => 2,
    };
    let start = std::time::Instant::now();
    {
        let (grad, units, center) = match (strided, rows) {
            (Some(view), Some((len, center))) => (
                Grad::Strided(g.storage::<f32>(), view),
                Units::Rows { len },
                center,
            ),
            _ => (Grad::Dense(&g.storage::<f32>()[..n]), units, true),
        };
        kernel(
            slice_mut(&mut w),
            &grad,
            states.each_mut().map(slice_mut),
            units,
            center,
            l2,
            &update,
        );
    }
    SPENT.with(|spent| {
        let mut seconds = spent.get();
        seconds[layout] += start.elapsed().as_secs_f64();
        spent.set(seconds);
    });
    TAKEN.with(|t| t.set(t.get() + 1));
    Ok((from_flex(w), states.map(from_flex)))
}
/// A raw pointer that tasks share; each task touches only its own disjoint range.
#[derive(Clone, Copy)]
struct Shared(*mut f32);
// SAFETY: used only to hand disjoint sub-ranges of one buffer to different tasks.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// The pointer (a method, so that closures capture the whole `Shared`, not its field).
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// Where the kernel reads the gradient.
enum Grad<'a> {
    /// Dense, in the weight's order.
    Dense(&'a [f32]),
    /// Rows of the logical layout read through strides from the whole buffer.
    Strided(&'a [f32], Strided),
}

/// The fused pass: `d = g + l2·w − c(unit)`, `(w, s) ← update(w, d, s)`, on all cores.
///
/// `center` is false only for rows that are read through strides without being centralized.
fn kernel<const N: usize>(
    w: &mut [f32],
    grad: &Grad,
    states: [&mut [f32]; N],
    units: Units,
    center: bool,
    l2: f32,
    update: &(impl Fn(f32, f32, [f32; N]) -> (f32, [f32; N]) + Sync),
) {
    let n = w.len();
    assert!(states.iter().all(|s| s.len() == n));
    let means = match (units, grad) {
        (Units::Cols { units }, Grad::Dense(g)) => column_means(w, g, units, l2),
        (Units::Cols { .. }, Grad::Strided(..)) => unreachable!("strided gradients come as rows"),
        _ => Vec::new(),
    };
    let chunk = match units {
        // Whole rows per task, so a row's mean and its update happen in one task; for a strided
        // gradient, enough rows that each piece a task reads is long (see `Strided::rows`).
        Units::Rows { len } if len > 0 => {
            let rows = match grad {
                // Not so many that fewer than four tasks per core remain.
                Grad::Strided(_, view) => view
                    .rows()
                    .min((n / len).div_ceil(4 * rayon::current_num_threads())),
                Grad::Dense(_) => 1,
            };
            len * (CHUNK / len).max(rows)
        }
        // Whole rows of units per task, so no element needs a division to find its unit.
        Units::Cols { units } if units > 0 => units * (CHUNK / units).max(1),
        _ => CHUNK,
    };
    #[cfg(target_arch = "x86_64")]
    let avx2 = WIDE.with(Cell::get) && std::is_x86_feature_detected!("avx2");
    let pitch = match (units, grad) {
        (Units::Rows { len }, Grad::Strided(..)) => len + TILE_PAD,
        (Units::Rows { len }, Grad::Dense(_)) => len,
        _ => 0,
    };
    let pass = Pass {
        units,
        center,
        pitch,
        means: &means,
        l2,
        update,
    };
    let wp = Shared(w.as_mut_ptr());
    let sp: [Shared; N] = states.map(|s| Shared(s.as_mut_ptr()));
    (0..n.div_ceil(chunk)).into_par_iter().for_each(|k| {
        let start = k * chunk;
        let len = chunk.min(n - start);
        // SAFETY: [start, start + len) is this task's own range of buffers of length n; the
        // weight and state buffers are distinct allocations (each uniquely owned).
        let w = unsafe { std::slice::from_raw_parts_mut(wp.at(start), len) };
        let mut s: [&mut [f32]; N] =
            sp.map(|p| unsafe { std::slice::from_raw_parts_mut(p.at(start), len) });
        let mut tile = TILE.take();
        let g = match grad {
            Grad::Dense(g) => &g[start..start + len],
            Grad::Strided(data, view) => {
                let Units::Rows { len: row } = units else {
                    unreachable!("strided gradients come as rows")
                };
                view.gather(data, start / row, len / row, (row, pitch), &mut tile);
                &tile[..len / row * pitch]
            }
        };
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: the CPU has AVX2 (detected above).
            unsafe { task_avx2(w, g, &mut s, &pass) };
            TILE.set(tile);
            return;
        }
        task(w, g, &mut s, &pass);
        TILE.set(tile);
    });
}

/// What every task of one fused pass shares.
struct Pass<'a, U> {
    units: Units,
    /// False only for rows read through strides without being centralized.
    center: bool,
    /// For `Units::Rows`: how far apart the gradient's rows lie in a task's slice (the row length
    /// when dense, a little more in the tile of a strided gradient).
    pitch: usize,
    /// GC's mean per column for `Units::Cols`, else empty.
    means: &'a [f32],
    l2: f32,
    update: &'a U,
}

/// [`task`] compiled for AVX2 (eight f32 lanes per instruction instead of SSE2's four). The
/// arithmetic is the same, element by element and lane by lane: no fused multiply-adds, which
/// Rust never forms on its own.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn task_avx2<const N: usize, U: Fn(f32, f32, [f32; N]) -> (f32, [f32; N])>(
    w: &mut [f32],
    g: &[f32],
    s: &mut [&mut [f32]; N],
    pass: &Pass<U>,
) {
    task(w, g, s, pass);
}

/// One task's range: whole rows (`Rows`), whole rows of units (`Cols`) or any range (`None`).
#[inline(always)]
fn task<const N: usize, U: Fn(f32, f32, [f32; N]) -> (f32, [f32; N])>(
    w: &mut [f32],
    g: &[f32],
    s: &mut [&mut [f32]; N],
    pass: &Pass<U>,
) {
    let Pass {
        units,
        center,
        pitch,
        means,
        l2,
        update,
    } = *pass;
    match units {
        Units::None => apply(w, g, s, l2, |_| 0.0, update),
        Units::Rows { len: row } => {
            for r in 0..w.len() / row {
                let span = r * row..(r + 1) * row;
                let g = &g[r * pitch..r * pitch + row];
                let mut rs: [&mut [f32]; N] = s.each_mut().map(|s| &mut s[span.clone()]);
                let c = if center {
                    row_mean(&w[span.clone()], g, l2, &rs)
                } else {
                    0.0
                };
                apply(&mut w[span], g, &mut rs, l2, |_| c, update);
            }
        }
        Units::Cols { units } => {
            let means = &means[..units];
            for r in 0..w.len() / units {
                let span = r * units..(r + 1) * units;
                let mut rs: [&mut [f32]; N] = s.each_mut().map(|s| &mut s[span.clone()]);
                apply(
                    &mut w[span.clone()],
                    &g[span],
                    &mut rs,
                    l2,
                    |i| means[i],
                    update,
                );
            }
        }
    }
}

#[inline(always)]
fn apply<const N: usize>(
    w: &mut [f32],
    g: &[f32],
    s: &mut [&mut [f32]; N],
    l2: f32,
    mean: impl Fn(usize) -> f32,
    update: &impl Fn(f32, f32, [f32; N]) -> (f32, [f32; N]),
) {
    // Equal lengths up front, so that the loop carries no bounds checks.
    let len = w.len();
    let g = &g[..len];
    let s: [&mut [f32]; N] = s.each_mut().map(|s| &mut s[..len]);
    for i in 0..len {
        let d = (g[i] + w[i] * l2) - mean(i);
        let (nw, ns) = update(w[i], d, std::array::from_fn(|j| s[j][i]));
        w[i] = nw;
        for j in 0..N {
            s[j][i] = ns[j];
        }
    }
}

/// Mean of `g + l2·w` over a row, in four independent sets of eight f32 lanes: the additions
/// of one set wait on each other (3-4 cycles apiece), four sets keep the adder busy, so that the
/// sweep runs at the speed of its loads rather than at the latency of one chain of additions.
///
/// On the way it asks for the row's `states` to be brought into the core's L2 cache: the update
/// sweep that follows then finds every buffer it reads in cache, and the state's memory traffic
/// overlaps the mean's instead of following it. (L2, not L1: a row of 4608 elements of weight,
/// gradient and two states fills 72 KiB, twice an L1 data cache. Measured with `optim_step`, ratio
/// to plain SGD: SGD_GC 1.18-1.24 without a hint, 1.08-1.10 into L1, 1.11 into L2; Adam_GC 1.48,
/// 1.44 and 1.30.)
#[inline(always)]
fn row_mean<const N: usize>(w: &[f32], g: &[f32], l2: f32, states: &[&mut [f32]; N]) -> f32 {
    const LANES: usize = 32;
    let len = w.len();
    let (g, states) = (&g[..len], states.each_ref().map(|s| &s[..len]));
    let mut lanes = [0f32; LANES];
    let whole = len / LANES * LANES;
    for k in (0..whole).step_by(LANES) {
        // Two cache lines of 64 bytes per state.
        for s in states {
            prefetch(&s[k], Cache::L2);
            prefetch(&s[k + LANES / 2], Cache::L2);
        }
        let (w, g) = (&w[k..k + LANES], &g[k..k + LANES]);
        for l in 0..LANES {
            lanes[l] += g[l] + w[l] * l2;
        }
    }
    // The lanes in a fixed order: pairwise down to eight, then one by one.
    for half in [16, 8] {
        for l in 0..half {
            lanes[l] += lanes[l + half];
        }
    }
    let mut sum = lanes[..8].iter().sum::<f32>();
    for (w, g) in w[whole..].iter().zip(&g[whole..]) {
        sum += g + w * l2;
    }
    sum / len as f32
}

/// The cache level a prefetch hint asks for.
#[derive(Clone, Copy)]
enum Cache {
    L1,
    L2,
}

/// A hint to bring the cache line holding `x` into `level` (a no-op off x86-64).
#[inline(always)]
fn prefetch(x: &f32, level: Cache) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch only hints the cache; `x` is a valid reference anyway.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _MM_HINT_T1, _mm_prefetch};
        let p = std::ptr::from_ref(x).cast();
        match level {
            Cache::L1 => _mm_prefetch::<_MM_HINT_T0>(p),
            Cache::L2 => _mm_prefetch::<_MM_HINT_T1>(p),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (x, level);
}

/// Means of `g + l2·w` per column of an `[n / units, units]` buffer, summed in f64.
fn column_means(w: &[f32], g: &[f32], units: usize, l2: f32) -> Vec<f32> {
    let rows = w.len() / units;
    // A fixed number of blocks, whatever the machine: few partial sums to add up at the end (a
    // sequential pass over blocks x units), and the same sums on every machine.
    let block = rows.div_ceil(COLUMN_BLOCKS).max(1);
    #[cfg(target_arch = "x86_64")]
    let avx2 = WIDE.with(Cell::get) && std::is_x86_feature_detected!("avx2");
    // Partial sums per block of rows, then added in block order: the same sums on every run,
    // however the blocks were spread over the threads.
    let partial: Vec<Vec<f64>> = (0..rows.div_ceil(block))
        .into_par_iter()
        .map(|b| {
            let mut sums = vec![0f64; units];
            let span = b * block * units..((b + 1) * block).min(rows) * units;
            let (w, g) = (&w[span.clone()], &g[span]);
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: the CPU has AVX2 (detected above).
                unsafe { add_rows_avx2(&mut sums, w, g, l2) };
                return sums;
            }
            add_rows(&mut sums, w, g, l2);
            sums
        })
        .collect();
    let mut sums = vec![0f64; units];
    for p in partial {
        sums.iter_mut().zip(p).for_each(|(s, p)| *s += p);
    }
    sums.into_iter().map(|s| (s / rows as f64) as f32).collect()
}

/// [`add_rows`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn add_rows_avx2(sums: &mut [f64], w: &[f32], g: &[f32], l2: f32) {
    add_rows(sums, w, g, l2);
}

/// Adds `g + l2·w` of each row of `[.., sums.len()]` buffers to `sums`, in f64.
#[inline(always)]
fn add_rows(sums: &mut [f64], w: &[f32], g: &[f32], l2: f32) {
    let units = sums.len();
    for (w, g) in w.chunks_exact(units).zip(g.chunks_exact(units)) {
        for ((s, &w), &g) in sums.iter_mut().zip(w).zip(g) {
            *s += f64::from(g + w * l2);
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::optim::Optimizer;
    use burn::tensor::{Device, Distribution, Tensor};

    use super::*;
    use crate::Centralize;
    use crate::optim::{
        AdagradConfig, AdamConfig, AdamWConfig, AdamWFormula, GcOptimizer, SgdConfig, WeightDecay,
    };

    /// A tensor of values in [-scale, scale) from a local generator (the backend's generator is
    /// shared by tests running in parallel).
    fn values<const D: usize>(shape: [usize; D], seed: u64, scale: f32) -> Tensor<D> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let data: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ((x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect();
        Tensor::from_data(burn::tensor::TensorData::new(data, shape), &Device::flex())
    }

    /// Three steps of `optimizer` on `shape` with GC `gc`, fused or not; the final weights.
    fn run<O: Optimizer, const D: usize>(
        optimizer: &O,
        shape: [usize; D],
        fused: bool,
    ) -> Vec<f32> {
        let mut w = values(shape, 7, 1.0);
        let grads: Vec<Tensor<D>> = (0..3).map(|t| values(shape, 100 + t, 0.1)).collect();
        let mut state = None;
        let taken = TAKEN.with(Cell::get);
        for (t, g) in grads.into_iter().enumerate() {
            let lr = 0.1 / (t + 1) as f64;
            let step = || optimizer.step(lr, w.clone(), g, state.take());
            (w, state) = if fused { step() } else { without_fused(step) };
        }
        let expected = if fused { 3 } else { 0 };
        assert_eq!(
            TAKEN.with(Cell::get) - taken,
            expected,
            "steps through the kernels"
        );
        floats(w)
    }

    fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec().unwrap()
    }

    /// The largest element-wise difference of two equally long slices.
    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
    }

    fn compare<O: GcOptimizer>(name: &str, optimizer: O) {
        let conv = Gc::new(Centralize::along(0), Placement::Gradient);
        let linear = Gc::new(Centralize::along(1), Placement::Gradient);
        let check = |what: &str, a: Vec<f32>, b: Vec<f32>| {
            let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
            let err = max_diff(&a, &b);
            assert!(err <= 1e-6 * scale, "{name} {what}: {err} (scale {scale})");
        };
        let o = optimizer.with_gc(conv);
        check(
            "conv",
            run(&o, [4, 3, 3, 3], true),
            run(&o, [4, 3, 3, 3], false),
        );
        let o = optimizer.with_gc(linear);
        check("linear", run(&o, [6, 5], true), run(&o, [6, 5], false));
        let o = optimizer.with_gc(Gc::NONE);
        check("bias", run(&o, [40_000], true), run(&o, [40_000], false));
        // Big enough for several tasks, with rows that straddle no task boundary.
        let o = optimizer.with_gc(conv);
        check(
            "big conv",
            run(&o, [64, 32, 3, 3], true),
            run(&o, [64, 32, 3, 3], false),
        );
        let o = optimizer.with_gc(linear);
        check(
            "big linear",
            run(&o, [300, 70], true),
            run(&o, [300, 70], false),
        );
    }

    #[test]
    fn fused_steps_agree_with_the_tensor_path() {
        let sgd = |m: f64, nesterov: bool, wd: WeightDecay| {
            SgdConfig::new()
                .with_momentum(m)
                .with_nesterov(nesterov)
                .with_weight_decay(wd)
                .build()
                .unwrap()
        };
        compare("sgd", sgd(0.0, false, WeightDecay::None));
        compare("sgd l2", sgd(0.9, false, WeightDecay::L2(5e-2)));
        compare("sgd nesterov", sgd(0.9, true, WeightDecay::L2(5e-2)));
        compare("sgdw", sgd(0.9, false, WeightDecay::Decoupled(5e-2)));
        compare(
            "sgd dampening",
            SgdConfig::new()
                .with_momentum(0.9)
                .with_dampening(0.3)
                .build()
                .unwrap(),
        );
        // Adam's first steps move each weight by about lr·d/(|d| + eps): with the default eps of
        // 1e-8, an element whose centralized gradient d is near zero turns a rounding difference
        // in the mean (summed in another order on each path) into a different step, up to lr. A
        // larger eps bounds that amplification by 1/eps and makes a misplaced eps more visible.
        compare(
            "adam",
            AdamConfig::new()
                .with_eps(1e-2)
                .with_weight_decay(5e-2)
                .build()
                .unwrap(),
        );
        for formula in [AdamWFormula::Seed, AdamWFormula::Torch] {
            compare(
                "adamw",
                AdamWConfig::new()
                    .with_formula(formula)
                    .with_eps(1e-2)
                    .with_weight_decay(5e-2)
                    .build()
                    .unwrap(),
            );
        }
        compare(
            "adagrad",
            AdagradConfig::new()
                .with_weight_decay(5e-2)
                .with_lr_decay(0.1)
                .with_initial_accumulator_value(0.2)
                .build()
                .unwrap(),
        );
    }

    /// Every fused optimizer of the seed, each with non-default hyperparameters (Adagrad's eps
    /// included), fused against the tensor path on a conv weight centralized by rows (`gc`) and a
    /// linear weight by columns (no GC when `gc` has none).
    fn every_fused_optimizer_agrees(gc: Gc, conv: [usize; 4], linear: [usize; 2]) {
        let by_columns = match gc.op {
            Some(_) => Gc::new(Centralize::along(1), gc.placement),
            None => Gc::NONE,
        };
        macro_rules! each {
            ($($name:literal => $optimizer:expr,)*) => {$(
                let optimizer = $optimizer;
                let o = optimizer.with_gc(gc);
                agree($name, run(&o, conv, true), run(&o, conv, false));
                let o = optimizer.with_gc(by_columns);
                agree($name, run(&o, linear, true), run(&o, linear, false));
            )*};
        }
        each! {
            "sgd" => SgdConfig::new().build().unwrap(),
            "sgd momentum l2" => SgdConfig::new()
                .with_momentum(0.9)
                .with_weight_decay(WeightDecay::L2(5e-2))
                .build()
                .unwrap(),
            "sgd nesterov" => SgdConfig::new()
                .with_momentum(0.8)
                .with_nesterov(true)
                .build()
                .unwrap(),
            "sgdw dampening" => SgdConfig::new()
                .with_momentum(0.9)
                .with_dampening(0.3)
                .with_weight_decay(WeightDecay::Decoupled(5e-2))
                .build()
                .unwrap(),
            // eps 1e-2 for the Adam family: see fused_steps_agree_with_the_tensor_path.
            "adam" => AdamConfig::new().with_eps(1e-2).with_weight_decay(5e-2).build().unwrap(),
            "adamw seed" => AdamWConfig::new()
                .with_formula(AdamWFormula::Seed)
                .with_eps(1e-2)
                .with_weight_decay(5e-2)
                .build()
                .unwrap(),
            "adamw torch" => AdamWConfig::new()
                .with_formula(AdamWFormula::Torch)
                .with_eps(1e-2)
                .with_weight_decay(5e-2)
                .build()
                .unwrap(),
            "adagrad eps" => AdagradConfig::new()
                .with_eps(1e-3)
                .with_lr_decay(0.1)
                .with_weight_decay(5e-2)
                .build()
                .unwrap(),
        }
    }

    /// Fused and tensor-path weights within 1e-6 of the weights' scale.
    fn agree(name: &str, fused: Vec<f32>, tensor: Vec<f32>) {
        let scale = tensor.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = max_diff(&fused, &tensor);
        assert!(err <= 1e-6 * scale, "{name}: {err} (scale {scale})");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// Random shapes: odd sizes, one output unit, fan-in 1, rows shorter and longer than the
        /// mean's 32 lanes; conv weights by rows, linear weights by columns, and no GC.
        #[test]
        fn fused_steps_agree_with_the_tensor_path_on_random_shapes(
            out in 1usize..10,
            fan in 1usize..9,
            k in 1usize..4,
            d_in in 1usize..300,
            d_out in 1usize..10,
            centralize in proptest::bool::ANY,
        ) {
            let gc = if centralize {
                Gc::new(Centralize::along(0), Placement::Gradient)
            } else {
                Gc::NONE
            };
            every_fused_optimizer_agrees(gc, [out, fan, k, k], [d_in, d_out]);
        }
    }

    /// One output unit over a huge fan-in: a conv channel of 102,400 inputs, a linear head of
    /// 100,000 (the mean's lanes wrap many times; tasks split nothing).
    #[test]
    fn fused_steps_agree_with_the_tensor_path_on_a_huge_fan_in() {
        let gc = Gc::new(Centralize::along(0), Placement::Gradient);
        every_fused_optimizer_agrees(gc, [1, 4096, 5, 5], [100_000, 1]);
    }

    /// The AVX2 kernels compute the very same numbers as the baseline ones: same operations per
    /// element, same 32 lanes for the row means.
    #[test]
    fn avx2_and_baseline_kernels_agree_bit_for_bit() {
        let conv = Gc::new(Centralize::along(0), Placement::Gradient);
        let linear = Gc::new(Centralize::along(1), Placement::Gradient);
        let sgd = SgdConfig::new()
            .with_momentum(0.9)
            .with_weight_decay(WeightDecay::L2(5e-2))
            .build()
            .unwrap();
        let adam = AdamConfig::new().with_weight_decay(5e-2).build().unwrap();
        let adagrad = AdagradConfig::new().build().unwrap();
        let same = |a: Vec<f32>, b: Vec<f32>| {
            assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
        };
        // Rows of 288 (nine times the mean's 32 lanes) and of 315 (a tail after the lanes).
        for shape in [[64, 32, 3, 3], [64, 35, 3, 3]] {
            for gc in [conv, Gc::NONE] {
                let (o, a, g) = (sgd.with_gc(gc), adam.with_gc(gc), adagrad.with_gc(gc));
                same(run(&o, shape, true), without_avx2(|| run(&o, shape, true)));
                same(run(&a, shape, true), without_avx2(|| run(&a, shape, true)));
                same(run(&g, shape, true), without_avx2(|| run(&g, shape, true)));
            }
        }
        let (o, a) = (sgd.with_gc(linear), adam.with_gc(linear));
        same(
            run(&o, [300, 70], true),
            without_avx2(|| run(&o, [300, 70], true)),
        );
        same(
            run(&a, [300, 70], true),
            without_avx2(|| run(&a, [300, 70], true)),
        );
    }

    /// A uniquely owned weight is updated where it lies; the step hands back the same buffer.
    #[test]
    fn unique_buffers_are_updated_in_place() {
        let device = Device::flex();
        let w = Tensor::<2>::random([8, 8], Distribution::Default, &device);
        let g = Tensor::<2>::random([8, 8], Distribution::Default, &device);
        let ptr = |t: Tensor<2>| {
            let ft = into_flex(t).unwrap_or_else(|_| panic!("a flex f32 tensor"));
            (ft.bytes().as_ptr() as usize, from_flex::<2>(ft))
        };
        let (before, w) = ptr(w);
        let sgd = SgdConfig::new()
            .with_momentum(0.9)
            .build()
            .unwrap()
            .with_gc(Gc::new(Centralize::along(0), Placement::Gradient));
        let (w, state) = sgd.step(0.1, w, g, None);
        let (after, _) = ptr(w);
        assert_eq!(before, after);
        assert!(state.is_some());
    }

    /// burn hands convolution weight gradients over with their first two axes swapped: the fused
    /// path reads them in place and computes what the tensor path computes.
    #[test]
    fn strided_gradients_are_read_in_place_and_agree() {
        let sgd = SgdConfig::new()
            .with_momentum(0.9)
            .with_weight_decay(WeightDecay::L2(1e-2))
            .build()
            .unwrap();
        // eps 1e-2: see `fused_steps_agree_with_the_tensor_path`.
        let adam = AdamConfig::new()
            .with_eps(1e-2)
            .with_weight_decay(1e-2)
            .build()
            .unwrap();
        let rows = Gc::new(Centralize::along(0), Placement::Gradient);
        for gc in [rows, Gc::NONE] {
            // (shape, extra kernel rows and columns that the view slices off, as burn's
            // backward pass does for convolutions of stride 2)
            let cases = [
                ([4, 3, 3, 3], 0),
                ([64, 32, 3, 3], 0),
                ([128, 64, 1, 1], 0),
                // 1x1 with long rows: tasks take more rows than CHUNK alone would give them.
                ([300, 1024, 1, 1], 0),
                ([16, 8, 3, 3], 1),
                ([32, 16, 1, 1], 1),
            ];
            for ([o, i, kh, kw], extra) in cases {
                let w = values([o, i, kh, kw], 1, 1.0);
                let g = values([i, o, kh + extra, kw + extra], 2, 1.0)
                    .swap_dims(0, 1)
                    .slice([0..o, 0..i, 0..kh, 0..kw]);
                let check = |name: &str, fused: Tensor<4>, plain: Tensor<4>| {
                    let err = max_diff(&floats(fused), &floats(plain));
                    assert!(err < 1e-6, "{name} {gc:?} {o}x{i}x{kh}x{kw}: {err}");
                };
                let flex = into_flex(g.clone()).unwrap_or_else(|_| panic!("a flex tensor"));
                assert!(!is_dense(&flex), "the gradient is a strided view");
                let (gathers, steps) = (fused_gathers(), fused_steps());
                let sgd = sgd.with_gc(gc);
                let (fused, _) = sgd.step(0.1, w.clone(), g.clone(), None);
                // Read where it lies, through the kernels; except rows that are only read and
                // too few to keep every core busy, which are laid out densely once.
                let few = gc == Gc::NONE && o < 4 * rayon::current_num_threads();
                let expected = (usize::from(few), 1);
                assert_eq!((fused_gathers() - gathers, fused_steps() - steps), expected);
                let (plain, _) = without_fused(|| sgd.step(0.1, w.clone(), g.clone(), None));
                check("sgd", fused, plain);
                let adam = adam.with_gc(gc);
                let (fused, _) = adam.step(0.1, w.clone(), g.clone(), None);
                let (plain, _) = without_fused(|| adam.step(0.1, w.clone(), g.clone(), None));
                check("adam", fused, plain);
            }
        }
    }

    /// GC's units along a later axis, behind axes of length 1, with a strided gradient: not rows
    /// along the first axis, so the gradient is laid out densely first, and the step agrees.
    #[test]
    fn strided_gradients_of_units_behind_unit_axes_are_gathered() {
        let sgd = SgdConfig::new()
            .with_momentum(0.9)
            .build()
            .unwrap()
            .with_gc(Gc::new(Centralize::along(1), Placement::Gradient));
        let w = values([1, 4, 3, 3], 1, 1.0);
        let g = values([1, 4, 3, 4], 2, 1.0).slice([0..1, 0..4, 0..3, 0..3]);
        let gathers = fused_gathers();
        let (fused, _) = sgd.step(0.1, w.clone(), g.clone(), None);
        assert_eq!(fused_gathers() - gathers, 1);
        let (plain, _) = without_fused(|| sgd.step(0.1, w, g, None));
        let err = max_diff(&floats(fused), &floats(plain));
        assert!(err < 1e-6, "{err}");
    }

    /// The row views merge contiguous inner axes and gather rows in the logical order.
    #[test]
    fn strided_rows_gather_the_logical_rows() {
        let flex = |t: Tensor<4>| into_flex(t).unwrap_or_else(|_| panic!("a flex f32 tensor"));
        let swapped = flex(values([5, 4, 3, 3], 3, 1.0).swap_dims(0, 1));
        let view = Strided::of(&swapped, &[4, 5, 3, 3]).expect("a row view");
        assert_eq!(
            (view.row_stride, view.inner.clone()),
            (9, vec![(5, 36), (9, 1)])
        );
        let sliced = values([5, 4, 3, 3], 4, 1.0)
            .swap_dims(0, 1)
            .slice([0..4, 0..5, 1..3, 0..2]);
        let logical = floats(sliced.clone());
        let sliced = flex(sliced);
        let view = Strided::of(&sliced, &[4, 5, 2, 2]).expect("a row view");
        assert_eq!(view.inner, vec![(5, 36), (2, 3), (2, 1)]);
        // Rows `first..first + rows` of `view`, `row` long, gathered `pitch` apart in the tile.
        let check = |view: &Strided, data: &[f32], logical: &[f32], row: usize, pitch: usize| {
            // A tile left bigger by an earlier task, with values that must all be overwritten.
            let mut tile = vec![f32::NAN; 8 * pitch];
            for (first, rows) in [(0, 4), (1, 2), (3, 1)] {
                view.gather(data, first, rows, (row, pitch), &mut tile);
                for r in 0..rows {
                    let at = (first + r) * row;
                    assert_eq!(
                        tile[r * pitch..r * pitch + row],
                        logical[at..at + row],
                        "row {} of rows {first}..{}",
                        first + r,
                        first + rows
                    );
                }
            }
        };
        check(&view, sliced.storage::<f32>(), &logical, 20, 20);
        check(&view, sliced.storage::<f32>(), &logical, 20, 20 + TILE_PAD);
        // A 1x1 convolution's swapped gradient: the rows' elements lie a whole block of output
        // channels apart, so the strided axis becomes an outer one over runs of one element.
        let one = values([5, 4, 1, 1], 6, 1.0).swap_dims(0, 1);
        let logical = floats(one.clone());
        let one = flex(one);
        let view = Strided::of(&one, &[4, 5, 1, 1]).expect("a row view");
        assert_eq!(
            (view.row_stride, view.inner.clone()),
            (1, vec![(5, 4), (1, 1)])
        );
        check(&view, one.storage::<f32>(), &logical, 5, 5 + TILE_PAD);
        // Negative strides are not rows to read forwards.
        assert_eq!(
            Strided::of(&flex(values([3, 2, 1, 1], 5, 1.0).flip([0])), &[3, 2, 1, 1]),
            None
        );
    }

    #[test]
    fn units_cover_rows_and_columns_and_decline_the_rest() {
        let rows = Gc::new(Centralize::along(0), Placement::Gradient);
        assert_eq!(
            Units::of(rows, &[4, 3, 3, 3]),
            Some(Units::Rows { len: 27 })
        );
        let cols = Gc::new(Centralize::along(1), Placement::Gradient);
        assert_eq!(Units::of(cols, &[6, 5]), Some(Units::Cols { units: 5 }));
        assert_eq!(Units::of(Gc::NONE, &[6]), Some(Units::None));
        let update = Gc::new(Centralize::along(0), Placement::Update);
        assert_eq!(Units::of(update, &[4, 3]), None);
        let grouped = Gc::new(Centralize::grouped(1, 2), Placement::Gradient);
        assert_eq!(Units::of(grouped, &[4, 3, 2]), None);
        let middle = Gc::new(Centralize::along(1), Placement::Gradient);
        assert_eq!(Units::of(middle, &[4, 3, 2]), None);
    }
}
