//! 2-D convolutions for the CPU backend, forward and backward, as a burn backend extension. Each
//! pass goes to one of four methods, as [`dispatch`]'s table of measured thresholds picks: im2col
//! and one matrix product per image ([`im2col`]), one product per kernel tap over a padded copy
//! ([`shifted`]), register-blocked AVX2/FMA kernels ([`direct`], in AVX-512 form where the CPU
//! has it), or for the input gradient the
//! flipped forward convolution ([`geometry::flipped`]).
//!
//! burn-flex's own convolution lays every input out channels-last first (on one thread) and
//! multiplies 512-pixel tiles; its weight gradient is a convolution of the input with the output
//! gradient as kernel, through the same path. `benches/conv_layers.rs` measures both, layer
//! by layer. The models call [`forward`] instead of `Conv2d::forward`; the results are the
//! same convolution up to float rounding (summation order), which the tests check against burn's.
//!
//! Backends without a kernel here (ndarray, for the backend comparison) run burn's own
//! convolution through the trait's default bodies; f64 and half-precision tensors on flex do too.

pub mod direct;
pub mod dispatch;
pub mod geometry;
pub mod im2col;
pub mod shifted;
mod spread;
mod wide;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Shape, Tensor};

use crate::{all_f32, contiguous, flex_tensor, values};
use geometry::Geometry;

/// The convolution and its two gradients, each defaulting to burn's own.
#[backend_extension(Flex, NdArray: cfg(feature = "ndarray"), Autodiff)]
pub trait ConvOps: Backend {
    /// `x` (`[n, c, h, w]`) convolved with `weight` (`[o, c / groups, kh, kw]`), no bias.
    fn im2col_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, None, options)
    }

    /// The gradient with respect to `x`, given the output's gradient.
    fn im2col_conv2d_x_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_x_backward(x, weight, output_grad, options)
    }

    /// The gradient with respect to `weight`, given the output's gradient.
    fn im2col_conv2d_weight_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_weight_backward(x, weight, output_grad, options)
    }
}

#[cfg(feature = "ndarray")]
impl ConvOps for burn::backend::NdArray {}

fn dims(ft: &FlexTensor) -> [usize; 4] {
    let shape = ft.shape();
    assert_eq!(shape.num_dims(), 4, "a 2-D convolution takes 4-D tensors");
    [shape[0], shape[1], shape[2], shape[3]]
}

fn geometry(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> Geometry {
    Geometry::new(dims(x), dims(weight), options).unwrap_or_else(|e| panic!("conv2d: {e}"))
}

impl ConvOps for Flex {
    fn im2col_conv2d(x: FlexTensor, weight: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        if !all_f32(&[&x, &weight]) {
            return Self::conv2d(x, weight, None, options);
        }
        let g = geometry(&x, &weight, &options);
        let (x, weight) = (contiguous(x), contiguous(weight));
        let y = im2col::forward(&g, values(&x), values(&weight));
        flex_tensor(y, Shape::new([g.n, g.o, g.oh, g.ow]))
    }

    fn im2col_conv2d_x_backward(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        if !all_f32(&[&x, &weight, &output_grad]) {
            return Self::conv2d_x_backward(x, weight, output_grad, options);
        }
        let g = geometry(&x, &weight, &options);
        let (weight, dy) = (contiguous(weight), contiguous(output_grad));
        let dx = im2col::input_grad(&g, values(&weight), values(&dy));
        flex_tensor(dx, Shape::new([g.n, g.c, g.h, g.w]))
    }

    fn im2col_conv2d_weight_backward(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        if !all_f32(&[&x, &weight, &output_grad]) {
            return Self::conv2d_weight_backward(x, weight, output_grad, options);
        }
        let g = geometry(&x, &weight, &options);
        let (x, dy) = (contiguous(x), contiguous(output_grad));
        let dw = im2col::weight_grad(&g, values(&x), values(&dy));
        flex_tensor(dw, weight.shape())
    }
}

impl<B: Backend + ConvOps, C: CheckpointStrategy> ConvOps for Autodiff<B, C> {
    fn im2col_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Conv;

        impl<B: Backend + ConvOps> Backward<B, 2> for Conv {
            type State = (NodeId, NodeId, ConvOptions<2>);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_weight] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, weight, options) = ops.state;
                let x = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(x);
                let weight = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(weight);
                if let Some(node) = node_x {
                    let dx = B::im2col_conv2d_x_backward(
                        x.clone(),
                        weight.clone(),
                        grad.clone(),
                        options.clone(),
                    );
                    grads.register::<B>(node.id, dx);
                }
                if let Some(node) = node_weight {
                    let dw = B::im2col_conv2d_weight_backward(x, weight, grad, options);
                    grads.register::<B>(node.id, dw);
                }
            }
        }

        match Conv
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                prep.finish(
                    (x_state, weight_state, options.clone()),
                    B::im2col_conv2d(x.into_primitive(), weight.into_primitive(), options),
                )
            }
            OpsKind::UnTracked(prep) => prep.finish(B::im2col_conv2d(
                x.into_primitive(),
                weight.into_primitive(),
                options,
            )),
        }
    }
}

/// `x` convolved with `weight`, plus `bias` per output channel: burn's `conv2d`, computed by
/// [`ConvOps`] (the im2col kernels) on flex unless [`crate::use_burn_ops`] said otherwise; burn's
/// own on other devices.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    if crate::uses_burn_ops() || !crate::runs_on(&x.device()) {
        return burn::tensor::module::conv2d(x, weight, bias, options);
    }
    let y = Tensor::from_dispatch(<Dispatch as ConvOps>::im2col_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        options,
    ));
    match bias {
        Some(bias) => {
            let o = bias.dims()[0];
            y + bias.reshape([1, o, 1, 1])
        }
        None => y,
    }
}

/// The options `conv` convolves an input of `x_dims` with, its padding resolved as burn's
/// `Conv2d::forward` resolves it (`Same`: output size ⌈size / stride⌉ for dilation 1, the odd
/// pixel of padding after; like burn, the dilation is not taken into account).
pub fn options(conv: &Conv2d, x_dims: [usize; 4]) -> ConvOptions<2> {
    let [_, _, h, w] = x_dims;
    let same = |size: usize, axis: usize| {
        let (k, stride) = (conv.kernel_size[axis], conv.stride[axis]);
        let needed = (size.div_ceil(stride).max(1) - 1) * stride + k;
        let total = needed.saturating_sub(size);
        (total / 2, total - total / 2)
    };
    let padding = match conv.padding {
        PaddingConfig2d::Valid => [(0, 0), (0, 0)],
        PaddingConfig2d::Same => [same(h, 0), same(w, 1)],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
    };
    ConvOptions::new_with_padding(conv.stride, padding, conv.dilation, conv.groups)
}

/// `conv.forward(x)`, computed by [`conv2d`].
pub fn forward(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let options = options(conv, x.dims());
    conv2d(
        x,
        conv.weight.val(),
        conv.bias.as_ref().map(|b| b.val()),
        options,
    )
}

#[cfg(test)]
mod tests;
