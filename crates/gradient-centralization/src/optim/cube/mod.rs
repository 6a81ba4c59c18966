//! The seed optimizers' step as one GPU kernel on burn's cubecl backends (wgpu, vulkan, cuda) in
//! f32: the weight, the gradient and the states are read once and the weight and states written
//! once, in place, with GC's mean subtracted on the way (`kernel.rs`).
//!
//! As on flex, the tensor-op path remains the definition and the fallback: other dtypes, GC on the
//! update (`Placement::Update`), grouped transposed convolutions, AMSGrad, tensors on the autodiff
//! graph, and burn built with its `fusion` feature (the backend's tensors are then fusion's, which
//! this kernel does not take). Results agree with the tensor path to rounding: GC's mean is summed
//! in another order, and GPUs may round `sqrt` and division differently from the backend's own
//! kernels.
//!
//! Buffers are written in place when burn hands them over uniquely owned and contiguous, as
//! `ModuleOptimizer` does in training; otherwise they are copied once (a second launch).

mod kernel;

use std::any::Any;
use std::cell::Cell;

use burn::backend::{BackendTensor, DispatchAutodiffContext, DispatchTensor, DispatchTensorKind};
use burn::tensor::{DType, Shape, Tensor};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::{CubeCount, CubeDim};

use super::Gc;
use super::declined::{Declined, take};
use super::diagnostics::{CUBE_TAKEN, ENABLED};
use super::rule::{Moments, Rule};
use super::units::Units;
use kernel::{Kind, Layout, Plan, ScalarsLaunch};

/// Units per cube without GC or with GC by columns.
const CUBE: u32 = 256;
/// The most cubes along one axis of a launch grid that every backend accepts.
const GRID: usize = 65_535;

/// `value` as a `U` when it is one (no allocation): the backend's float primitive is a
/// [`CubeTensor`] unless burn's `fusion` feature wraps it.
fn downcast<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    let mut slot = Some(value);
    match (&mut slot as &mut dyn Any).downcast_mut::<Option<U>>() {
        Some(taken) => Ok(taken.take().expect("the slot was filled above")),
        None => Err(slot.expect("nothing took the value")),
    }
}

fn into_cube<const D: usize>(t: Tensor<D>) -> Result<CubeTensor, Tensor<D>> {
    match t.into_dispatch() {
        DispatchTensor {
            kind: DispatchTensorKind::Cube(BackendTensor::Float(primitive)),
            autodiff: DispatchAutodiffContext::Disabled,
        } => match downcast::<_, CubeTensor>(primitive) {
            Ok(ct) if ct.dtype == DType::F32 && ct.qparams.is_none() => Ok(ct),
            Ok(ct) => Err(from_cube(ct)),
            Err(primitive) => Err(Tensor::from_dispatch(DispatchTensor {
                kind: DispatchTensorKind::Cube(BackendTensor::Float(primitive)),
                autodiff: DispatchAutodiffContext::Disabled,
            })),
        },
        other => Err(Tensor::from_dispatch(other)),
    }
}

fn from_cube<const D: usize>(ct: CubeTensor) -> Tensor<D> {
    // Only a primitive that is a `CubeTensor` ever became one (see `into_cube`).
    let primitive = downcast(ct).unwrap_or_else(|_| unreachable!("the primitive is a CubeTensor"));
    Tensor::from_dispatch(DispatchTensor {
        kind: DispatchTensorKind::Cube(BackendTensor::Float(primitive)),
        autodiff: DispatchAutodiffContext::Disabled,
    })
}

/// A buffer the kernel may write: `ct` itself when it is uniquely owned and dense, else a copy.
fn writable(ct: CubeTensor) -> CubeTensor {
    let ct = into_contiguous(ct);
    if ct.can_mut() && ct.is_contiguous_buffer() {
        ct
    } else {
        ct.copy()
    }
}

/// An f32 buffer of `shape` whose contents the kernel writes before it reads them (or never reads).
fn scratch(like: &CubeTensor, shape: Shape) -> CubeTensor {
    empty_device_dtype(like.client.clone(), like.device.clone(), shape, DType::F32)
}

/// One fused step on the GPU: `d = GC(g + l2·w)` per element, then `(w, state) ← rule(w, d,
/// state)`, in one launch.
///
/// `states` are the rule's `N` state tensors (`None` before the first step). Returns the new
/// weight and states, or the untouched inputs when the kernel does not cover the case.
pub(super) fn step<const D: usize, const N: usize>(
    tensor: Tensor<D>,
    grad: Tensor<D>,
    states: Option<[Tensor<D>; N]>,
    gc: Gc,
    l2: f32,
    rule: Rule,
) -> Result<(Tensor<D>, [Tensor<D>; N]), Declined<D, N>> {
    debug_assert_eq!(rule.states(), N, "the rule's states");
    let dims = tensor.dims();
    let n: usize = dims.iter().product();
    let units = match Units::of(gc, &dims) {
        Some(units) if ENABLED.with(Cell::get) && grad.dims() == dims && n > 0 => units,
        _ => return Err((tensor, grad, states)),
    };
    let (w, g, states) = take(tensor, grad, states, into_cube, from_cube)?;
    let first = states.is_none();
    let w = writable(w);
    let g = into_contiguous(g);
    let states: [CubeTensor; N] = match states {
        Some(states) => states.map(writable),
        None => std::array::from_fn(|_| scratch(&w, w.meta.shape().clone())),
    };
    launch(&w, g, &states, units, n, l2, rule, first);
    CUBE_TAKEN.with(|c| c.set(c.get() + 1));
    Ok((from_cube(w), states.map(from_cube)))
}

/// Launches the kernel over `w` and `states` (written in place) for `units`.
#[allow(clippy::too_many_arguments)]
fn launch<const N: usize>(
    w: &CubeTensor,
    g: CubeTensor,
    states: &[CubeTensor; N],
    units: Units,
    n: usize,
    l2: f32,
    rule: Rule,
    first: bool,
) {
    let client = w.client.clone();
    let (layout, unit, threads) = match units {
        Units::None => (Layout::Elements, n, 0),
        Units::Cols { units } => (Layout::Cols, units, 0),
        Units::Rows { len } => (
            Layout::Rows,
            len,
            len.next_power_of_two().clamp(32, CUBE as usize),
        ),
    };
    let (count, dim) = match layout {
        Layout::Elements | Layout::Cols => {
            let dim = CubeDim::new_1d(CUBE);
            let count = cubecl::calculate_cube_count_elemwise(&client, unit, dim);
            (count, dim)
        }
        Layout::Rows => {
            let rows = n / unit;
            let count = if rows <= GRID {
                CubeCount::Static(rows as u32, 1, 1)
            } else {
                CubeCount::Static(GRID as u32, rows.div_ceil(GRID) as u32, 1)
            };
            (count, CubeDim::new_1d(threads as u32))
        }
    };
    let (kind, k, nesterov, decay) = scalars(rule, l2);
    let plan = Plan {
        kind,
        layout,
        first,
        nesterov,
        decays: decay != 0.0,
        coupled: l2 != 0.0,
        threads,
    };
    // Placeholders for the states a rule does not have: one element each, never touched.
    let state = |i: usize| match states.get(i) {
        Some(s) => s.clone(),
        None => scratch(w, Shape::new([1])),
    };
    kernel::step::launch(
        &client,
        count,
        dim,
        w.clone().into_buffer_arg(),
        g.into_buffer_arg(),
        state(0).into_buffer_arg(),
        state(1).into_buffer_arg(),
        k,
        n,
        unit,
        plan,
    );
}

/// The kernel's view of `rule`: its kind, scalars, Nesterov flag and decay.
fn scalars(rule: Rule, l2: f32) -> (Kind, ScalarsLaunch, bool, f32) {
    let none = Moments {
        beta1: 0.0,
        keep1: 0.0,
        beta2: 0.0,
        keep2: 0.0,
    };
    // (kind, lr, decay, moments, root2, eps, init, nesterov)
    let (kind, lr, decay, m, root2, eps, init, nesterov) = match rule {
        Rule::Sgd { lr, decay } => (Kind::Sgd, lr, decay, none, 0.0, 0.0, 0.0, false),
        Rule::Momentum {
            lr,
            decay,
            mu,
            keep,
            nesterov,
        } => {
            let m = Moments {
                beta1: mu,
                keep1: keep,
                ..none
            };
            (Kind::Momentum, lr, decay, m, 0.0, 0.0, 0.0, nesterov)
        }
        Rule::Adam {
            moments,
            root2,
            eps,
            step,
        } => (Kind::Adam, step, 0.0, moments, root2, eps, 0.0, false),
        Rule::AdamWSeed {
            moments,
            eps,
            decay,
            step,
        } => (Kind::AdamWSeed, step, decay, moments, 0.0, eps, 0.0, false),
        Rule::AdamWTorch {
            moments,
            root2,
            eps,
            step,
            decay,
        } => (
            Kind::AdamWTorch,
            step,
            decay,
            moments,
            root2,
            eps,
            0.0,
            false,
        ),
        Rule::Adagrad { init, eps, lr } => (Kind::Adagrad, lr, 0.0, none, 0.0, eps, init, false),
    };
    let k = ScalarsLaunch::new(
        l2, lr, decay, m.beta1, m.keep1, m.beta2, m.keep2, root2, eps, init,
    );
    (kind, k, nesterov, decay)
}
