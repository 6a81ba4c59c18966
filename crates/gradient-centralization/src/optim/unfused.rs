//! Without the `fused` feature there are no fused kernels: every step declines to them and takes
//! the tensor definition, on whatever backend burn runs.

use burn::tensor::Tensor;

use super::Gc;
use super::declined::Declined;

/// Always declines.
#[inline(always)]
pub(super) fn step<const D: usize, const N: usize>(
    tensor: Tensor<D>,
    grad: Tensor<D>,
    states: Option<[Tensor<D>; N]>,
    _gc: Gc,
    _l2: f32,
    _update: impl Fn(f32, f32, [f32; N]) -> (f32, [f32; N]) + Sync,
) -> Result<(Tensor<D>, [Tensor<D>; N]), Declined<D, N>> {
    Err((tensor, grad, states))
}
