//! 2-D convolution and its two gradients on NCHW f32 buffers, one image at a time: the image's
//! patches laid out as a `[fan-in, output pixels]` matrix (im2col), then one matrix product per
//! image and group. Images are spread over the thread pool; fewer images than threads leave the
//! parallelism to the matrix product instead.
//!
//! Per image and group, with `K` = (channels per group) x kh x kw and `P` = output pixels:
//! - forward: `y[og, P] = w[og, K] · col[K, P]`;
//! - weight gradient: `dw[og, K] += dy[og, P] · col[K, P]ᵀ`, summed over the images;
//! - input gradient: `dcol[K, P] = w[og, K]ᵀ · dy[og, P]`, then each patch element added back to
//!   the pixel it came from (col2im).
//!
//! A 1x1 convolution with stride 1 and no padding reads (and writes) the image itself as `col`.
//! Stride-1 forward passes and weight gradients of layers with up to 64 output channels go to
//! the register-blocked kernels of [`super::direct`] on CPUs with AVX2 and FMA, and stride-1
//! gradients with few output channels otherwise to [`super::shifted`], neither of which needs a
//! patch matrix; a stride-1 input gradient can also be computed as a forward convolution of `dy`
//! ([`flipped`]), itself through im2col or the direct kernel. [`method`] picks;
//! [`with_method`](super::dispatch::with_method) overrides, for tests and benches.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::ops::Range;

use super::dispatch::{Method, Pass, method};
use super::geometry::{Geometry, flipped};
use super::spread::{inner, matmul, matmul_into, per_image, sum_over_images, tile_height, tiles};
use super::{direct, shifted};
use crate::images_into;

thread_local! {
    /// The patch matrix of the image this thread works on, kept for the next call (it only grows).
    static COL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The patch-matrix side of [`Geometry`].
impl Geometry {
    /// Output rows per tile: a tile's patch matrix (`k` x rows x `ow` floats) stays in the
    /// core's L2 cache between im2col and the matrix product.
    fn tile_rows(&self) -> usize {
        tile_height(self.oh, 4 * self.k() * self.ow)
    }

    /// The output row ranges of the tiles.
    pub(super) fn tiles(&self) -> impl Iterator<Item = Range<usize>> + use<> {
        tiles(self.oh, self.tile_rows())
    }

    /// Every patch matrix row: which input plane it reads, at which offsets, and which of its
    /// output rows and columns read inside the input.
    fn patch_rows(&self) -> Vec<PatchRow> {
        let g = *self;
        let [sh, sw] = g.stride;
        let [dh, dw] = g.dilation;
        let [ph, pw] = g.pad;
        (0..g.cg())
            .flat_map(move |ci| {
                (0..g.kh).flat_map(move |ky| {
                    (0..g.kw).map(move |kx| {
                        let y_off = (ky * dh) as isize - ph as isize;
                        let x_off = (kx * dw) as isize - pw as isize;
                        let (oy_lo, oy_hi) = Self::valid(g.oh, g.h, sh, y_off);
                        let (lo, hi) = Self::valid(g.ow, g.w, sw, x_off);
                        let (oy_lo, oy_hi) = if lo == hi { (0, 0) } else { (oy_lo, oy_hi) };
                        PatchRow {
                            row: (ci * g.kh + ky) * g.kw + kx,
                            plane: ci * g.h * g.w,
                            y_off,
                            x_off,
                            oy: oy_lo..oy_hi,
                            lo,
                            hi,
                        }
                    })
                })
            })
            .collect()
    }

    /// Where output pixel (`oy`, `lo`) of patch row `r` reads: the first input element of that
    /// output row's valid columns (not negative, by `valid`).
    fn source(&self, r: &PatchRow, oy: usize) -> usize {
        let iy = ((oy * self.stride[0]) as isize + r.y_off) as usize;
        let ix = ((r.lo * self.stride[1]) as isize + r.x_off) as usize;
        r.plane + iy * self.w + ix
    }

    /// Lays the output rows `rows` of one group of one image (`image`: that group's `cg` planes)
    /// out as their patch matrix: `k` rows of `rows.len() * ow` columns.
    fn im2col(&self, taps: &[PatchRow], image: &[f32], rows: Range<usize>, col: &mut [f32]) {
        let (ow, sw) = (self.ow, self.stride[1]);
        let len = rows.len() * ow;
        // Stride 1 with as many output as input columns (a "same" convolution): output pixel j
        // of a patch row reads input element j + a constant, so the valid rows copy as one block
        // and only the columns that read padding are zeroed after.
        let shifted = self.stride == [1, 1] && ow == self.w;
        for r in taps {
            let dst = &mut col[r.row * len..][..len];
            let a = r.oy.start.clamp(rows.start, rows.end);
            let b = r.oy.end.clamp(a, rows.end);
            dst[..(a - rows.start) * ow].fill(0.0);
            dst[(b - rows.start) * ow..].fill(0.0);
            if a == b {
                continue;
            }
            if shifted {
                let first = (a - rows.start) * ow + r.lo;
                let last = (b - 1 - rows.start) * ow + r.hi;
                let src = self.source(r, a);
                dst[first..last].copy_from_slice(&image[src..src + last - first]);
                for oy in a..b {
                    let line = &mut dst[(oy - rows.start) * ow..][..ow];
                    line[..r.lo].fill(0.0);
                    line[r.hi..].fill(0.0);
                }
                continue;
            }
            for oy in a..b {
                let line = &mut dst[(oy - rows.start) * ow..][..ow];
                line[..r.lo].fill(0.0);
                line[r.hi..].fill(0.0);
                let src = &image[self.source(r, oy)..];
                if sw == 1 {
                    line[r.lo..r.hi].copy_from_slice(&src[..r.hi - r.lo]);
                } else {
                    for (d, s) in line[r.lo..r.hi].iter_mut().zip(src.iter().step_by(sw)) {
                        *d = *s;
                    }
                }
            }
        }
    }

    /// Adds the patch matrix of the output rows `rows` back onto the image it came from (one
    /// group's planes).
    fn col2im(&self, taps: &[PatchRow], col: &[f32], rows: Range<usize>, image: &mut [f32]) {
        let (ow, sw) = (self.ow, self.stride[1]);
        let len = rows.len() * ow;
        for r in taps {
            let patch = &col[r.row * len..][..len];
            let a = r.oy.start.clamp(rows.start, rows.end);
            let b = r.oy.end.clamp(a, rows.end);
            for oy in a..b {
                let src = &patch[(oy - rows.start) * ow..][r.lo..r.hi];
                let dst = &mut image[self.source(r, oy)..];
                if sw == 1 {
                    for (d, s) in dst[..src.len()].iter_mut().zip(src) {
                        *d += *s;
                    }
                } else {
                    for (d, s) in dst.iter_mut().step_by(sw).zip(src) {
                        *d += *s;
                    }
                }
            }
        }
    }
}

/// One row of a patch matrix: kernel tap (`ci`, `ky`, `kx`) of one group.
#[derive(Debug, Clone)]
struct PatchRow {
    /// Its index in the patch matrix.
    row: usize,
    /// Where its input plane starts in the group's planes.
    plane: usize,
    /// Input row of output row `oy`: `oy * stride + y_off`.
    y_off: isize,
    /// Input column of output column `ox`: `ox * stride + x_off`.
    x_off: isize,
    /// Output rows that read an input row (empty when no column reads inside).
    oy: Range<usize>,
    /// Output columns `lo..hi` read an input column.
    lo: usize,
    hi: usize,
}

/// Runs `f` with this thread's patch matrix, at least `len` long. The buffer is taken out of the
/// thread-local for the call, not borrowed: a matrix product spread over the pool may run another
/// convolution's task on this thread meanwhile, which then gets a buffer of its own.
fn with_col<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut col = COL.take();
    if col.len() < len {
        col.resize(len, 0.0);
    }
    let result = f(&mut col[..len]);
    COL.set(col);
    result
}

/// The convolution of `x` (`[n, c, h, w]`) with `weight` (`[o, c / groups, kh, kw]`), without
/// bias: `[n, o, oh, ow]`.
pub fn forward(g: &Geometry, x: &[f32], weight: &[f32]) -> Vec<f32> {
    let (k, p, og, cg) = (g.k(), g.p(), g.og(), g.cg());
    let (image_in, image_out) = (g.image_in(), g.image_out());
    assert_eq!(x.len(), g.n * image_in, "input length");
    assert_eq!(weight.len(), g.o * k, "weight length");
    match method(g, Pass::Forward) {
        Method::Shifted => return shifted::forward(g, x, weight),
        Method::Direct => return direct::forward(g, x, weight),
        _ => {}
    }
    if k == 0 {
        return vec![0f32; g.n * image_out];
    }
    let spread = per_image(g.n);
    let taps = g.patch_rows();
    let one = |(b, out): (usize, &mut [MaybeUninit<f32>])| {
        let image = &x[b * image_in..][..image_in];
        for group in 0..g.groups {
            let planes = &image[group * cg * g.h * g.w..][..cg * g.h * g.w];
            let dst = &mut out[group * og * p..][..og * p];
            let w = &weight[group * og * k..][..og * k];
            if g.pointwise() {
                let shape = (og, p, k);
                matmul_into(shape, dst, [p, 1], w, [k, 1], planes, [p, 1], inner(spread));
                continue;
            }
            for rows in g.tiles() {
                let cols = rows.len() * g.ow;
                let first = rows.start * g.ow;
                with_col(k * cols, |col| {
                    g.im2col(&taps, planes, rows, col);
                    let dst = &mut dst[first..];
                    let shape = (og, cols, k);
                    matmul_into(shape, dst, [p, 1], w, [k, 1], col, [cols, 1], inner(spread));
                });
            }
        }
    };
    // SAFETY: per group, the products write the `og` output planes whole: at once for a 1x1
    // convolution, else by tiles of output rows that cover `0..oh` (`k > 0`: gemm writes each
    // element).
    unsafe { images_into(g.n, image_out, spread, one) }
}

/// The gradient of the loss with respect to the weight, given `dy` (`[n, o, oh, ow]`).
pub fn weight_grad(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (k, p, og, cg) = (g.k(), g.p(), g.og(), g.cg());
    let (image_in, image_out) = (g.image_in(), g.image_out());
    assert_eq!(x.len(), g.n * image_in, "input length");
    assert_eq!(dy.len(), g.n * image_out, "output gradient length");
    match method(g, Pass::WeightGrad) {
        Method::Shifted => return shifted::weight_grad(g, x, dy),
        Method::Direct => return direct::weight_grad(g, x, dy),
        _ => {}
    }
    let spread = per_image(g.n);
    let taps = g.patch_rows();
    let partial = |images: Range<usize>| {
        let mut dw = vec![0f32; g.o * k];
        let mut first_product = vec![true; g.groups];
        for b in images {
            let image = &x[b * image_in..][..image_in];
            for group in 0..g.groups {
                let planes = &image[group * cg * g.h * g.w..][..cg * g.h * g.w];
                let grad = &dy[b * image_out + group * og * p..][..og * p];
                let dst = &mut dw[group * og * k..][..og * k];
                let accumulate = !std::mem::take(&mut first_product[group]);
                if g.pointwise() {
                    let shape = (og, k, p);
                    let par = inner(spread);
                    matmul(
                        shape,
                        dst,
                        [k, 1],
                        accumulate,
                        grad,
                        [p, 1],
                        planes,
                        [1, p],
                        par,
                    );
                    continue;
                }
                for (t, rows) in g.tiles().enumerate() {
                    let cols = rows.len() * g.ow;
                    let grad = &grad[rows.start * g.ow..];
                    with_col(k * cols, |col| {
                        g.im2col(&taps, planes, rows, col);
                        let shape = (og, k, cols);
                        let acc = accumulate || t > 0;
                        let par = inner(spread);
                        matmul(shape, dst, [k, 1], acc, grad, [p, 1], col, [1, cols], par);
                    });
                }
            }
        }
        dw
    };
    sum_over_images(g.n, spread, partial)
}

/// `weight` (`[o, cg, kh, kw]`) turned by 180 degrees in its taps and with the output and input
/// channels of each group swapped: `[c, og, kh, kw]`.
fn flip(g: &Geometry, weight: &[f32]) -> Vec<f32> {
    let (og, cg, taps) = (g.og(), g.cg(), g.kh * g.kw);
    let mut flipped = vec![0f32; weight.len()];
    for group in 0..g.groups {
        for o in 0..og {
            for c in 0..cg {
                let from = &weight[((group * og + o) * cg + c) * taps..][..taps];
                let to = &mut flipped[((group * cg + c) * og + o) * taps..][..taps];
                for (t, v) in to.iter_mut().zip(from.iter().rev()) {
                    *t = *v;
                }
            }
        }
    }
    flipped
}

/// The gradient of the loss with respect to the input, given `dy` (`[n, o, oh, ow]`).
pub fn input_grad(g: &Geometry, weight: &[f32], dy: &[f32]) -> Vec<f32> {
    let (k, p, og, cg) = (g.k(), g.p(), g.og(), g.cg());
    let (image_in, image_out) = (g.image_in(), g.image_out());
    assert_eq!(weight.len(), g.o * k, "weight length");
    assert_eq!(dy.len(), g.n * image_out, "output gradient length");
    match method(g, Pass::InputGrad) {
        Method::Shifted => return shifted::input_grad(g, weight, dy),
        Method::Flipped => {
            let turned = flipped(g).expect("picked only where it applies");
            return forward(&turned, dy, &flip(g, weight));
        }
        Method::Im2col | Method::Direct => {}
    }
    let spread = per_image(g.n);
    let taps = g.patch_rows();
    // A 1x1 convolution's products write the image whole; col2im adds into zeros.
    let pointwise = g.pointwise() && og > 0;
    let one = |(b, image): (usize, &mut [MaybeUninit<f32>])| {
        if !pointwise {
            image.fill(MaybeUninit::new(0.0));
        }
        for group in 0..g.groups {
            let planes = &mut image[group * cg * g.h * g.w..][..cg * g.h * g.w];
            let grad = &dy[b * image_out + group * og * p..][..og * p];
            let w = &weight[group * og * k..][..og * k];
            if pointwise {
                let shape = (k, p, og);
                matmul_into(
                    shape,
                    planes,
                    [p, 1],
                    w,
                    [1, k],
                    grad,
                    [p, 1],
                    inner(spread),
                );
                continue;
            }
            for rows in g.tiles() {
                let cols = rows.len() * g.ow;
                let grad = &grad[rows.start * g.ow..];
                with_col(k * cols, |col| {
                    let shape = (k, cols, og);
                    matmul(
                        shape,
                        col,
                        [cols, 1],
                        false,
                        w,
                        [1, k],
                        grad,
                        [p, 1],
                        inner(spread),
                    );
                    // SAFETY: the image was filled with zeros above.
                    g.col2im(&taps, col, rows, unsafe { planes.assume_init_mut() });
                });
            }
        }
    };
    // SAFETY: a 1x1 convolution's products (depth `og > 0`) write each group's `cg` planes
    // whole; otherwise the image is filled with zeros first.
    unsafe { images_into(g.n, image_in, spread, one) }
}
