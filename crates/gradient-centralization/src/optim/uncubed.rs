//! Without a cubecl backend (features `wgpu`, `cuda`) there is no GPU kernel: every step declines
//! to it and takes the flex kernels or the tensor definition.

use burn::tensor::Tensor;

use super::Gc;
use super::declined::Declined;
use super::rule::Rule;

/// Always declines.
#[inline(always)]
pub(super) fn step<const D: usize, const N: usize>(
    tensor: Tensor<D>,
    grad: Tensor<D>,
    states: Option<[Tensor<D>; N]>,
    _gc: Gc,
    _l2: f32,
    _rule: Rule,
) -> Result<(Tensor<D>, [Tensor<D>; N]), Declined<D, N>> {
    Err((tensor, grad, states))
}
