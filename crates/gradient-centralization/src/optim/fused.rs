//! One-pass CPU kernels for burn's `flex` backend in f32: each optimizer step reads the weight, the
//! gradient and the state once and writes the weight and the state once, in place, on all cores,
//! with GC's mean subtracted on the way.
//!
//! The tensor-op path (several passes and allocations per step) remains the definition and the
//! fallback: other backends and dtypes, GC on the update (`Placement::Update`), grouped transposed
//! convolutions, AMSGrad. Both paths compute the same expressions in the same order per element;
//! only GC's mean is summed in a different order (eight f32 lanes here, flex's reduction there),
//! so results agree to rounding, not bit for bit.
//!
//! Buffers are written in place when burn hands them over uniquely owned and dense, as
//! `ModuleOptimizer` does in training; otherwise they are copied once.

use std::cell::Cell;

use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::{BackendTensor, DispatchAutodiffContext, DispatchTensor, DispatchTensorKind};
use burn::tensor::{Bytes, DType, Tensor};
use rayon::prelude::*;

use super::Gc;
use crate::centralize::Placement;

thread_local! {
    static ENABLED: Cell<bool> = const { Cell::new(true) };
    /// Steps this thread took through the kernels (tests check that a path really ran).
    static TAKEN: Cell<usize> = const { Cell::new(0) };
    /// Weight and state buffers this thread had to copy because they were shared or not dense.
    static COPIED: Cell<usize> = const { Cell::new(0) };
    /// Gradients this thread had to lay out densely first (burn hands convolution weight
    /// gradients over as strided views).
    static GATHERED: Cell<usize> = const { Cell::new(0) };
}

/// Run `f` with the fused kernels off on this thread (the tensor-op path for every step), to
/// compare the two paths.
pub fn without_fused<T>(f: impl FnOnce() -> T) -> T {
    let before = ENABLED.with(|e| e.replace(false));
    let out = f();
    ENABLED.with(|e| e.set(before));
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

/// How many gradients those steps had to lay out densely first. After a backward pass burn
/// 0.22.1 hands every convolution weight gradient over as a view with its first two axes
/// swapped (`conv2d_weight_grad_no_groups`), so a training step gathers those once.
pub fn fused_gathers() -> usize {
    GATHERED.with(Cell::get)
}

/// Elements per parallel task: big enough to amortize scheduling, small enough that a task's rows
/// stay in cache between computing their means and updating them.
const CHUNK: usize = 1 << 14;

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

/// For a gradient laid out as burn 0.22.1 gives convolution weight gradients, its logical
/// `[d0, d1, rest...]` stored densely as `[d1, d0, rest...]` (the first two axes swapped):
/// `Some((d0, r))` with `r` the product of the rest.
fn swapped_first_two(ft: &FlexTensor, dims: &[usize]) -> Option<(usize, usize)> {
    if dims.len() < 2 || dims[0] < 2 || dims[1] < 2 {
        return None;
    }
    let layout = ft.layout();
    let n: usize = dims.iter().product();
    let r: usize = dims[2..].iter().product();
    let mut expected = vec![r as isize, (dims[0] * r) as isize];
    for k in 2..dims.len() {
        expected.push(dims[k + 1..].iter().product::<usize>() as isize);
    }
    (layout.start_offset() == 0 && layout.strides() == expected && ft.bytes().len() == n * 4)
        .then_some((dims[0], r))
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
    // Convolution weight gradients come with their first two axes swapped: the row kernels read
    // them in place; anything else strided is laid out densely once.
    let swapped = match units {
        Units::Rows { .. } | Units::None if !is_dense(&g) => swapped_first_two(&g, &dims),
        _ => None,
    };
    let g = if is_dense(&g) || swapped.is_some() {
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
    {
        let grad = &g.storage::<f32>()[..w.layout().num_elements()];
        let (units, swapped) = match (units, swapped) {
            // Rows of the logical layout, gathered from the swapped one; no mean when not
            // centralizing.
            (Units::None, Some((d0, r))) => {
                (Units::Rows { len: dims[1] * r }, Some((d0, r, false)))
            }
            (units, Some((d0, r))) => (units, Some((d0, r, true))),
            (units, None) => (units, None),
        };
        kernel(
            slice_mut(&mut w),
            grad,
            swapped,
            states.each_mut().map(slice_mut),
            units,
            l2,
            &update,
        );
    }
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

/// The fused pass over dense buffers: `d = g + l2·w − c(unit)`, `(w, s) ← update(w, d, s)`.
///
/// `swapped = Some((d0, r, center))`: `g` holds the logical `[d0, len / r, r]` rows stored as
/// `[len / r, d0, r]`; each row is gathered into a small buffer first, and centred only when
/// `center` (rows stand in for "no units" then).
fn kernel<const N: usize>(
    w: &mut [f32],
    g: &[f32],
    swapped: Option<(usize, usize, bool)>,
    states: [&mut [f32]; N],
    units: Units,
    l2: f32,
    update: &(impl Fn(f32, f32, [f32; N]) -> (f32, [f32; N]) + Sync),
) {
    let n = w.len();
    assert!(g.len() == n && states.iter().all(|s| s.len() == n));
    let means = match units {
        Units::Cols { units } => column_means(w, g, units, l2),
        _ => Vec::new(),
    };
    let chunk = match units {
        // Whole rows per task, so a row's mean and its update happen in one task.
        Units::Rows { len } if len > 0 => len * (CHUNK / len).max(1),
        // Whole rows of units per task, so no element needs a division to find its unit.
        Units::Cols { units } if units > 0 => units * (CHUNK / units).max(1),
        _ => CHUNK,
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
        let full = g;
        let g = &g[start..start + len];
        match units {
            Units::None => apply(w, g, &mut s, l2, |_| 0.0, update),
            Units::Rows { len: row } => {
                let mut gathered = Vec::new();
                for r in 0..len / row {
                    let span = r * row..(r + 1) * row;
                    let (g_row, center) = match swapped {
                        None => (&g[span.clone()], true),
                        Some((d0, inner, center)) => {
                            // Logical row o = (start + span.start) / row: its block i lies at
                            // ((i·d0 + o)·inner .. +inner) in the stored layout.
                            let o = (start + span.start) / row;
                            gathered.clear();
                            for i in 0..row / inner {
                                let at = (i * d0 + o) * inner;
                                gathered.extend_from_slice(&full[at..at + inner]);
                            }
                            (&gathered[..], center)
                        }
                    };
                    let c = if center {
                        row_mean(&w[span.clone()], g_row, l2)
                    } else {
                        0.0
                    };
                    let mut rs: [&mut [f32]; N] = s.each_mut().map(|s| &mut s[span.clone()]);
                    apply(&mut w[span.clone()], g_row, &mut rs, l2, |_| c, update);
                }
            }
            Units::Cols { units } => {
                for r in 0..len / units {
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
    });
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

/// Mean of `g + l2·w` over a row, in eight f32 lanes.
fn row_mean(w: &[f32], g: &[f32], l2: f32) -> f32 {
    let mut lanes = [0f32; 8];
    let (wc, gc) = (w.chunks_exact(8), g.chunks_exact(8));
    let (wr, gr) = (wc.remainder(), gc.remainder());
    for (w8, g8) in wc.zip(gc) {
        for l in 0..8 {
            lanes[l] += g8[l] + w8[l] * l2;
        }
    }
    let mut sum = lanes.iter().sum::<f32>();
    for (w, g) in wr.iter().zip(gr) {
        sum += g + w * l2;
    }
    sum / w.len() as f32
}

/// Means of `g + l2·w` per column of an `[n / units, units]` buffer, summed in f64.
fn column_means(w: &[f32], g: &[f32], units: usize, l2: f32) -> Vec<f32> {
    let rows = w.len() / units;
    let block = (CHUNK / units).max(1);
    let sums = (0..rows.div_ceil(block))
        .into_par_iter()
        .map(|b| {
            let mut sums = vec![0f64; units];
            for r in b * block..((b + 1) * block).min(rows) {
                let span = r * units..(r + 1) * units;
                for ((s, &w), &g) in sums.iter_mut().zip(&w[span.clone()]).zip(&g[span]) {
                    *s += f64::from(g + w * l2);
                }
            }
            sums
        })
        .reduce(
            || vec![0f64; units],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                a
            },
        );
    sums.into_iter().map(|s| (s / rows as f64) as f32).collect()
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
        w.into_data().try_to_vec().unwrap()
    }

    fn compare<O: GcOptimizer>(name: &str, optimizer: O) {
        let conv = Gc::new(Centralize::along(0), Placement::Gradient);
        let linear = Gc::new(Centralize::along(1), Placement::Gradient);
        let check = |what: &str, a: Vec<f32>, b: Vec<f32>| {
            let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
            let err = a
                .iter()
                .zip(&b)
                .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
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
        compare(
            "adam",
            AdamConfig::new().with_weight_decay(5e-2).build().unwrap(),
        );
        for formula in [AdamWFormula::Seed, AdamWFormula::Torch] {
            compare(
                "adamw",
                AdamWConfig::new()
                    .with_formula(formula)
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
        let adam = AdamConfig::new().with_weight_decay(1e-2).build().unwrap();
        let rows = Gc::new(Centralize::along(0), Placement::Gradient);
        for gc in [rows, Gc::NONE] {
            for [o, i, kh, kw] in [[4, 3, 3, 3], [64, 32, 3, 3], [128, 64, 1, 1]] {
                let w = values([o, i, kh, kw], 1, 1.0);
                let g = values([i, o, kh, kw], 2, 1.0).swap_dims(0, 1);
                let check = |name: &str, fused: Tensor<4>, plain: Tensor<4>| {
                    let a: Vec<f32> = fused.into_data().try_to_vec().unwrap();
                    let b: Vec<f32> = plain.into_data().try_to_vec().unwrap();
                    let err = a
                        .iter()
                        .zip(&b)
                        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                    assert!(err < 1e-6, "{name} {gc:?} {o}x{i}x{kh}x{kw}: {err}");
                };
                let (gathers, steps) = (fused_gathers(), fused_steps());
                let sgd = sgd.with_gc(gc);
                let (fused, _) = sgd.step(0.1, w.clone(), g.clone(), None);
                // Read where it lies: no copy, and through the kernels.
                assert_eq!((fused_gathers() - gathers, fused_steps() - steps), (0, 1));
                let (plain, _) = without_fused(|| sgd.step(0.1, w.clone(), g.clone(), None));
                check("sgd", fused, plain);
                let adam = adam.with_gc(gc);
                let (fused, _) = adam.step(0.1, w.clone(), g.clone(), None);
                let (plain, _) = without_fused(|| adam.step(0.1, w.clone(), g.clone(), None));
                check("adam", fused, plain);
            }
        }
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
