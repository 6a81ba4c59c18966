//! Training-mode batch norm on NCHW f32 buffers in a few passes, forward and backward, as a burn
//! backend extension, optionally with the ReLU that follows it folded in.
//!
//! burn's own (the backend's default `batch_norm_train`) is a chain of tensor operations: the
//! input's first two axes swapped and laid out again (a copy) for each statistic, then five
//! elementwise passes; its backward pass copies twice more and makes about ten passes. Here: the
//! statistics per channel in two reads (mean, then squared deviations; f32 lanes combined in
//! f64), the output in one more read and one write; backward, the two sums per channel in one
//! read of the output gradient and the input, the input gradient in one more pass. With the ReLU
//! ([`forward_relu`]) the output is clamped as it is written, and the backward pass masks the
//! output gradient with the output's sign, computed again from the input (the ReLU's own passes,
//! one forward and one backward, and the output it keeps for its backward pass, are gone). Each
//! loop over a plane runs in AVX-512 registers where the CPU has them (`wide.rs`), to the bit as
//! the portable loops compute it. The definitions are burn's (biased variance, `y = (x − mean) / sqrt(var + eps) · gamma + beta`);
//! results agree to rounding.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{AutodiffBackend, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::nn::BatchNorm;
use burn::tensor::{Shape, Tensor};

pub mod ghost;
mod kernels;
mod residual;
#[cfg(test)]
mod tests;
mod wide;

pub use kernels::{backward_kernel, forward_add_relu_kernel, forward_kernel, with_portable};
pub use residual::{ResidualNormOps, forward_add_relu};

use crate::{all_f32, contiguous, flex_tensor, values};

/// Training-mode batch norm (optionally followed by a ReLU) and its backward pass, each
/// defaulting to burn's own operations.
#[backend_extension(Flex, NdArray: cfg(feature = "ndarray"), Autodiff)]
pub trait BatchNormOps: Backend {
    /// `x` (`[n, c, ...]`) normalized per channel with its batch statistics, then scaled by
    /// `gamma` and shifted by `beta`, then (with `relu`) `max(0, ·)`: (output, mean, biased
    /// variance).
    fn fused_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        burns_train::<Self>(x, gamma, beta, epsilon, relu)
    }

    /// The gradients with respect to `x`, `gamma` and `beta`, given the output's gradient and
    /// the statistics the forward pass returned; with `relu` (the forward pass applied the ReLU)
    /// the output, and so the ReLU's mask, is computed again from `x`, `gamma` and `beta`.
    #[allow(clippy::too_many_arguments)]
    fn fused_batch_norm_train_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
        output_grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let grads = (x, gamma, beta, mean, variance, output_grad);
        burns_train_backward::<Self>(grads, epsilon, relu)
    }
}

/// [`BatchNormOps::fused_batch_norm_train`] by burn's own operations (the trait's default, and
/// flex's for other dtypes than f32).
fn burns_train<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
    relu: bool,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let r = B::batch_norm_train(x, gamma, beta, epsilon);
    let output = if relu { B::relu(r.output) } else { r.output };
    (output, r.mean, r.variance)
}

/// [`BatchNormOps::fused_batch_norm_train_backward`] by burn's own operations, given `(x, gamma,
/// beta, mean, variance, output_grad)`; with `relu` the output is computed again for its mask.
#[allow(clippy::type_complexity)]
fn burns_train_backward<B: Backend>(
    (x, gamma, beta, mean, variance, output_grad): (
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
    ),
    epsilon: f64,
    relu: bool,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let output_grad = if relu {
        let y = B::batch_norm_train(x.clone(), gamma.clone(), beta, epsilon).output;
        B::relu_backward(B::relu(y), output_grad)
    } else {
        output_grad
    };
    let r = B::batch_norm_train_backward(x, gamma, mean, variance, epsilon, output_grad);
    (r.x_grad, r.gamma_grad, r.beta_grad)
}

#[cfg(feature = "ndarray")]
impl BatchNormOps for burn::backend::NdArray {}

/// `[n, c, rest]` of a tensor of rank 2 or more.
fn nsc(ft: &FlexTensor) -> [usize; 3] {
    let shape = ft.shape();
    assert!(
        shape.num_dims() >= 2,
        "batch norm takes [n, c, ...] tensors"
    );
    [
        shape[0],
        shape[1],
        shape.num_elements() / (shape[0] * shape[1]).max(1),
    ]
}

impl BatchNormOps for Flex {
    fn fused_batch_norm_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
        relu: bool,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        if !all_f32(&[&x, &gamma, &beta]) {
            return burns_train::<Self>(x, gamma, beta, epsilon, relu);
        }
        let shape = nsc(&x);
        let (x, gamma, beta) = (contiguous(x), contiguous(gamma), contiguous(beta));
        let (y, mean, variance) = forward_kernel(
            values(&x),
            shape,
            values(&gamma),
            values(&beta),
            epsilon,
            relu,
        );
        per_channel(&x, (y, mean, variance))
    }

    fn fused_batch_norm_train_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        epsilon: f64,
        relu: bool,
        output_grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        if !all_f32(&[&x, &gamma, &beta, &mean, &variance, &output_grad]) {
            let grads = (x, gamma, beta, mean, variance, output_grad);
            return burns_train_backward::<Self>(grads, epsilon, relu);
        }
        let shape = nsc(&x);
        let (x, gamma, dy) = (contiguous(x), contiguous(gamma), contiguous(output_grad));
        let (mean, variance) = (contiguous(mean), contiguous(variance));
        let beta = contiguous(beta);
        let (dx, dgamma, dbeta) = backward_kernel(
            values(&x),
            shape,
            values(&gamma),
            values(&mean),
            values(&variance),
            epsilon,
            relu.then(|| values(&beta)),
            values(&dy),
        );
        per_channel(&x, (dx, dgamma, dbeta))
    }
}

/// A result over the whole input (shaped as `x`, `[n, c, ...]`) and two per channel (`[c]`), as
/// flex tensors.
fn per_channel(
    x: &FlexTensor,
    (whole, first, second): (Vec<f32>, Vec<f32>, Vec<f32>),
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let channels = Shape::new([x.shape()[1]]);
    (
        flex_tensor(whole, x.shape()),
        flex_tensor(first, channels.clone()),
        flex_tensor(second, channels),
    )
}

impl<B: Backend + BatchNormOps, C: CheckpointStrategy> BatchNormOps for Autodiff<B, C> {
    fn fused_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        #[derive(Debug)]
        struct Norm;

        impl<B: Backend + BatchNormOps> Backward<B, 3> for Norm {
            /// The input, gamma and beta (checkpointed), the batch statistics, epsilon, whether
            /// a ReLU follows.
            type State = (
                NodeId,
                NodeId,
                NodeId,
                B::FloatTensorPrimitive,
                B::FloatTensorPrimitive,
                f64,
                bool,
            );

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_gamma, node_beta] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, gamma, beta, mean, variance, epsilon, relu) = ops.state;
                let x = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(x);
                let gamma = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(gamma);
                let beta = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(beta);
                let (dx, dgamma, dbeta) = B::fused_batch_norm_train_backward(
                    x, gamma, beta, mean, variance, epsilon, relu, grad,
                );
                for (node, grad) in [(node_x, dx), (node_gamma, dgamma), (node_beta, dbeta)] {
                    if let Some(node) = node {
                        grads.register::<B>(node.id, grad);
                    }
                }
            }
        }

        let prepared = Norm
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        let (output, mean, variance) = match prepared {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let gamma_state = prep.checkpoint(&gamma);
                let beta_state = prep.checkpoint(&beta);
                let (y, mean, variance) = B::fused_batch_norm_train(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    epsilon,
                    relu,
                );
                let state = (
                    x_state,
                    gamma_state,
                    beta_state,
                    mean.clone(),
                    variance.clone(),
                    epsilon,
                    relu,
                );
                (prep.finish(state, y), mean, variance)
            }
            OpsKind::UnTracked(prep) => {
                let (y, mean, variance) = B::fused_batch_norm_train(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    epsilon,
                    relu,
                );
                (prep.finish(y), mean, variance)
            }
        };
        // The statistics only feed the running averages: not differentiated.
        (output, Self::from_inner(mean), Self::from_inner(variance))
    }
}

/// `bn.forward(x)`: in training (an autodiff device and the module's training flag on) computed
/// by [`BatchNormOps`] (the kernels here on flex) with the running statistics updated as burn
/// updates them; in inference, on other devices than flex, and when [`crate::use_burn_ops`] said
/// so, burn's own.
pub fn forward<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    norm(bn, x, false)
}

/// `relu(bn.forward(x))`, in training as one operation (see [`forward`]): the ReLU applied as
/// the output is written, and its backward pass folded into the batch norm's, the mask computed
/// again from the input; two passes over the activation fewer forward, one fewer backward.
pub fn forward_relu<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    norm(bn, x, true)
}

fn norm<const D: usize>(bn: &BatchNorm, x: Tensor<D>, relu: bool) -> Tensor<D> {
    let training = in_training(bn, &x);
    match ghost::group(x.dims()[0]) {
        Some(group) if training => ghost::forward(bn, x, relu, group),
        _ => whole(bn, x, relu, true),
    }
}

/// The batch norm of `x` as one batch; in training, the running statistics are updated when
/// `update` is set.
fn whole<const D: usize>(bn: &BatchNorm, x: Tensor<D>, relu: bool, update: bool) -> Tensor<D> {
    let training = in_training(bn, &x);
    let update = update && ghost::updates_running();
    if !kernels_take(bn, &x) {
        let y = if training && !update {
            ghost::burns_without_running(bn, x)
        } else {
            bn.forward(x)
        };
        return if relu {
            burn::tensor::activation::relu(y)
        } else {
            y
        };
    }
    let device = x.device();
    let (y, mean, variance) = <Dispatch as BatchNormOps>::fused_batch_norm_train(
        x.into_dispatch(),
        bn.gamma.val().into_dispatch(),
        bn.beta.val().into_dispatch(),
        bn.epsilon,
        relu,
    );
    if update {
        update_running(bn, mean, variance, &device);
    }
    Tensor::from_dispatch(y)
}

/// Whether `bn` runs on `x` in training: an autodiff device and the module's training flag on.
fn in_training<const D: usize>(bn: &BatchNorm, x: &Tensor<D>) -> bool {
    x.device().is_autodiff() && bn.training.is_enabled()
}

/// Whether the kernels here take `bn` on `x`: in training, on flex, unless
/// [`crate::use_burn_ops`] said otherwise. Where they do, `x`'s channels must be the module's.
fn kernels_take<const D: usize>(bn: &BatchNorm, x: &Tensor<D>) -> bool {
    if crate::uses_burn_ops() || !in_training(bn, x) || !crate::runs_on(&x.device()) {
        return false;
    }
    let [channels] = bn.gamma.shape().dims();
    assert_eq!(
        x.dims()[1],
        channels,
        "batch norm over {channels} channels got an input of shape {:?}",
        x.dims()
    );
    true
}

/// The running statistics moved towards a batch's `mean` and `variance`, as burn moves them.
fn update_running(
    bn: &BatchNorm,
    mean: FloatTensor<Dispatch>,
    variance: FloatTensor<Dispatch>,
    device: &burn::tensor::Device,
) {
    let (mean, variance): (Tensor<1>, Tensor<1>) =
        (Tensor::from_dispatch(mean), Tensor::from_dispatch(variance));
    let momentum = bn.momentum;
    let running = |state: &burn::module::RunningState<Tensor<1>>, batch: Tensor<1>| {
        let old = state.value_sync().to_device(device);
        let new = old
            .mul_scalar(1.0 - momentum)
            .add(batch.detach().mul_scalar(momentum));
        state.update(new.detach());
    };
    running(&bn.running_mean, mean);
    running(&bn.running_var, variance);
}
