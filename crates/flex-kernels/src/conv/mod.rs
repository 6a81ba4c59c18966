//! 2-D convolutions for the CPU backend: im2col + one matrix product per image ([`kernels`]), or
//! for stride-1 gradients with few output channels one product per kernel tap over a padded copy
//! of the image ([`shifted`]); forward and backward, as a burn backend extension.
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
/// [`ConvOps`] (the im2col kernels on flex) unless [`crate::use_burn_ops`] said otherwise.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    if crate::uses_burn_ops() {
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
mod tests {
    use burn::tensor::Device;
    use burn::tensor::module::conv2d as burn_conv2d;

    use super::dispatch::{Method, with_method};
    use super::*;
    use crate::testing::{assert_close, tensor, to_vec};

    /// A convolution's settings: input `[n, c, h, w]`, `o` outputs, kernel, stride, padding
    /// (top, bottom), (left, right), dilation, groups.
    struct Case {
        x: [usize; 4],
        o: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [(usize, usize); 2],
        dilation: [usize; 2],
        groups: usize,
    }

    const fn case(
        x: [usize; 4],
        o: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [(usize, usize); 2],
        dilation: [usize; 2],
        groups: usize,
    ) -> Case {
        Case {
            x,
            o,
            kernel,
            stride,
            padding,
            dilation,
            groups,
        }
    }

    /// Batches of 1 (the product spread inside) and 3 (images spread over a pool of 2 threads,
    /// see `on_two_threads`); 3x3 with and without padding, strides 2 and 3, 1x1 with and
    /// without stride (the pointwise path), 7x7, non-square kernels and inputs, asymmetric
    /// padding, dilation, groups, padding wider than the kernel reaches (rows and columns of only
    /// padding), a 1x1 with padding after only (not the pointwise path), an even kernel with
    /// one-sided padding (the shifted copy); the cases 12-14 and 16 are wide enough to be cut
    /// into several tiles of output rows (checked below; 14 and 16 for the shifted method); 15
    /// and 16 are stride-1 grouped convolutions (15: batch 1, a non-square kernel, unequal
    /// dilation, asymmetric padding); 17 and 18 have kernels of 3 and 2 taps (1x3, 2x1: the direct
    /// weight gradient's chunks of that many taps; 18 also 7 output channels, blocks of 6 and 2
    /// with a zero channel); 19 and 20 have rows 32 and 16 wide and an even number of output
    /// channels (the direct forward kernel writing the output row by row; 20 also its flipped
    /// input gradient, on one image); 21 and 22 have 6 rows 8 wide (the direct kernel two rows a
    /// block, forward and flipped input gradient; 22 on one image); 23 pads 3 after and none
    /// before (its flipped input gradient pads -1 after: `dy`'s last row and column are left
    /// out of the padded copy). Every case runs with each method where it applies (the shifted and
    /// the direct one: stride 1; the flipped one: the input gradient at stride 1).
    const CASES: [Case; 24] = [
        case([3, 4, 9, 9], 5, [3, 3], [1, 1], [(1, 1), (1, 1)], [1, 1], 1),
        case([1, 4, 9, 9], 5, [3, 3], [1, 1], [(1, 1), (1, 1)], [1, 1], 1),
        case(
            [3, 3, 11, 10],
            4,
            [3, 3],
            [2, 2],
            [(1, 1), (1, 1)],
            [1, 1],
            1,
        ),
        case([3, 6, 7, 7], 8, [1, 1], [1, 1], [(0, 0), (0, 0)], [1, 1], 1),
        case([3, 6, 7, 8], 8, [1, 1], [2, 2], [(0, 0), (0, 0)], [1, 1], 1),
        case(
            [2, 3, 16, 15],
            4,
            [7, 7],
            [2, 2],
            [(3, 3), (3, 3)],
            [1, 1],
            1,
        ),
        case([3, 2, 8, 9], 3, [2, 3], [1, 3], [(0, 1), (2, 0)], [1, 1], 1),
        case(
            [3, 4, 10, 10],
            2,
            [3, 3],
            [1, 1],
            [(2, 2), (2, 2)],
            [2, 2],
            1,
        ),
        case([3, 6, 8, 8], 4, [3, 3], [1, 2], [(1, 1), (1, 1)], [1, 1], 2),
        case([2, 2, 4, 4], 3, [3, 3], [1, 1], [(4, 3), (3, 4)], [1, 1], 1),
        case([3, 3, 5, 6], 2, [1, 1], [1, 1], [(0, 1), (0, 2)], [1, 1], 1),
        case([3, 2, 6, 6], 3, [2, 2], [1, 1], [(0, 1), (1, 0)], [1, 1], 1),
        case(
            [2, 64, 6, 60],
            3,
            [3, 3],
            [1, 1],
            [(1, 1), (1, 1)],
            [1, 1],
            1,
        ),
        case(
            [1, 40, 7, 70],
            2,
            [3, 3],
            [2, 1],
            [(1, 1), (1, 1)],
            [1, 1],
            1,
        ),
        case(
            [3, 40, 6, 300],
            40,
            [3, 3],
            [1, 1],
            [(1, 1), (1, 1)],
            [1, 1],
            1,
        ),
        case([1, 6, 7, 9], 4, [2, 3], [1, 1], [(1, 0), (2, 1)], [2, 1], 2),
        case(
            [2, 64, 6, 300],
            64,
            [3, 3],
            [1, 1],
            [(1, 1), (1, 1)],
            [1, 1],
            2,
        ),
        case([2, 5, 6, 7], 3, [1, 3], [1, 1], [(0, 0), (1, 1)], [1, 1], 1),
        case([1, 3, 5, 6], 7, [2, 1], [1, 1], [(1, 0), (0, 0)], [1, 1], 1),
        case(
            [2, 5, 4, 32],
            6,
            [3, 3],
            [1, 1],
            [(1, 1), (1, 1)],
            [1, 1],
            1,
        ),
        case(
            [1, 8, 3, 16],
            10,
            [3, 3],
            [1, 1],
            [(1, 1), (1, 1)],
            [1, 1],
            1,
        ),
        case([2, 4, 6, 8], 4, [3, 3], [1, 1], [(1, 1), (1, 1)], [1, 1], 1),
        case([1, 4, 6, 8], 6, [3, 3], [1, 1], [(1, 1), (1, 1)], [1, 1], 1),
        case([2, 3, 7, 7], 4, [3, 3], [1, 1], [(0, 3), (0, 3)], [1, 1], 1),
    ];

    const METHODS: [Method; 4] = [
        Method::Im2col,
        Method::Shifted,
        Method::Flipped,
        Method::Direct,
    ];

    #[test]
    fn the_wide_cases_take_several_tiles() {
        let geometry = |c: &Case| {
            let w = [c.o, c.x[1] / c.groups, c.kernel[0], c.kernel[1]];
            Geometry::new(c.x, w, &options(c)).unwrap()
        };
        for c in &CASES[12..=14] {
            assert!(geometry(c).tiles().count() > 1, "{:?}", c.x);
        }
        for c in [&CASES[14], &CASES[16]] {
            assert!(shifted::tile_count(&geometry(c)) > 1, "{:?}", c.x);
        }
    }

    fn options(c: &Case) -> ConvOptions<2> {
        ConvOptions::new_with_padding(c.stride, c.padding, c.dilation, c.groups)
    }

    /// Runs `f` on a pool of two threads: batches of 3 then spread images over the pool, batches
    /// of 1 spread the matrix products, whatever the machine's core count.
    fn on_two_threads(f: impl FnOnce() + Send) {
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap()
            .install(f)
    }

    #[test]
    fn forward_matches_burn() {
        for method in METHODS {
            on_two_threads(|| with_method(method, || forward_cases(method)))
        }
    }

    fn forward_cases(method: Method) {
        let device = Device::flex();
        for (i, c) in CASES.iter().enumerate() {
            let i = format!("{i} ({method:?})");
            let x = tensor(c.x, 1, &device);
            let w = tensor(
                [c.o, c.x[1] / c.groups, c.kernel[0], c.kernel[1]],
                2,
                &device,
            );
            let b = tensor([c.o], 3, &device);
            let ours = conv2d(x.clone(), w.clone(), Some(b.clone()), options(c));
            let reference = burn_conv2d(x, w, Some(b), options(c));
            assert_eq!(ours.dims(), reference.dims(), "case {i}");
            assert_close(&to_vec(ours), &to_vec(reference), &format!("case {i}"));
        }
    }

    /// The gradients of `sum(conv(x, w) + b) · r)` for a fixed random `r`, with respect to
    /// `x`, `w` and `b`, against burn's convolution's.
    #[test]
    fn gradients_match_burn() {
        for method in METHODS {
            on_two_threads(|| with_method(method, || gradient_cases(method)))
        }
    }

    fn gradient_cases(method: Method) {
        let device = Device::flex().autodiff();
        for (i, c) in CASES.iter().enumerate() {
            let i = format!("{i} ({method:?})");
            let w_shape = [c.o, c.x[1] / c.groups, c.kernel[0], c.kernel[1]];
            let grads = |ours: bool| {
                let x = tensor(c.x, 1, &device).require_grad();
                let w = tensor(w_shape, 2, &device).require_grad();
                let b = tensor([c.o], 3, &device).require_grad();
                let y = if ours {
                    conv2d(x.clone(), w.clone(), Some(b.clone()), options(c))
                } else {
                    burn_conv2d(x.clone(), w.clone(), Some(b.clone()), options(c))
                };
                let r = tensor(y.dims(), 4, &device);
                let grads = (y * r).sum().backward();
                [
                    to_vec(x.grad(&grads).unwrap()),
                    to_vec(w.grad(&grads).unwrap()),
                    to_vec(b.grad(&grads).unwrap()),
                ]
            };
            let (ours, reference) = (grads(true), grads(false));
            for (k, what) in ["x", "weight", "bias"].iter().enumerate() {
                assert_close(&ours[k], &reference[k], &format!("case {i}, d{what}"));
            }
        }
    }

    /// An input that is a view (axes swapped) is read in logical order.
    #[test]
    fn reads_views_in_logical_order() {
        let device = Device::flex();
        let x = tensor([5, 3, 6, 6], 1, &device).swap_dims(0, 1);
        let w = tensor([2, 5, 3, 3], 2, &device);
        let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let ours = conv2d(x.clone(), w.clone(), None, options.clone());
        let reference = burn_conv2d(x, w, None, options);
        assert_close(&to_vec(ours), &to_vec(reference), "swapped input");
    }

    #[test]
    fn forward_takes_the_modules_settings() {
        let device = Device::flex();
        let conv = burn::nn::conv::Conv2dConfig::new([4, 6], [3, 3])
            .with_stride([2, 1])
            .with_padding(burn::nn::PaddingConfig2d::Explicit(1, 0, 2, 1))
            .with_groups(2)
            .init(&device);
        let x = tensor([2, 4, 9, 7], 5, &device);
        assert_close(
            &to_vec(forward(&conv, x.clone())),
            &to_vec(conv.forward(x)),
            "Conv2d, explicit padding",
        );
        // `Same` with an even kernel and a stride: uneven padding, the extra pixel after.
        let conv = burn::nn::conv::Conv2dConfig::new([3, 2], [4, 2])
            .with_stride([2, 3])
            .with_padding(burn::nn::PaddingConfig2d::Same)
            .init(&device);
        let x = tensor([2, 3, 9, 7], 6, &device);
        let ours = forward(&conv, x.clone());
        assert_eq!(ours.dims(), [2, 2, 5, 3]);
        assert_close(
            &to_vec(ours),
            &to_vec(conv.forward(x)),
            "Conv2d, same padding",
        );
    }

    #[test]
    fn rejects_mismatched_shapes_with_the_reason() {
        let options = ConvOptions::new([1, 1], [0, 0], [1, 1], 2);
        let err = Geometry::new([1, 4, 5, 5], [3, 4, 3, 3], &options).unwrap_err();
        assert!(err.contains("2 group(s)"), "{err}");
        let options = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
        let err = Geometry::new([1, 4, 2, 5], [3, 4, 3, 3], &options).unwrap_err();
        assert!(err.contains("larger than the padded input"), "{err}");
        let err = Geometry::new([1, 4, 5, 5], [3, 4, 0, 3], &options).unwrap_err();
        assert!(err.contains("at least 1"), "{err}");
    }
}
