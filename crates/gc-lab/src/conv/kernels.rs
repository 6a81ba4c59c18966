//! 2-D convolution and its two gradients on NCHW f32 buffers, one image at a time: the image's
//! patches laid out as a `[fan-in, output pixels]` matrix (im2col), then one matrix product per
//! image and group. Images are spread over the thread pool; a lone image or two leave the
//! parallelism to the matrix product instead.
//!
//! Per image and group, with `K` = (channels per group) x kh x kw and `P` = output pixels:
//! - forward: `y[og, P] = w[og, K] · col[K, P]`;
//! - weight gradient: `dw[og, K] += dy[og, P] · col[K, P]ᵀ`, summed over the images;
//! - input gradient: `dcol[K, P] = w[og, K]ᵀ · dy[og, P]`, then each patch element added back to
//!   the pixel it came from (col2im).
//!
//! A 1x1 convolution with stride 1 and no padding reads (and writes) the image itself as `col`.

use std::cell::RefCell;

use burn::tensor::ops::ConvOptions;
use gemm::Parallelism;
use rayon::prelude::*;

thread_local! {
    /// The patch matrix of the image this thread works on, kept for the next call (it only grows).
    static COL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
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

    fn cg(&self) -> usize {
        self.c / self.groups
    }

    fn og(&self) -> usize {
        self.o / self.groups
    }

    /// Rows of the patch matrix: one group's fan-in.
    fn k(&self) -> usize {
        self.cg() * self.kh * self.kw
    }

    /// Columns of the patch matrix: output pixels.
    fn p(&self) -> usize {
        self.oh * self.ow
    }

    /// Whether the image itself is the patch matrix.
    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == [1, 1] && self.pad == [0, 0]
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

    /// Visits every (patch matrix row, output row): calls `f(row, oy, Some(span))` when the
    /// output row reads an input row, `f(row, oy, None)` when it reads only padding.
    fn walk(&self, mut f: impl FnMut(usize, usize, Option<Span>)) {
        let [sh, sw] = self.stride;
        let [dh, dw] = self.dilation;
        let [ph, pw] = self.pad;
        for ci in 0..self.cg() {
            for ky in 0..self.kh {
                let y_off = (ky * dh) as isize - ph as isize;
                let (oy_lo, oy_hi) = Self::valid(self.oh, self.h, sh, y_off);
                for kx in 0..self.kw {
                    let x_off = (kx * dw) as isize - pw as isize;
                    let (lo, hi) = Self::valid(self.ow, self.w, sw, x_off);
                    let row = (ci * self.kh + ky) * self.kw + kx;
                    for oy in 0..self.oh {
                        if oy < oy_lo || oy >= oy_hi || lo == hi {
                            f(row, oy, None);
                            continue;
                        }
                        let iy = ((oy * sh) as isize + y_off) as usize;
                        // The first valid column's input position is not negative (`valid`).
                        let first = ((lo * sw) as isize + x_off) as usize;
                        let start = ci * self.h * self.w + iy * self.w + first;
                        f(row, oy, Some(Span { start, lo, hi }));
                    }
                }
            }
        }
    }

    /// Lays one group of one image (`image`: that group's `cg` planes) out as its patch matrix.
    fn im2col(&self, image: &[f32], col: &mut [f32]) {
        let (p, ow, sw) = (self.p(), self.ow, self.stride[1]);
        self.walk(|row, oy, span| {
            let dst = &mut col[row * p + oy * ow..][..ow];
            let Some(Span { start, lo, hi }) = span else {
                dst.fill(0.0);
                return;
            };
            dst[..lo].fill(0.0);
            dst[hi..].fill(0.0);
            let src = &image[start..];
            if sw == 1 {
                dst[lo..hi].copy_from_slice(&src[..hi - lo]);
            } else {
                for (d, s) in dst[lo..hi].iter_mut().zip(src.iter().step_by(sw)) {
                    *d = *s;
                }
            }
        });
    }

    /// Adds a patch matrix back onto the image it came from (one group's planes).
    fn col2im(&self, col: &[f32], image: &mut [f32]) {
        let (p, ow, sw) = (self.p(), self.ow, self.stride[1]);
        self.walk(|row, oy, span| {
            let Some(Span { start, lo, hi }) = span else {
                return;
            };
            let src = &col[row * p + oy * ow..][lo..hi];
            let dst = &mut image[start..];
            if sw == 1 {
                for (d, s) in dst[..hi - lo].iter_mut().zip(src) {
                    *d += *s;
                }
            } else {
                for (d, s) in dst.iter_mut().step_by(sw).zip(src) {
                    *d += *s;
                }
            }
        });
    }
}

/// The output columns `lo..hi` of one patch matrix row that read the input, and where the first
/// of them reads (consecutive columns read `stride` apart).
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    lo: usize,
    hi: usize,
}

/// `dst[m, n] (=|+=) a[m, k] · b[k, n]`, each matrix given by its row and column strides.
#[allow(clippy::too_many_arguments)]
fn matmul(
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

/// Runs `f` with this thread's patch matrix, at least `len` long.
fn with_col<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    COL.with(|col| {
        let mut col = col.borrow_mut();
        if col.len() < len {
            col.resize(len, 0.0);
        }
        f(&mut col[..len])
    })
}

/// How the work of `n` images is spread: over images when there are enough of them to keep the
/// pool busy, else inside each matrix product.
fn per_image(n: usize) -> bool {
    n >= rayon::current_num_threads()
}

fn inner(per_image: bool) -> Parallelism {
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
    let image_in = g.c * g.h * g.w;
    let image_out = g.o * p;
    assert_eq!(x.len(), g.n * image_in, "input length");
    assert_eq!(weight.len(), g.o * k, "weight length");
    let mut y = vec![0f32; g.n * image_out];
    let spread = per_image(g.n);
    let one = |(b, out): (usize, &mut [f32])| {
        let image = &x[b * image_in..][..image_in];
        for group in 0..g.groups {
            let planes = &image[group * cg * g.h * g.w..][..cg * g.h * g.w];
            let dst = &mut out[group * og * p..][..og * p];
            let w = &weight[group * og * k..][..og * k];
            let product = |col: &[f32], dst: &mut [f32]| {
                matmul(
                    (og, p, k),
                    dst,
                    [p, 1],
                    false,
                    w,
                    [k, 1],
                    col,
                    [p, 1],
                    inner(spread),
                )
            };
            if g.pointwise() {
                product(planes, dst);
            } else {
                with_col(k * p, |col| {
                    g.im2col(planes, col);
                    product(col, dst);
                });
            }
        }
    };
    if spread {
        y.par_chunks_mut(image_out.max(1)).enumerate().for_each(one);
    } else {
        y.chunks_mut(image_out.max(1)).enumerate().for_each(one);
    }
    y
}

/// The gradient of the loss with respect to the weight, given `dy` (`[n, o, oh, ow]`).
pub fn weight_grad(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (k, p, og, cg) = (g.k(), g.p(), g.og(), g.cg());
    let image_in = g.c * g.h * g.w;
    let image_out = g.o * p;
    assert_eq!(x.len(), g.n * image_in, "input length");
    assert_eq!(dy.len(), g.n * image_out, "output gradient length");
    let spread = per_image(g.n);
    // Images in contiguous ranges, one partial sum per range, added up at the end.
    let ranges = if spread {
        rayon::current_num_threads()
    } else {
        1
    };
    let per_range = g.n.div_ceil(ranges.max(1)).max(1);
    let partial = |range: usize| {
        let mut dw = vec![0f32; g.o * k];
        let images = range * per_range..((range + 1) * per_range).min(g.n);
        for (i, b) in images.enumerate() {
            let image = &x[b * image_in..][..image_in];
            for group in 0..g.groups {
                let planes = &image[group * cg * g.h * g.w..][..cg * g.h * g.w];
                let grad = &dy[b * image_out + group * og * p..][..og * p];
                let dst = &mut dw[group * og * k..][..og * k];
                let product = |col: &[f32], dst: &mut [f32]| {
                    matmul(
                        (og, k, p),
                        dst,
                        [k, 1],
                        i > 0,
                        grad,
                        [p, 1],
                        col,
                        [1, p],
                        inner(spread),
                    )
                };
                if g.pointwise() {
                    product(planes, dst);
                } else {
                    with_col(k * p, |col| {
                        g.im2col(planes, col);
                        product(col, dst);
                    });
                }
            }
        }
        dw
    };
    let mut partials: Vec<Vec<f32>> = if spread {
        (0..ranges).into_par_iter().map(partial).collect()
    } else {
        vec![partial(0)]
    };
    let mut dw = partials.swap_remove(0);
    for other in &partials {
        for (a, b) in dw.iter_mut().zip(other) {
            *a += *b;
        }
    }
    dw
}

/// The gradient of the loss with respect to the input, given `dy` (`[n, o, oh, ow]`).
pub fn input_grad(g: &Geometry, weight: &[f32], dy: &[f32]) -> Vec<f32> {
    let (k, p, og, cg) = (g.k(), g.p(), g.og(), g.cg());
    let image_in = g.c * g.h * g.w;
    let image_out = g.o * p;
    assert_eq!(weight.len(), g.o * k, "weight length");
    assert_eq!(dy.len(), g.n * image_out, "output gradient length");
    let mut dx = vec![0f32; g.n * image_in];
    let spread = per_image(g.n);
    let one = |(b, image): (usize, &mut [f32])| {
        for group in 0..g.groups {
            let planes = &mut image[group * cg * g.h * g.w..][..cg * g.h * g.w];
            let grad = &dy[b * image_out + group * og * p..][..og * p];
            let w = &weight[group * og * k..][..og * k];
            let product = |dst: &mut [f32]| {
                matmul(
                    (k, p, og),
                    dst,
                    [p, 1],
                    false,
                    w,
                    [1, k],
                    grad,
                    [p, 1],
                    inner(spread),
                )
            };
            if g.pointwise() {
                product(planes);
            } else {
                with_col(k * p, |col| {
                    product(col);
                    g.col2im(col, planes);
                });
            }
        }
    };
    if spread {
        dx.par_chunks_mut(image_in.max(1)).enumerate().for_each(one);
    } else {
        dx.chunks_mut(image_in.max(1)).enumerate().for_each(one);
    }
    dx
}
