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

mod diagnostics;
mod layout;
mod loops;
#[cfg(test)]
mod tests;

pub use diagnostics::{fused_copies, fused_gathers, fused_seconds, fused_steps, without_avx2};

use std::cell::Cell;

use burn::backend::flex::FlexTensor;
use burn::backend::{BackendTensor, DispatchAutodiffContext, DispatchTensor, DispatchTensorKind};
use burn::tensor::{DType, Tensor};

use super::Gc;
use super::declined::{Declined, take};
use super::diagnostics::ENABLED;
use super::units::Units;
use diagnostics::{GATHERED, SPENT, TAKEN};
use layout::{Strided, is_dense, owned_dense, slice_mut, zeros_like};
use loops::{Grad, kernel};

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
    let (w, g, states) = take(tensor, grad, states, into_flex, from_flex)?;
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
