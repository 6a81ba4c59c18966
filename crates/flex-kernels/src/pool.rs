//! 2-D max pooling for the CPU backend, forward and backward, as a burn backend extension.
//!
//! burn-flex's own goes through its 3-D pooling: every output position divides its index into
//! coordinates and clips its window in a general loop, and the forward pass in training also
//! writes an i64 index per output for the backward pass to scatter through. Here each plane's
//! window bounds are worked out once per row and column, the inner columns of a row are
//! compared all at once without branches, the forward pass keeps a u32 index per output, and
//! the backward pass adds each output's gradient at its index. The rule is burn's: the window's
//! first element in row-major order, replaced by any later one that is greater or NaN (a NaN
//! wins, the last one in the window); padding is never chosen. Values and gradients equal
//! burn's to the bit (the gradients are added in the same order).
//!
//! Square and rectangular windows with any stride and symmetric padding run here; dilation,
//! `ceil_mode` and uneven padding take burn's own (see [`max_pool2d`]).

use std::ops::Range;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2d;
use burn::tensor::{Bytes, DType, IntDType, Shape, Tensor};
use rayon::prelude::*;

use crate::{all_f32, contiguous, flex_tensor, values};

/// Max pooling without dilation or `ceil_mode`, and its backward pass, each defaulting to
/// burn's own.
#[backend_extension(Flex, NdArray: cfg(feature = "ndarray"), Autodiff)]
pub trait MaxPoolOps: Backend {
    /// The maximum of every `kernel` window of `x` (`[n, c, h, w]`), `stride` apart, over the
    /// input with `padding` on each side, and where each came from, in the form the backward
    /// pass of the same backend reads.
    fn window_max_pool2d(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> (FloatTensor<Self>, IntTensor<Self>) {
        burns::<Self>(x, kernel, stride, padding)
    }

    /// The gradient with respect to `x`, given the output's gradient and the forward pass's
    /// indices.
    fn window_max_pool2d_backward(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        output_grad: FloatTensor<Self>,
        indices: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        burns_backward::<Self>(x, (kernel, stride, padding), output_grad, indices)
    }
}

#[cfg(feature = "ndarray")]
impl MaxPoolOps for burn::backend::NdArray {}

/// [`MaxPoolOps::window_max_pool2d`] by burn's own operations (the trait's default, and flex's
/// for other dtypes than f32), with burn's i64 indices.
fn burns<B: Backend>(
    x: FloatTensor<B>,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> (FloatTensor<B>, IntTensor<B>) {
    let r = B::max_pool2d_with_indices(x, kernel, stride, padding, [1, 1], false, IntDType::I64);
    (r.output, r.indices)
}

/// [`MaxPoolOps::window_max_pool2d_backward`] by burn's own operations, given burn's indices.
fn burns_backward<B: Backend>(
    x: FloatTensor<B>,
    (kernel, stride, padding): ([usize; 2], [usize; 2], [usize; 2]),
    output_grad: FloatTensor<B>,
    indices: IntTensor<B>,
) -> FloatTensor<B> {
    let (dilation, ceil_mode) = ([1, 1], false);
    let r = B::max_pool2d_with_indices_backward(
        x,
        kernel,
        stride,
        padding,
        dilation,
        ceil_mode,
        output_grad,
        indices,
    );
    r.x_grad
}

/// One pooling over `[n, c, h, w]`: the input and output sizes and each output row's and
/// column's window.
struct Pooling {
    planes: usize,
    input: [usize; 2],
    output: [usize; 2],
    /// The window's columns, the stride and padding along a row.
    row_window: [usize; 3],
    rows: Vec<Range<usize>>,
    cols: Vec<Range<usize>>,
    /// The output columns whose windows lie whole inside the row.
    inner: Range<usize>,
}

impl Pooling {
    fn new(shape: &Shape, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2]) -> Self {
        assert_eq!(shape.num_dims(), 4, "2-D max pooling takes 4-D tensors");
        let (h, w) = (shape[2], shape[3]);
        let axis = |size: usize, a: usize| {
            let (k, s, p) = (kernel[a], stride[a], padding[a]);
            assert!(
                k >= 1 && s >= 1 && size + 2 * p >= k,
                "max pooling: a window of {k} with stride {s} and padding {p} over {size}"
            );
            let out = (size + 2 * p - k) / s + 1;
            let windows = (0..out)
                .map(|o| {
                    let start = o * s;
                    start.max(p) - p..(start + k).min(size + p).saturating_sub(p)
                })
                .collect::<Vec<_>>();
            (out, windows)
        };
        let ((oh, rows), (ow, cols)) = (axis(h, 0), axis(w, 1));
        let (k, s, p) = (kernel[1], stride[1], padding[1]);
        let first = p.div_ceil(s).min(ow);
        let end = if w + p >= k {
            ((w + p - k) / s + 1).min(ow)
        } else {
            0
        };
        assert!(
            h * w <= u32::MAX as usize,
            "max pooling: a plane of {h} x {w} has more elements than u32 indices reach"
        );
        Pooling {
            planes: shape[0] * shape[1],
            input: [h, w],
            output: [oh, ow],
            row_window: [k, s, p],
            rows,
            cols,
            inner: first..end.max(first),
        }
    }

    /// The window maximum at output `(oy, ox)` of `plane` and its index in the plane (`None`
    /// for a window that holds only padding: -inf, as burn's).
    #[inline(always)]
    fn window_max(&self, plane: &[f32], oy: usize, ox: usize) -> (f32, Option<usize>) {
        let w = self.input[1];
        let mut best = (f32::NEG_INFINITY, None);
        for iy in self.rows[oy].clone() {
            for ix in self.cols[ox].clone() {
                let i = iy * w + ix;
                let v = plane[i];
                if best.1.is_none() || v > best.0 || v.is_nan() {
                    best = (v, Some(i));
                }
            }
        }
        best
    }

    /// Output row `oy` of `plane`: each window's maximum into `best` and its index in the plane
    /// into `at` (`u32::MAX` for a window of padding alone). The edge columns take
    /// [`Self::window_max`]; between them each element of the window, in the scan's order, is
    /// gathered for all columns at once (`column`) and compared and selected over contiguous
    /// lanes, which the compiler vectorizes without branches (a branch per element mispredicts
    /// on most of them).
    fn row_max(
        &self,
        plane: &[f32],
        oy: usize,
        (best, at): (&mut [f32], &mut [u32]),
        column: &mut [f32],
    ) {
        let [kw, s, p] = self.row_window;
        let w = self.input[1];
        let inner = self.inner.clone();
        for ox in (0..inner.start).chain(inner.end..self.output[1]) {
            let (v, i) = self.window_max(plane, oy, ox);
            best[ox] = v;
            at[ox] = i.map_or(u32::MAX, |i| i as u32);
        }
        let n = inner.len();
        if n == 0 {
            return;
        }
        let (best, at, column) = (
            &mut best[inner.clone()],
            &mut at[inner.clone()],
            &mut column[..n],
        );
        let mut first = true;
        for iy in self.rows[oy].clone() {
            for kx in 0..kw {
                let start = iy * w + inner.start * s + kx - p;
                let line = &plane[start..];
                for (j, c) in column.iter_mut().enumerate() {
                    *c = line[j * s];
                }
                if first {
                    best.copy_from_slice(column);
                    for (j, a) in at.iter_mut().enumerate() {
                        *a = (start + j * s) as u32;
                    }
                    first = false;
                    continue;
                }
                for (j, ((b, a), &v)) in best
                    .iter_mut()
                    .zip(at.iter_mut())
                    .zip(column.iter())
                    .enumerate()
                {
                    // `take` is all ones or zero and the selects are bit operations, which the
                    // compiler vectorizes (plain selects became a branch per element).
                    let take = (u32::from(v > *b) | u32::from(v.is_nan())).wrapping_neg();
                    *b = f32::from_bits((v.to_bits() & take) | (b.to_bits() & !take));
                    *a = (((start + j * s) as u32) & take) | (*a & !take);
                }
            }
        }
        if first {
            best.fill(f32::NEG_INFINITY);
            at.fill(u32::MAX);
        }
    }

    /// The maxima, and the index of each in its plane (`u32::MAX` for a window of padding
    /// alone).
    fn forward(&self, x: &[f32]) -> (Vec<f32>, Vec<u32>) {
        let ([h, w], [oh, ow]) = (self.input, self.output);
        let mut y = vec![0f32; self.planes * oh * ow];
        let mut at = vec![0u32; self.planes * oh * ow];
        let (chunk, row) = ((oh * ow).max(1), ow.max(1));
        y.par_chunks_mut(chunk)
            .zip(at.par_chunks_mut(chunk))
            .enumerate()
            .for_each(|(p, (y, at))| {
                let plane = &x[p * h * w..][..h * w];
                let mut column = vec![0f32; ow];
                let rows = y.chunks_exact_mut(row).zip(at.chunks_exact_mut(row));
                for (oy, (y, at)) in rows.enumerate() {
                    self.row_max(plane, oy, (y, at), &mut column);
                }
            });
        (y, at)
    }

    /// The input gradient: each output's gradient added at its index, in output order (as
    /// burn adds them).
    fn backward(&self, at: &[u32], dy: &[f32]) -> Vec<f32> {
        let ([h, w], [oh, ow]) = (self.input, self.output);
        let mut dx = vec![0f32; self.planes * h * w];
        dx.par_chunks_mut((h * w).max(1))
            .enumerate()
            .for_each(|(p, grad)| {
                let (at, dy) = (&at[p * oh * ow..][..oh * ow], &dy[p * oh * ow..][..oh * ow]);
                for (&i, &g) in at.iter().zip(dy) {
                    if i != u32::MAX {
                        grad[i as usize] += g;
                    }
                }
            });
        dx
    }
}

impl MaxPoolOps for Flex {
    fn window_max_pool2d(
        x: FlexTensor,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> (FlexTensor, FlexTensor) {
        if !all_f32(&[&x]) {
            return burns::<Self>(x, kernel, stride, padding);
        }
        let x = contiguous(x);
        let shape = x.shape();
        let pooling = Pooling::new(&shape, kernel, stride, padding);
        let [oh, ow] = pooling.output;
        let (y, at) = pooling.forward(values(&x));
        let out = Shape::new([shape[0], shape[1], oh, ow]);
        let at = FlexTensor::new(
            Bytes::from_elems(at),
            Layout::contiguous(out.clone()),
            DType::U32,
        );
        (flex_tensor(y, out), at)
    }

    fn window_max_pool2d_backward(
        x: FlexTensor,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        output_grad: FlexTensor,
        indices: FlexTensor,
    ) -> FlexTensor {
        if indices.dtype() != DType::U32 || !all_f32(&[&output_grad]) {
            return burns_backward::<Self>(x, (kernel, stride, padding), output_grad, indices);
        }
        let shape = x.shape();
        let pooling = Pooling::new(&shape, kernel, stride, padding);
        let [oh, ow] = pooling.output;
        let dy = contiguous(output_grad);
        assert_eq!(
            dy.shape().dims::<4>(),
            [shape[0], shape[1], oh, ow],
            "max pooling's output gradient is shaped as its output"
        );
        let at = indices
            .as_slice::<u32>()
            .expect("the forward pass's indices are a dense u32 tensor");
        flex_tensor(pooling.backward(at, values(&dy)), shape)
    }
}

impl<B: Backend + MaxPoolOps, C: CheckpointStrategy> MaxPoolOps for Autodiff<B, C> {
    fn window_max_pool2d(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> (FloatTensor<Self>, IntTensor<Self>) {
        #[derive(Debug)]
        struct Pool;

        impl<B: Backend + MaxPoolOps> Backward<B, 1> for Pool {
            /// The input (checkpointed), the window, the stride, the padding and the forward
            /// pass's indices.
            type State = (
                NodeId,
                [usize; 2],
                [usize; 2],
                [usize; 2],
                B::IntTensorPrimitive,
            );

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, kernel, stride, padding, indices) = ops.state;
                let x = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(x);
                if let Some(node) = node_x {
                    let dx =
                        B::window_max_pool2d_backward(x, kernel, stride, padding, grad, indices);
                    grads.register::<B>(node.id, dx);
                }
            }
        }

        match Pool.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let (y, at) = B::window_max_pool2d(x.into_primitive(), kernel, stride, padding);
                let state = (x_state, kernel, stride, padding, at.clone());
                (prep.finish(state, y), at)
            }
            OpsKind::UnTracked(prep) => {
                let (y, at) = B::window_max_pool2d(x.into_primitive(), kernel, stride, padding);
                (prep.finish(y), at)
            }
        }
    }
}

/// `pool.forward(x)`: computed by [`MaxPoolOps`] on flex unless [`crate::use_burn_ops`] said
/// otherwise; burn's own on other devices, and for a dilated pooling, `ceil_mode`, `Same`
/// padding or explicit padding that differs between the two sides of an axis.
pub fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let padding = match pool.padding {
        PaddingConfig2d::Valid => Some([0, 0]),
        PaddingConfig2d::Explicit(top, left, bottom, right) => {
            (top == bottom && left == right).then_some([top, left])
        }
        PaddingConfig2d::Same => None,
    };
    let padding = match padding {
        Some(padding) if pool.dilation == [1, 1] && !pool.ceil_mode => padding,
        _ => return pool.forward(x),
    };
    if crate::uses_burn_ops() || !crate::runs_on(&x.device()) {
        return pool.forward(x);
    }
    let (y, _) = <Dispatch as MaxPoolOps>::window_max_pool2d(
        x.into_dispatch(),
        pool.kernel_size,
        pool.stride,
        padding,
    );
    Tensor::from_dispatch(y)
}

#[cfg(test)]
mod tests;
