//! `relu(bn(x) + residual)`, the end of a residual block, as one operation in training: forward,
//! the output written in the pass that normalizes (the sum's and the ReLU's own passes over the
//! activation are gone); backward, the output gradient masked by the output's sign once, and
//! that masked gradient both the residual's gradient and the batch norm's output gradient. The
//! mask comes from the output the operation keeps (which the next layer keeps anyway), so
//! nothing is computed again. The forward pass equals this crate's batch norm followed by burn's
//! sum and ReLU to the bit; the backward pass equals burn's to rounding (its batch norm sums in
//! another order).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{AutodiffBackend, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::nn::BatchNorm;
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::kernels::{backward_kernel, forward_add_relu_kernel};
use super::{ghost, kernels_take, nsc, per_channel, update_running};
use crate::{all_f32, contiguous, flex_tensor, values};

/// Training-mode `relu(batch_norm(x) + residual)` and its backward pass, each defaulting to
/// burn's own operations.
#[backend_extension(Flex, NdArray: cfg(feature = "ndarray"), Autodiff)]
pub trait ResidualNormOps: Backend {
    /// `max(0, bn(x) + residual)` with the batch's statistics: (output, mean, biased variance).
    fn batch_norm_add_relu_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        burns_forward::<Self>(x, gamma, beta, residual, epsilon)
    }

    /// The gradients with respect to `x`, `gamma`, `beta` and the residual, given the forward
    /// pass's statistics and `output`, and the output's gradient.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_add_relu_train_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        output: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    ) {
        burns_backward::<Self>((x, gamma, mean, variance), epsilon, output, output_grad)
    }
}

#[cfg(feature = "ndarray")]
impl ResidualNormOps for burn::backend::NdArray {}

/// [`ResidualNormOps::batch_norm_add_relu_train`] by burn's own operations (the trait's
/// default, and flex's for other dtypes than f32).
fn burns_forward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    residual: FloatTensor<B>,
    epsilon: f64,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let r = B::batch_norm_train(x, gamma, beta, epsilon);
    let output = B::relu(B::float_add(r.output, residual));
    (output, r.mean, r.variance)
}

/// [`ResidualNormOps::batch_norm_add_relu_train_backward`] by burn's own operations, given
/// `(x, gamma, mean, variance)`: the gradients of `x`, `gamma`, `beta` and the residual.
#[allow(clippy::type_complexity)]
fn burns_backward<B: Backend>(
    (x, gamma, mean, variance): (
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
    ),
    epsilon: f64,
    output: FloatTensor<B>,
    output_grad: FloatTensor<B>,
) -> (
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
) {
    let grad = B::relu_backward(output, output_grad);
    let r = B::batch_norm_train_backward(x, gamma, mean, variance, epsilon, grad.clone());
    (r.x_grad, r.gamma_grad, r.beta_grad, grad)
}

impl ResidualNormOps for Flex {
    fn batch_norm_add_relu_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        residual: FlexTensor,
        epsilon: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let same = x.shape() == residual.shape();
        if !all_f32(&[&x, &gamma, &beta, &residual]) || !same {
            return burns_forward::<Self>(x, gamma, beta, residual, epsilon);
        }
        let shape = nsc(&x);
        let (x, gamma, beta) = (contiguous(x), contiguous(gamma), contiguous(beta));
        let residual = contiguous(residual);
        let (y, mean, variance) = forward_add_relu_kernel(
            values(&x),
            shape,
            (values(&gamma), values(&beta)),
            values(&residual),
            epsilon,
        );
        per_channel(&x, (y, mean, variance))
    }

    fn batch_norm_add_relu_train_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        epsilon: f64,
        output: FlexTensor,
        output_grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor, FlexTensor) {
        if !all_f32(&[&x, &gamma, &mean, &variance, &output, &output_grad]) {
            let stats = (x, gamma, mean, variance);
            return burns_backward::<Self>(stats, epsilon, output, output_grad);
        }
        let shape = nsc(&x);
        let (x, gamma, dy) = (contiguous(x), contiguous(gamma), contiguous(output_grad));
        let (mean, variance, y) = (contiguous(mean), contiguous(variance), contiguous(output));
        // The ReLU's gradient: dy where the output is above 0 (as burn's relu_backward).
        let grad: Vec<f32> = values(&dy)
            .par_iter()
            .zip(values(&y))
            .map(|(&g, &y)| if y > 0.0 { g } else { 0.0 })
            .collect();
        let (dx, dgamma, dbeta) = backward_kernel(
            values(&x),
            shape,
            values(&gamma),
            values(&mean),
            values(&variance),
            epsilon,
            None,
            &grad,
        );
        let (dx, dgamma, dbeta) = per_channel(&x, (dx, dgamma, dbeta));
        (dx, dgamma, dbeta, flex_tensor(grad, x.shape()))
    }
}

impl<B: Backend + ResidualNormOps, C: CheckpointStrategy> ResidualNormOps for Autodiff<B, C> {
    fn batch_norm_add_relu_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        #[derive(Debug)]
        struct NormAddRelu;

        impl<B: Backend + ResidualNormOps> Backward<B, 4> for NormAddRelu {
            /// The input and gamma (checkpointed), the batch statistics, epsilon, the output.
            type State = (
                NodeId,
                NodeId,
                B::FloatTensorPrimitive,
                B::FloatTensorPrimitive,
                f64,
                B::FloatTensorPrimitive,
            );

            fn backward(
                self,
                ops: Ops<Self::State, 4>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let grad = grads.consume::<B>(&ops.node);
                let (x, gamma, mean, variance, epsilon, output) = ops.state;
                let x = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(x);
                let gamma = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(gamma);
                let (dx, dgamma, dbeta, dresidual) = B::batch_norm_add_relu_train_backward(
                    x, gamma, mean, variance, epsilon, output, grad,
                );
                let found = [dx, dgamma, dbeta, dresidual];
                for (node, grad) in ops.parents.into_iter().zip(found) {
                    if let Some(node) = node {
                        grads.register::<B>(node.id, grad);
                    }
                }
            }
        }

        let parents = [x.node(), gamma.node(), beta.node(), residual.node()];
        let prepared = NormAddRelu.prepare::<C>(parents).compute_bound().stateful();
        let forward = |x: Self::FloatTensorPrimitive,
                       gamma: Self::FloatTensorPrimitive,
                       beta: Self::FloatTensorPrimitive,
                       residual: Self::FloatTensorPrimitive| {
            B::batch_norm_add_relu_train(
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
                residual.into_primitive(),
                epsilon,
            )
        };
        let (output, mean, variance) = match prepared {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let gamma_state = prep.checkpoint(&gamma);
                let (y, mean, variance) = forward(x, gamma, beta, residual);
                let state = (
                    x_state,
                    gamma_state,
                    mean.clone(),
                    variance.clone(),
                    epsilon,
                    y.clone(),
                );
                (prep.finish(state, y), mean, variance)
            }
            OpsKind::UnTracked(prep) => {
                let (y, mean, variance) = forward(x, gamma, beta, residual);
                (prep.finish(y), mean, variance)
            }
        };
        // The statistics only feed the running averages: not differentiated.
        (output, Self::from_inner(mean), Self::from_inner(variance))
    }
}

/// `relu(bn.forward(x) + residual)`: in training (see [`super::forward`]) one operation, the
/// running statistics updated as burn updates them; in inference, on other devices than flex,
/// with ghost groups ([`ghost`]) and when [`crate::use_burn_ops`] said so, the three apart
/// (the batch norm through [`super::forward`]).
pub fn forward_add_relu<const D: usize>(
    bn: &BatchNorm,
    x: Tensor<D>,
    residual: Tensor<D>,
) -> Tensor<D> {
    if ghost::group(x.dims()[0]).is_some() || !kernels_take(bn, &x) {
        return burn::tensor::activation::relu(super::forward(bn, x) + residual);
    }
    assert_eq!(
        x.dims(),
        residual.dims(),
        "the residual added after a batch norm is shaped as its input"
    );
    let device = x.device();
    let (y, mean, variance) = <Dispatch as ResidualNormOps>::batch_norm_add_relu_train(
        x.into_dispatch(),
        bn.gamma.val().into_dispatch(),
        bn.beta.val().into_dispatch(),
        residual.into_dispatch(),
        bn.epsilon,
    );
    if ghost::updates_running() {
        update_running(bn, mean, variance, &device);
    }
    Tensor::from_dispatch(y)
}
