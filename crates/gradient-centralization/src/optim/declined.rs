//! What a kernel takes of a step's tensors, and hands back untouched when it does not cover the
//! step: shared by every backend's kernels (`fused` on flex, `cube` on the GPU backends).

use burn::tensor::Tensor;

/// What the optimizer gets back when a kernel does not take the step: the weight, the gradient
/// and the states, untouched.
pub(super) type Declined<const D: usize, const N: usize> =
    (Tensor<D>, Tensor<D>, Option<[Tensor<D>; N]>);

/// The weight, the gradient and the states as a backend's tensors `T` (`into` takes one, or
/// hands it back when it is not one), or every one of them back as it came.
#[cfg_attr(
    not(any(feature = "fused", feature = "wgpu", feature = "cuda")),
    allow(dead_code)
)]
#[allow(clippy::type_complexity)]
pub(super) fn take<const D: usize, const N: usize, T>(
    tensor: Tensor<D>,
    grad: Tensor<D>,
    states: Option<[Tensor<D>; N]>,
    into: impl Fn(Tensor<D>) -> Result<T, Tensor<D>>,
    back: impl Fn(T) -> Tensor<D>,
) -> Result<(T, T, Option<[T; N]>), Declined<D, N>> {
    let w = match into(tensor) {
        Ok(w) => w,
        Err(tensor) => return Err((tensor, grad, states)),
    };
    let g = match into(grad) {
        Ok(g) => g,
        Err(grad) => return Err((back(w), grad, states)),
    };
    let Some(states) = states else {
        return Ok((w, g, None));
    };
    let taken = states.map(&into);
    if taken.iter().any(Result::is_err) {
        let states = taken.map(|s| match s {
            Ok(t) => back(t),
            Err(t) => t,
        });
        return Err((back(w), back(g), Some(states)));
    }
    Ok((
        w,
        g,
        Some(taken.map(|s| s.unwrap_or_else(|_| unreachable!("checked above")))),
    ))
}
