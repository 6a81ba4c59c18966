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
//! ([`flipped`]), itself through im2col or the direct kernel. [`method`] picks; [`with_method`]
//! overrides, for tests and benches.

use std::cell::{Cell, RefCell};
use std::ops::Range;

use burn::tensor::ops::ConvOptions;
use gemm::Parallelism;
use rayon::prelude::*;

use super::{direct, shifted};

/// The size a tile's patch matrix aims at (see [`Geometry::tile_rows`]).
pub(super) const TILE_BYTES: usize = 256 << 10;

thread_local! {
    /// The method this thread was told to use, where it can (see [`with_method`]).
    static METHOD: Cell<Option<Method>> = const { Cell::new(None) };
    /// The patch matrix of the image this thread works on, kept for the next call (it only grows).
    static COL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// How a convolution is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Through the patch matrix (any convolution).
    Im2col,
    /// A product per kernel tap over a padded copy of the image (stride 1 only; see
    /// [`super::shifted`]).
    Shifted,
    /// The input gradient as a forward convolution of the output gradient, with the kernel
    /// turned by 180 degrees and its channel axes swapped (stride 1 and padding at most `(k -
    /// 1)·dilation` only; see [`flipped`]), through the patch matrix when forced, else by the
    /// forward pass's own pick. The other passes use im2col.
    Flipped,
    /// The forward pass and the weight gradient by register-blocked kernels over a padded copy
    /// of the image (stride 1 and a CPU with AVX2 and FMA only; see [`super::direct`]); forced,
    /// the input gradient as the flipped forward convolution on the same forward kernel.
    Direct,
}

/// Runs `f` with convolutions on this thread computed by `method` where it applies (`Shifted`
/// needs stride 1; `Flipped` stride 1 and only computes input gradients), elsewhere by im2col,
/// instead of the methods chosen for their sizes: to compare them.
pub fn with_method<R>(method: Method, f: impl FnOnce() -> R) -> R {
    /// Puts the previous override back, also when `f` panics.
    struct Restore(Option<Method>);
    impl Drop for Restore {
        fn drop(&mut self) {
            METHOD.set(self.0);
        }
    }
    let _restore = Restore(METHOD.replace(Some(method)));
    f()
}

/// One of the three computations of a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Forward,
    WeightGrad,
    InputGrad,
}

/// The method for `pass` of `g`: the one [`with_method`] asked for where it applies, else the
/// faster one.
pub fn method(g: &Geometry, pass: Pass) -> Method {
    match METHOD.get() {
        Some(Method::Shifted) if shifted::fits(g) => Method::Shifted,
        Some(Method::Flipped | Method::Direct)
            if pass == Pass::InputGrad && flipped(g).is_some() =>
        {
            Method::Flipped
        }
        Some(Method::Direct) if pass != Pass::InputGrad && direct::fits(g) => Method::Direct,
        Some(_) => Method::Im2col,
        None if pass == Pass::InputGrad && flipped_pays(g) => Method::Flipped,
        None if direct::pays(g, pass) => Method::Direct,
        None if shifted::pays(g, pass) => Method::Shifted,
        None => Method::Im2col,
    }
}

/// The sizes of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Images.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub o: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// Stride (rows, columns).
    pub stride: [usize; 2],
    /// Padding before the first row and column (the padding after only changes `oh`, `ow`).
    pub pad: [usize; 2],
    /// Dilation (rows, columns).
    pub dilation: [usize; 2],
    /// Groups.
    pub groups: usize,
}

impl Geometry {
    /// The geometry of `x` (`[n, c, h, w]`) convolved with `weight` (`[o, c / groups, kh, kw]`),
    /// or why the shapes do not fit together.
    pub fn new(
        x: [usize; 4],
        weight: [usize; 4],
        options: &ConvOptions<2>,
    ) -> Result<Self, String> {
        let [n, c, h, w] = x;
        let [o, cg, kh, kw] = weight;
        let groups = options.groups;
        let sizes = [kh, kw, options.stride[0], options.stride[1]];
        if sizes.contains(&0) || options.dilation.contains(&0) {
            return Err(format!(
                "kernel {kh}x{kw}, stride {:?} and dilation {:?} must all be at least 1",
                options.stride, options.dilation
            ));
        }
        if groups == 0 || c % groups != 0 || o % groups != 0 || cg != c / groups {
            return Err(format!(
                "input {x:?} and weight {weight:?} do not fit {groups} group(s): the weight's \
                 second axis must be input channels / groups and both channel counts divisible"
            ));
        }
        let out = |axis: usize, size: usize, k: usize| {
            let (begin, end) = options.padding[axis];
            let span = options.dilation[axis] * (k - 1) + 1;
            (size + begin + end)
                .checked_sub(span)
                .map(|room| room / options.stride[axis] + 1)
        };
        let (Some(oh), Some(ow)) = (out(0, h, kh), out(1, w, kw)) else {
            return Err(format!(
                "kernel {kh}x{kw} (dilation {:?}) is larger than the padded input {h}x{w} \
                 (padding {:?})",
                options.dilation, options.padding
            ));
        };
        Ok(Self {
            n,
            c,
            h,
            w,
            o,
            kh,
            kw,
            oh,
            ow,
            stride: options.stride,
            pad: options.padding.map(|(begin, _)| begin),
            dilation: options.dilation,
            groups,
        })
    }

    pub(super) fn cg(&self) -> usize {
        self.c / self.groups
    }

    pub(super) fn og(&self) -> usize {
        self.o / self.groups
    }

    /// Rows of the patch matrix: one group's fan-in.
    pub(super) fn k(&self) -> usize {
        self.cg() * self.kh * self.kw
    }

    /// Columns of the patch matrix: output pixels.
    pub(super) fn p(&self) -> usize {
        self.oh * self.ow
    }

    /// Elements of one input image (all channels).
    pub(super) fn image_in(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Elements of one output image (all channels).
    pub(super) fn image_out(&self) -> usize {
        self.o * self.p()
    }

    /// Whether the image itself is the patch matrix.
    fn pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.stride == [1, 1]
            && self.pad == [0, 0]
            && (self.oh, self.ow) == (self.h, self.w)
    }

    /// Output positions `lo..hi` along one axis whose input position `pos * stride + offset` lies
    /// inside `0..size`.
    fn valid(out: usize, size: usize, stride: usize, offset: isize) -> (usize, usize) {
        let lo = if offset >= 0 {
            0
        } else {
            ((-offset) as usize).div_ceil(stride)
        };
        let hi = if offset >= size as isize {
            0
        } else {
            ((size as isize - offset) as usize).div_ceil(stride)
        };
        (lo.min(out), hi.min(out).max(lo.min(out)))
    }

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

/// `dst[m, n] (=|+=) a[m, k] · b[k, n]`, each matrix given by its row and column strides.
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    dst_strides: [usize; 2],
    accumulate: bool,
    a: &[f32],
    a_strides: [usize; 2],
    b: &[f32],
    b_strides: [usize; 2],
    parallelism: Parallelism,
) {
    let last = |s: [usize; 2], rows: usize, cols: usize| {
        (rows.max(1) - 1) * s[0] + (cols.max(1) - 1) * s[1]
    };
    assert!(m == 0 || n == 0 || last(dst_strides, m, n) < dst.len());
    // Distinct (row, column) pairs must be distinct elements: gemm may write them in parallel.
    debug_assert!(dst_strides[1] == 1 && (m <= 1 || dst_strides[0] >= n));
    assert!(m == 0 || k == 0 || last(a_strides, m, k) < a.len());
    assert!(k == 0 || n == 0 || last(b_strides, k, n) < b.len());
    // SAFETY: the asserts above keep every element the strides reach inside its slice; `dst`
    // is borrowed mutably, so it overlaps neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_strides[1] as isize,
            dst_strides[0] as isize,
            accumulate,
            a.as_ptr(),
            a_strides[1] as isize,
            a_strides[0] as isize,
            b.as_ptr(),
            b_strides[1] as isize,
            b_strides[0] as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// Rows per tile of `rows` output rows, `bytes_per_row` each, so that a tile fits
/// [`TILE_BYTES`]: tiles of equal height rather than full ones and a sliver.
pub(super) fn tile_height(rows: usize, bytes_per_row: usize) -> usize {
    let rows = rows.max(1);
    let most = (TILE_BYTES / bytes_per_row.max(1)).clamp(1, rows);
    rows.div_ceil(rows.div_ceil(most))
}

/// The ranges of `height` rows (the last one shorter) that cover `rows`.
pub(super) fn tiles(rows: usize, height: usize) -> impl Iterator<Item = Range<usize>> + use<> {
    (0..rows)
        .step_by(height.max(1))
        .map(move |start| start..(start + height).min(rows))
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

/// The weight gradient's sum over the images: `partial(images)` for contiguous ranges of images,
/// one per thread when the images are spread over the pool, added in range order, element by
/// element, in pieces on all threads.
pub(super) fn sum_over_images(
    n: usize,
    spread: bool,
    partial: impl Fn(Range<usize>) -> Vec<f32> + Sync,
) -> Vec<f32> {
    let ranges = if spread {
        rayon::current_num_threads()
    } else {
        1
    };
    let per_range = n.div_ceil(ranges.max(1)).max(1);
    let range = |r: usize| r * per_range..((r + 1) * per_range).min(n);
    let partials: Vec<Vec<f32>> = if spread {
        (0..ranges)
            .into_par_iter()
            .map(|r| partial(range(r)))
            .collect()
    } else {
        vec![partial(range(0))]
    };
    let mut partials = partials.into_iter();
    let mut sum = partials.next().expect("at least one range of images");
    let rest: Vec<Vec<f32>> = partials.collect();
    if !rest.is_empty() {
        const PIECE: usize = 1 << 14;
        sum.par_chunks_mut(PIECE)
            .enumerate()
            .for_each(|(i, piece)| {
                for other in &rest {
                    for (a, b) in piece.iter_mut().zip(&other[i * PIECE..]) {
                        *a += *b;
                    }
                }
            });
    }
    sum
}

/// How the work of `n` images is spread: over images when there are enough of them to keep the
/// pool busy, else inside each matrix product.
pub(super) fn per_image(n: usize) -> bool {
    n >= rayon::current_num_threads()
}

/// Calls `one((b, chunk))` for image `b`'s `len`-long chunk of `buf`: over the pool when
/// `spread`, else in turn.
pub(super) fn each_image(
    buf: &mut [f32],
    len: usize,
    spread: bool,
    one: impl Fn((usize, &mut [f32])) + Sync + Send,
) {
    if spread {
        buf.par_chunks_mut(len.max(1)).enumerate().for_each(one);
    } else {
        buf.chunks_mut(len.max(1)).enumerate().for_each(one);
    }
}

pub(super) fn inner(per_image: bool) -> Parallelism {
    if per_image {
        Parallelism::None
    } else {
        Parallelism::Rayon(0)
    }
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
    let mut y = vec![0f32; g.n * image_out];
    let spread = per_image(g.n);
    let taps = g.patch_rows();
    let one = |(b, out): (usize, &mut [f32])| {
        let image = &x[b * image_in..][..image_in];
        for group in 0..g.groups {
            let planes = &image[group * cg * g.h * g.w..][..cg * g.h * g.w];
            let dst = &mut out[group * og * p..][..og * p];
            let w = &weight[group * og * k..][..og * k];
            if g.pointwise() {
                let shape = (og, p, k);
                matmul(
                    shape,
                    dst,
                    [p, 1],
                    false,
                    w,
                    [k, 1],
                    planes,
                    [p, 1],
                    inner(spread),
                );
                continue;
            }
            for rows in g.tiles() {
                let cols = rows.len() * g.ow;
                let first = rows.start * g.ow;
                with_col(k * cols, |col| {
                    g.im2col(&taps, planes, rows, col);
                    let dst = &mut dst[first..];
                    let shape = (og, cols, k);
                    matmul(
                        shape,
                        dst,
                        [p, 1],
                        false,
                        w,
                        [k, 1],
                        col,
                        [cols, 1],
                        inner(spread),
                    );
                });
            }
        }
    };
    each_image(&mut y, image_out, spread, one);
    y
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

/// The input gradient of `g` as a forward convolution, where `g` has stride 1 and no more
/// padding than `(k - 1)·dilation` on either axis: `dy` (`[n, o, oh, ow]`) convolved with the
/// kernel turned by 180 degrees and its two channel axes swapped (per group `[og, cg, kh, kw]`
/// becomes `[cg, og, kh, kw]`), padded by `(k - 1)·dilation - pad`, gives `[n, c, h, w]`.
/// (Input pixel `y` takes output pixel `y + pad - ky·d` through tap `ky`; with `ky' = kh - 1 - ky`
/// that is `y + ky'·d - ((kh - 1)·d - pad)`, a forward convolution's tap `ky'`.) The product per
/// image is `dx[cg, P] = w'[cg, og·kh·kw] · col(dy)[og·kh·kw, P]`: as deep as the forward pass's
/// and without col2im's scattered additions, against im2col's `og` deep.
pub fn flipped(g: &Geometry) -> Option<Geometry> {
    if g.stride != [1, 1] {
        return None;
    }
    let reach = [(g.kh - 1) * g.dilation[0], (g.kw - 1) * g.dilation[1]];
    Some(Geometry {
        c: g.o,
        h: g.oh,
        w: g.ow,
        o: g.c,
        oh: g.h,
        ow: g.w,
        pad: [
            reach[0].checked_sub(g.pad[0])?,
            reach[1].checked_sub(g.pad[1])?,
        ],
        ..*g
    })
}

/// Whether [`flipped`] is the faster way to the input gradient of `g`, as `benches/conv_layers.rs`
/// measured (2026-11-29): stride-1 kernels larger than 1x1, no groups (not measured), and either
/// the direct kernel computes the flipped forward convolution (see [`direct::pays`]) and `g` has at
/// least 3 input channels (the flipped convolution's outputs: ResNet-20's stride-1 layers 0.71-0.93
/// of the next best method's time in two runs, its 3-channel first layer 0.69 and 0.80 of the
/// shifted method's, the small CNN's 16->32 layer at 14x14 0.82 of the shifted method's; the small
/// CNN's 1-channel first layer 1.8 times im2col's), or else at least 16 input channels and 2^21
/// multiply-adds per image (through im2col: ResNet-20's 16-, 32- and 64-channel 3x3 layers took
/// 0.63, 0.87 and 0.72 of im2col's time (16 channels: 0.79 of the shifted method's); ResNet-50's
/// 64-, 128- and 256-channel ones 0.86, 1.28, 0.75 in one run, 0.83, 0.93, 0.86 and 1.01, 0.81,
/// 0.94 in two more; not ResNet-20's first layer, 1.38 of im2col's time, a product of only 3 rows,
/// nor the small CNN's 16->32 layer at 14x14, 0.9M multiply-adds per image, 1.07 and 1.11 of
/// im2col's time in two runs).
fn flipped_pays(g: &Geometry) -> bool {
    let Some(turned) = flipped(g) else {
        return false;
    };
    let work = g.cg() * g.og() * g.kh * g.kw * g.h * g.w;
    let direct = direct::pays(&turned, Pass::Forward) && g.cg() >= 3;
    g.kh * g.kw > 1 && g.groups == 1 && (direct || g.cg() >= 16 && work >= 1 << 21)
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
    let mut dx = vec![0f32; g.n * image_in];
    let spread = per_image(g.n);
    let taps = g.patch_rows();
    let one = |(b, image): (usize, &mut [f32])| {
        for group in 0..g.groups {
            let planes = &mut image[group * cg * g.h * g.w..][..cg * g.h * g.w];
            let grad = &dy[b * image_out + group * og * p..][..og * p];
            let w = &weight[group * og * k..][..og * k];
            if g.pointwise() {
                let shape = (k, p, og);
                matmul(
                    shape,
                    planes,
                    [p, 1],
                    false,
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
                    g.col2im(&taps, col, rows, planes);
                });
            }
        }
    };
    each_image(&mut dx, image_in, spread, one);
    dx
}
