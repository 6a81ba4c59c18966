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
//! one forward and one backward, and the output it keeps for its backward pass, are gone). The
//! definitions are burn's (biased variance, `y = (x − mean) / sqrt(var + eps) · gamma + beta`);
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
use rayon::prelude::*;
use std::mem::MaybeUninit;

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

/// Lane count of the sums below: each plane is summed in this many f32 partial sums (which the
/// compiler keeps in vector registers), combined in f64 per plane and across planes.
const LANES: usize = 16;

/// Σ f(i) over one plane, f(i) computed from element i of each slice in `planes`.
fn lane_sum<const K: usize>(planes: [&[f32]; K], f: impl Fn([f32; K]) -> f32) -> f64 {
    let len = planes[0].len();
    let mut lanes = [0f32; LANES];
    let full = len - len % LANES;
    for start in (0..full).step_by(LANES) {
        for (l, lane) in lanes.iter_mut().enumerate() {
            *lane += f(planes.map(|p| p[start + l]));
        }
    }
    let tail: f64 = (full..len).map(|i| f(planes.map(|p| p[i])) as f64).sum();
    lanes.iter().map(|&v| v as f64).sum::<f64>() + tail
}

/// Over one plane: Σ g' and Σ g' · (x − m), where g' is `dy` where the forward pass's output
/// `(x − m) · a + b` is above 0 with `RELU` (with `mask` = (a, b)), else `dy`. One read of each,
/// in lanes as [`lane_sum`].
fn gradient_sums<const RELU: bool>(
    dy: &[f32],
    x: &[f32],
    m: f32,
    (a, b): (f32, f32),
) -> (f64, f64) {
    let masked = |g: f32, d: f32| if !RELU || d * a + b > 0.0 { g } else { 0.0 };
    let len = dy.len();
    let (mut sums, mut dots) = ([0f32; LANES], [0f32; LANES]);
    let full = len - len % LANES;
    for start in (0..full).step_by(LANES) {
        let (dy, x) = (&dy[start..start + LANES], &x[start..start + LANES]);
        for l in 0..LANES {
            let d = x[l] - m;
            let g = masked(dy[l], d);
            sums[l] += g;
            dots[l] += g * d;
        }
    }
    let (mut sum, mut dot) = (0f64, 0f64);
    for i in full..len {
        let d = x[i] - m;
        let g = masked(dy[i], d);
        sum += g as f64;
        dot += (g * d) as f64;
    }
    let total = |lanes: [f32; LANES]| lanes.iter().map(|&v| v as f64).sum::<f64>();
    (total(sums) + sum, total(dots) + dot)
}

/// The per-channel statistics of `x` (`[n, c, s]` flattened): mean and biased variance (two
/// passes: the mean first, then the squared deviations from it).
fn statistics(x: &[f32], [n, c, s]: [usize; 3]) -> Vec<(f64, f64)> {
    let count = (n * s) as f64;
    (0..c)
        .into_par_iter()
        .map(|ci| {
            let planes = || (0..n).map(move |b| &x[(b * c + ci) * s..][..s]);
            let sum: f64 = planes().map(|p| lane_sum([p], |[v]| v)).sum();
            let mean = sum / count;
            let m = mean as f32;
            let squares: f64 = planes()
                .map(|p| lane_sum([p], |[v]| (v - m) * (v - m)))
                .sum();
            // The deviations were taken from the f32-rounded mean: correct for the difference.
            let shift = mean - m as f64;
            (mean, (squares / count - shift * shift).max(0.0))
        })
        .collect()
}

/// A fresh `[n, c, s]` vector whose image `b`, channel `ci` plane is written by
/// `fill(b * c * s + ci * s, ci, plane)` (once, not zeroed first), images in parallel. Contract
/// (why this stays private): `fill` writes every element of the plane it is given.
fn planes_into(
    len: usize,
    [_, c, s]: [usize; 3],
    fill: impl Fn(usize, usize, &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let image = (c * s).max(1);
    let mut out: Vec<f32> = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(image)
        .enumerate()
        .for_each(|(b, out)| {
            for (ci, plane) in out.chunks_mut(s.max(1)).enumerate() {
                fill(b * image + ci * s, ci, plane);
            }
        });
    // SAFETY: the planes cover `0..len` and `fill` writes every element of each (see callers).
    unsafe { out.set_len(len) };
    out
}

/// Per channel, what the output is computed with: `(x − mean) · scale + beta`, `scale` =
/// `gamma / sqrt(variance + epsilon)` from the f32 variance the forward pass returns (so that the
/// backward pass gets the same scale, and a ReLU's mask, bit for bit).
fn scales(gamma: &[f32], variance: &[f32], epsilon: f64) -> Vec<f32> {
    gamma
        .iter()
        .zip(variance)
        .map(|(&g, &v)| (g as f64 / (v as f64 + epsilon).sqrt()) as f32)
        .collect()
}

/// Forward: (output, mean, variance); with `relu`, the output is `max(0, ·)`'s.
pub fn forward_kernel(
    x: &[f32],
    shape: [usize; 3],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
    relu: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let stats = statistics(x, shape);
    let mean: Vec<f32> = stats.iter().map(|&(m, _)| m as f32).collect();
    let variance: Vec<f32> = stats.iter().map(|&(_, v)| v as f32).collect();
    let scale = scales(gamma, &variance, epsilon);
    // The mean subtracted first, as burn does (x · a + b would cancel large terms when the mean
    // is large against the spread).
    let y = planes_into(x.len(), shape, |at, ci, out| {
        let (m, a, b) = (mean[ci], scale[ci], beta[ci]);
        let x = &x[at..at + out.len()];
        if relu {
            for (o, &x) in out.iter_mut().zip(x) {
                let v = (x - m) * a + b;
                o.write(if v > 0.0 { v } else { 0.0 });
            }
        } else {
            for (o, &x) in out.iter_mut().zip(x) {
                o.write((x - m) * a + b);
            }
        }
    });
    (y, mean, variance)
}

/// Backward: (input gradient, gamma gradient, beta gradient). `relu_beta`: the forward pass's
/// beta where it applied a ReLU, whose mask is computed again from `x` (see [`scales`]).
#[allow(clippy::too_many_arguments)]
pub fn backward_kernel(
    x: &[f32],
    shape: [usize; 3],
    gamma: &[f32],
    mean: &[f32],
    variance: &[f32],
    epsilon: f64,
    relu_beta: Option<&[f32]>,
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let [n, c, s] = shape;
    let count = (n * s) as f64;
    let inv_std: Vec<f64> = variance
        .iter()
        .map(|&v| 1.0 / (v as f64 + epsilon).sqrt())
        .collect();
    let scale = scales(gamma, variance, epsilon);
    let mask = |ci: usize| (scale[ci], relu_beta.map_or(0.0, |b| b[ci]));
    // Per channel: the sum of dy (beta's gradient) and of dy · x̂ (gamma's), dy masked by the
    // ReLU's where there is one.
    let sums: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ci| {
            let m = mean[ci];
            let (mut sum, mut dot) = (0f64, 0f64);
            for b in 0..n {
                let at = (b * c + ci) * s;
                let (g, v) = (&dy[at..][..s], &x[at..][..s]);
                let (plane_sum, plane_dot) = if relu_beta.is_some() {
                    gradient_sums::<true>(g, v, m, mask(ci))
                } else {
                    gradient_sums::<false>(g, v, m, mask(ci))
                };
                sum += plane_sum;
                dot += plane_dot;
            }
            (sum, dot * inv_std[ci])
        })
        .collect();
    // dx = gamma · inv_std · (dy − mean(dy) − x̂ · mean(dy · x̂)) with x̂ = (x − m) · inv_std:
    // dx = dy · k − (x − m) · q − r per channel.
    let mut k = vec![0f32; c];
    let mut q = vec![0f32; c];
    let mut r = vec![0f32; c];
    for ci in 0..c {
        let g = gamma[ci] as f64 * inv_std[ci];
        let mean_dy = sums[ci].0 / count;
        let mean_dyxhat = sums[ci].1 / count;
        k[ci] = g as f32;
        q[ci] = (g * inv_std[ci] * mean_dyxhat) as f32;
        r[ci] = (g * mean_dy) as f32;
    }
    let dx = planes_into(x.len(), shape, |at, ci, out| {
        let (m, k, q, r) = (mean[ci], k[ci], q[ci], r[ci]);
        let (dy, x) = (&dy[at..at + out.len()], &x[at..at + out.len()]);
        if relu_beta.is_some() {
            let (a, b) = mask(ci);
            for ((o, &g), &x) in out.iter_mut().zip(dy).zip(x) {
                let d = x - m;
                let g = if d * a + b > 0.0 { g } else { 0.0 };
                o.write(g * k - d * q - r);
            }
        } else {
            for ((o, &g), &x) in out.iter_mut().zip(dy).zip(x) {
                o.write(g * k - (x - m) * q - r);
            }
        }
    });
    let gamma_grad = sums.iter().map(|&(_, d)| d as f32).collect();
    let beta_grad = sums.iter().map(|&(s, _)| s as f32).collect();
    (dx, gamma_grad, beta_grad)
}

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
        let channels = Shape::new([shape[1]]);
        (
            flex_tensor(y, x.shape()),
            flex_tensor(mean, channels.clone()),
            flex_tensor(variance, channels),
        )
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
        let channels = Shape::new([shape[1]]);
        (
            flex_tensor(dx, x.shape()),
            flex_tensor(dgamma, channels.clone()),
            flex_tensor(dbeta, channels),
        )
    }
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
/// updates them; in inference, and when [`crate::use_burn_ops`] said so, burn's own.
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
    if crate::uses_burn_ops() || !(x.device().is_autodiff() && bn.training.is_enabled()) {
        let y = bn.forward(x);
        return if relu {
            burn::tensor::activation::relu(y)
        } else {
            y
        };
    }
    let [channels] = bn.gamma.shape().dims();
    assert_eq!(
        x.dims()[1],
        channels,
        "batch norm over {channels} channels got an input of shape {:?}",
        x.dims()
    );
    let device = x.device();
    let (y, mean, variance) = <Dispatch as BatchNormOps>::fused_batch_norm_train(
        x.into_dispatch(),
        bn.gamma.val().into_dispatch(),
        bn.beta.val().into_dispatch(),
        bn.epsilon,
        relu,
    );
    let (mean, variance): (Tensor<1>, Tensor<1>) =
        (Tensor::from_dispatch(mean), Tensor::from_dispatch(variance));
    let momentum = bn.momentum;
    let running = |state: &burn::module::RunningState<Tensor<1>>, batch: Tensor<1>| {
        let old = state.value_sync().to_device(&device);
        let new = old
            .mul_scalar(1.0 - momentum)
            .add(batch.detach().mul_scalar(momentum));
        state.update(new.detach());
    };
    running(&bn.running_mean, mean);
    running(&bn.running_var, variance);
    Tensor::from_dispatch(y)
}

#[cfg(test)]
mod tests {
    use burn::module::Param;
    use burn::nn::BatchNormConfig;
    use burn::tensor::Device;

    use super::*;
    use crate::testing::{assert_close, tensor, to_vec};

    /// A BatchNorm over `c` channels with gamma and beta not 1 and 0 (fresh running statistics:
    /// two of them share nothing).
    fn module(c: usize, device: &Device) -> BatchNorm {
        let mut bn = BatchNormConfig::new(c).with_momentum(0.3).init(device);
        bn.gamma = Param::from_tensor(tensor([c], 7, device).add_scalar(1.5));
        bn.beta = Param::from_tensor(tensor([c], 8, device));
        bn
    }

    /// Two training steps' outputs, running statistics and gradients (input, gamma, beta) of
    /// `sum(bn(x) · r)`, against burn's BatchNorm, for 4-D (offset inputs: a mean far from 0)
    /// and 2-D inputs.
    fn matches_burn<const D: usize>(shape: [usize; D], relu: bool) {
        let device = Device::flex().autodiff();
        let c = shape[1];
        let (ours, theirs) = (module(c, &device), module(c, &device));
        for step in 0..2 {
            let run = |bn: &BatchNorm, fused: bool| {
                let x = tensor(shape, 10 + step, &device)
                    .mul_scalar(3.0)
                    .add_scalar(5.0);
                let x = x.require_grad();
                let y = match (fused, relu) {
                    (true, false) => forward(bn, x.clone()),
                    (true, true) => forward_relu(bn, x.clone()),
                    (false, false) => bn.forward(x.clone()),
                    (false, true) => burn::tensor::activation::relu(bn.forward(x.clone())),
                };
                let r = tensor(shape, 20 + step, &device);
                let grads = (y.clone() * r).sum().backward();
                [
                    to_vec(y),
                    to_vec(x.grad(&grads).unwrap()),
                    to_vec(bn.gamma.grad(&grads).unwrap()),
                    to_vec(bn.beta.grad(&grads).unwrap()),
                    to_vec(bn.running_mean.value()),
                    to_vec(bn.running_var.value()),
                ]
            };
            let (a, b) = (run(&ours, true), run(&theirs, false));
            let names = [
                "output",
                "dx",
                "dgamma",
                "dbeta",
                "running mean",
                "running var",
            ];
            for (k, name) in names.iter().enumerate() {
                let what = format!("{shape:?} relu {relu} step {step}: {name}");
                assert_close(&a[k], &b[k], &what);
            }
        }
    }

    #[test]
    fn training_matches_burn_on_images() {
        let _turn = crate::testing::TURN
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for relu in [false, true] {
            matches_burn([4, 3, 5, 6], relu);
            matches_burn([1, 2, 7, 7], relu);
        }
    }

    #[test]
    fn training_matches_burn_on_features() {
        let _turn = crate::testing::TURN
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        matches_burn([6, 4], false);
        matches_burn([6, 4], true);
    }

    #[test]
    fn inference_is_burns() {
        let device = Device::flex();
        let bn = module(3, &device);
        let x = tensor([2, 3, 4, 4], 1, &device);
        assert_eq!(
            to_vec(forward(&bn, x.clone())),
            to_vec(bn.forward(x.clone()))
        );
        let relu = burn::tensor::activation::relu(bn.forward(x.clone()));
        assert_eq!(to_vec(forward_relu(&bn, x)), to_vec(relu));
    }
}
