//! Stride-1 convolutions and their weight gradients by register-blocked kernels (AVX2 and FMA),
//! without a patch matrix and without a matrix-product library.
//!
//! The image is copied once into zero-padded planes and the output computed `wp` wide, as in
//! [`super::shifted`]: output position `q = oy·wp + ox` reads tap `t` of input plane `ci` at
//! `xpad[ci][q + off_t]`.
//! - Forward (`kernel`): a block of `MR` output channels by 16 consecutive positions lives in
//!   `2·MR` vector registers while the kernel sums over every input channel and tap: per
//!   (channel, tap) two loads of the input at that tap's offset, `MR` broadcast weights, `2·MR`
//!   fused multiply-adds. im2col writes the patch matrix (`kh · kw` times the image) and `gemm`
//!   reads it back; here the taps read the padded copy through their offsets, and each output
//!   element is stored once (the shifted method's products add into it once per tap).
//! - Weight gradient (`kernel_dw`): for two output channels, one input channel and up to six
//!   taps, twelve vector accumulators sum `dy[o][q] · xpad[ci][q + off_t]` over the positions of
//!   a batch of images, then their lanes.
//! - Input gradient: the forward kernel computes [`super::kernels::flipped`]'s convolution.
//!
//! Output positions past the last row and in the discarded columns read whatever lies there (the
//! next plane, or a slack that ends the buffer); they are never copied out, and the weight
//! gradient pairs them with zeros of `dy` (so, as in the shifted method, an infinite input there
//! gives NaN where im2col gives ±Inf). The last block of output channels is padded with zero
//! weights, the positions to whole vectors.

use std::cell::Cell;
use std::ops::Range;
use std::sync::OnceLock;

use rayon::prelude::*;

use super::kernels::{Geometry, Pass, each_image, per_image, sum_over_images};
use super::shifted::{Padded, embed, extract};

/// f32 lanes of an AVX register.
const LANES: usize = 8;

thread_local! {
    /// This thread's padded image and wide output, kept for the next call.
    static BUFFERS: Cell<(Vec<f32>, Vec<f32>)> = const { Cell::new((Vec::new(), Vec::new())) };
}

/// Whether this CPU runs the kernel (AVX2 and FMA).
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// Whether this method can compute the forward pass of `g`: stride 1, on a CPU with AVX2 and FMA.
pub fn fits(g: &Geometry) -> bool {
    g.stride == [1, 1] && available()
}

/// Whether this is the faster way for `pass` of `g`, as `benches/conv_layers.rs` measured
/// (2026-11-29; see docs/PERFORMANCE.md): kernels larger than 1x1 with at most 64 output channels
/// (per group). Forward: ResNet-20's stride-1 layers 0.74-0.94 of the next best method's time in
/// two runs, its 3-channel first layer 0.56 and 0.68, the small CNN's two layers 0.74 and 0.85;
/// ResNet-50's 64-channel 3x3 layer at 56x56 level with im2col (0.99), its 256-channel one at 14x14
/// 4% slower (so not above 64); 1x1 layers 1.2-1.8 times slower (one product either way, and the
/// kernel's blocks are narrow). Weight gradient: from 16x16 output pixels (ResNet-20's 16- and
/// 32-channel layers 0.66 and 0.85 of the shifted method's time); at 8x8 the kernel's calls are
/// short and 20% of the positions padding (1.27 of im2col's time). The input gradient goes through
/// [`super::kernels::flipped`], whose forward convolution this computes where it pays.
pub fn pays(g: &Geometry, pass: Pass) -> bool {
    let floor = match pass {
        Pass::Forward => 0,
        Pass::WeightGrad => 256,
        Pass::InputGrad => return false,
    };
    fits(g) && g.kh * g.kw > 1 && g.og() <= 64 && g.oh * g.ow >= floor
}

/// Vectors of positions per block (two: 16 positions).
const NV: usize = 2;

/// Output channels per block: 6 (12 accumulators, 2 input vectors and a broadcast weight fill 15
/// of the 16 registers), the last block of a group 2 or 4 where the channel count leaves that
/// (an odd count gets one zero-weight channel). A 4 x 3 block (24 positions) left the compiler
/// one register short: it kept an accumulator on the stack and moved the others round in every
/// step, and ran at about half the speed (ResNet-20's 16 -> 16 layer 9.7 ms against 4.9).
fn blocks(og: usize) -> Vec<(usize, usize)> {
    let mut blocks: Vec<(usize, usize)> = (0..og / 6).map(|b| (6 * b, 6)).collect();
    let rest = og % 6;
    if rest > 0 {
        blocks.push((og - rest, rest.next_multiple_of(2)));
    }
    blocks
}

/// Runs `f` with this thread's two buffers, at least `a` and `b` long (contents unspecified).
/// They are taken out of the thread-local for the call (see `kernels::with_col`).
fn with_buffers<R>(a: usize, b: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    let (mut x, mut y) = BUFFERS.take();
    for (buf, len) in [(&mut x, a), (&mut y, b)] {
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
    }
    let result = f(&mut x[..a], &mut y[..b]);
    BUFFERS.set((x, y));
    result
}

/// See [`super::kernels::forward`], which checks the buffers' lengths and calls this where
/// [`fits`] holds.
pub(super) fn forward(g: &Geometry, x: &[f32], weight: &[f32]) -> Vec<f32> {
    assert!(
        fits(g),
        "the direct kernel needs stride 1 and a CPU with AVX2 and FMA"
    );
    let (p, og, cg, taps) = (g.p(), g.og(), g.cg(), g.kh * g.kw);
    let pad = Padded::of(g);
    let (image_in, image_out) = (g.image_in(), g.image_out());
    let nr = NV * LANES;
    let positions = g.oh * pad.wp;
    let wide = positions.div_ceil(nr) * nr;
    let blocks = blocks(og);
    let rows = og.next_multiple_of(2);
    let packed = pack(g, weight, &blocks);
    let offsets: Vec<usize> = (0..taps).map(|t| pad.offset(g, t)).collect();
    // The last block of the last plane reads up to `nr - 1` elements past it.
    let x_len = cg * pad.plane + nr;
    let mut y = vec![0f32; g.n * image_out];
    let spread = per_image(g.n);
    let one = |(b, out): (usize, &mut [f32])| {
        let image = &x[b * image_in..][..image_in];
        with_buffers(x_len, rows * wide, |xpad, tile| {
            for group in 0..g.groups {
                embed(
                    &image[group * cg * g.h * g.w..][..cg * g.h * g.w],
                    (cg, g.h, g.w),
                    &mut xpad[..cg * pad.plane],
                    (pad.plane, pad.hp, pad.wp),
                    (g.pad[0], g.pad[1]),
                );
                let weights = &packed[group * rows * cg * taps..][..rows * cg * taps];
                let xpad = &*xpad;
                let block = |((first, mr), out): ((usize, usize), &mut [f32])| {
                    let w = &weights[first * cg * taps..][..mr * cg * taps];
                    for q in (0..wide).step_by(nr) {
                        let (x, out) = (xpad[q..].as_ptr(), out[q..].as_mut_ptr());
                        // SAFETY: `fits` checked AVX2 and FMA. The kernel reads `x` at
                        // `ci · plane + off + (0..nr)` for `ci < cg`: below `positions + off
                        // <= plane` for the real positions (`Padded::of`), and `q < wide <=
                        // positions + nr - 1` in all, inside `x_len`; `w` holds `cg · taps · mr`
                        // weights; `out` is `mr` rows of `wide`, written at `q..q + nr`.
                        #[cfg(target_arch = "x86_64")]
                        unsafe {
                            match mr {
                                6 => kernel::<6>(x, pad.plane, &offsets, cg, w, out, wide),
                                4 => kernel::<4>(x, pad.plane, &offsets, cg, w, out, wide),
                                _ => kernel::<2>(x, pad.plane, &offsets, cg, w, out, wide),
                            }
                        }
                        #[cfg(not(target_arch = "x86_64"))]
                        unreachable!("`fits` holds on x86-64 only ({x:?}, {out:?})");
                    }
                };
                let mut rest = &mut tile[..rows * wide];
                let mut work = Vec::with_capacity(blocks.len());
                for &(first, mr) in &blocks {
                    let (head, tail) = std::mem::take(&mut rest).split_at_mut(mr * wide);
                    work.push(((first, mr), head));
                    rest = tail;
                }
                if spread {
                    work.into_iter().for_each(block);
                } else {
                    work.into_par_iter().for_each(block);
                }
                let dst = &mut out[group * og * p..][..og * p];
                for co in 0..og {
                    extract(
                        &tile[co * wide..][..positions],
                        (positions, pad.wp),
                        (0, 0),
                        &mut dst[co * p..][..p],
                        (1, g.oh, g.ow),
                    );
                }
            }
        });
    };
    each_image(&mut y, image_out, spread, one);
    y
}

/// `weight` (`[o, cg, kh, kw]`) as the kernel reads it: per group (`og` rounded up to even
/// rows) and block of `mr` output channels from `first`, `[cg][kh · kw][mr]`, a block's missing
/// channel zero.
fn pack(g: &Geometry, weight: &[f32], blocks: &[(usize, usize)]) -> Vec<f32> {
    let (og, cg, taps) = (g.og(), g.cg(), g.kh * g.kw);
    let rows = og.next_multiple_of(2);
    let mut packed = vec![0f32; g.groups * rows * cg * taps];
    for group in 0..g.groups {
        for &(first, mr) in blocks {
            let to = &mut packed[(group * rows + first) * cg * taps..][..mr * cg * taps];
            for r in 0..mr.min(og - first) {
                let from = &weight[(group * og + first + r) * cg * taps..][..cg * taps];
                for (i, v) in from.iter().enumerate() {
                    to[i * mr + r] = *v;
                }
            }
        }
    }
    packed
}

/// One block: `out[r · stride + j]` for `r < MR`, `j < 16` is the sum over `ci < cg` and the
/// taps `t` of `w[(ci · taps + t) · MR + r] · x[ci · plane + offsets[t] + j]`.
///
/// # Safety
/// The CPU has AVX2 and FMA; `x` is readable at every such index, `w` has `cg · taps · MR`
/// elements, `out` is writable at every such index.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel<const MR: usize>(
    x: *const f32,
    plane: usize,
    offsets: &[usize],
    cg: usize,
    w: &[f32],
    out: *mut f32,
    stride: usize,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); NV]; MR];
    let mut weights = w.chunks_exact(MR);
    for ci in 0..cg {
        // SAFETY (all pointer reads and writes below): the caller's contract.
        let channel = unsafe { x.add(ci * plane) };
        for &off in offsets {
            let src = unsafe { channel.add(off) };
            let xs: [__m256; NV] =
                std::array::from_fn(|j| unsafe { _mm256_loadu_ps(src.add(j * LANES)) });
            let wr = weights.next().expect("cg · taps blocks of weights");
            for r in 0..MR {
                let wv = _mm256_set1_ps(wr[r]);
                for j in 0..NV {
                    acc[r][j] = _mm256_fmadd_ps(wv, xs[j], acc[r][j]);
                }
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            unsafe { _mm256_storeu_ps(out.add(r * stride + j * LANES), *v) };
        }
    }
}

/// See [`super::kernels::weight_grad`], which checks the buffers' lengths and calls this where
/// [`fits`] holds. The images of a thread's range go in batches that fit [`BATCH_BYTES`]: each
/// batch's images are copied padded (`dy` laid out `wp` wide, zero in the discarded columns, so
/// that they add nothing); then per pair of output channels, input channel and chunk of at most
/// six taps one call of [`kernel_dw`] sums `dy[o][q] · xpad[ci][q + off_t]` over the positions
/// `q` of every image of the batch. The batches keep the calls long where the images are small
/// (ResNet-20's 8x8 layers: 80 positions an image), so that the sums of the vector lanes at the
/// end of a call weigh little.
pub(super) fn weight_grad(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    assert!(
        fits(g),
        "the direct kernel needs stride 1 and a CPU with AVX2 and FMA"
    );
    let (k, p, og, cg, taps) = (g.k(), g.p(), g.og(), g.cg(), g.kh * g.kw);
    let pad = Padded::of(g);
    let (image_in, image_out) = (g.image_in(), g.image_out());
    let positions = g.oh * pad.wp;
    let wide = positions.div_ceil(LANES) * LANES;
    let rows = og.next_multiple_of(2);
    let offsets: Vec<usize> = (0..taps).map(|t| pad.offset(g, t)).collect();
    // Chunks of taps of near-equal sizes, at most 6 (12 accumulators): 9 taps as 5 + 4.
    let chunks = taps.div_ceil(6);
    let chunk: Vec<Range<usize>> = (0..chunks)
        .map(|c| c * taps / chunks..(c + 1) * taps / chunks)
        .collect();
    // Per image: its padded planes, then a slack for the reads of the last vector of the last
    // plane (up to 7 elements past it); and its `dy`.
    let (x_len, dy_len) = (cg * pad.plane + LANES, rows * wide);
    let batch = (BATCH_BYTES / 4 / (x_len + dy_len)).max(1);
    let spread = per_image(g.n);
    let partial = |images: Range<usize>| {
        let mut dw = vec![0f32; g.o * k];
        let mut start = images.start;
        while start < images.end {
            let count = batch.min(images.end - start);
            with_buffers(count * x_len, count * dy_len, |xpad, grad| {
                for group in 0..g.groups {
                    for i in 0..count {
                        let b = start + i;
                        let planes = &x[b * image_in + group * cg * g.h * g.w..];
                        embed(
                            &planes[..cg * g.h * g.w],
                            (cg, g.h, g.w),
                            &mut xpad[i * x_len..][..cg * pad.plane],
                            (pad.plane, pad.hp, pad.wp),
                            (g.pad[0], g.pad[1]),
                        );
                        let image_grad = &mut grad[i * dy_len..][..dy_len];
                        embed(
                            &dy[b * image_out + group * og * p..][..og * p],
                            (og, g.oh, g.ow),
                            &mut image_grad[..og * wide],
                            (wide, g.oh, pad.wp),
                            (0, 0),
                        );
                        image_grad[og * wide..].fill(0.0);
                    }
                    let (xpad, grad) = (&*xpad, &*grad);
                    let pair = |(pair, dst): (usize, &mut [f32])| {
                        let dy = grad[2 * pair * wide..].as_ptr();
                        for ci in 0..cg {
                            let x = xpad[ci * pad.plane..].as_ptr();
                            for c in &chunk {
                                let at = &offsets[c.clone()];
                                let images = Images {
                                    count,
                                    x_len,
                                    dy_len,
                                };
                                // SAFETY: `fits` checked AVX2 and FMA. For each of the `count`
                                // images, `dy` holds two rows of `wide` (`grad` has `rows` of
                                // them an image); `x` is read at `off + q` for `q < wide <=
                                // positions + 7`, `off + positions <= plane` (`Padded::of`),
                                // inside the image's `x_len` for every `ci < cg`.
                                #[cfg(target_arch = "x86_64")]
                                let sums = unsafe {
                                    match at.len() {
                                        6 => widen(kernel_dw::<6>(dy, wide, x, at, images)),
                                        5 => widen(kernel_dw::<5>(dy, wide, x, at, images)),
                                        4 => widen(kernel_dw::<4>(dy, wide, x, at, images)),
                                        3 => widen(kernel_dw::<3>(dy, wide, x, at, images)),
                                        2 => widen(kernel_dw::<2>(dy, wide, x, at, images)),
                                        _ => widen(kernel_dw::<1>(dy, wide, x, at, images)),
                                    }
                                };
                                #[cfg(not(target_arch = "x86_64"))]
                                let sums: [[f32; 6]; 2] = unreachable!(
                                    "`fits` holds on x86-64 only ({dy:?}, {x:?}, {})",
                                    images.count
                                );
                                for (row, sums) in dst.chunks_mut(k).zip(&sums) {
                                    let to = &mut row[ci * taps + c.start..][..c.len()];
                                    for (d, s) in to.iter_mut().zip(sums) {
                                        *d += *s;
                                    }
                                }
                            }
                        }
                    };
                    let dst = &mut dw[group * og * k..][..og * k];
                    if spread {
                        dst.chunks_mut(2 * k).enumerate().for_each(pair);
                    } else {
                        dst.par_chunks_mut(2 * k).enumerate().for_each(pair);
                    }
                }
            });
            start += count;
        }
        dw
    };
    sum_over_images(g.n, spread, partial)
}

/// What a batch of images of the weight gradient takes at most: the core's share of the L2
/// cache (512 KiB here) halved.
const BATCH_BYTES: usize = 256 << 10;

/// The images of one call of [`kernel_dw`]: `count` of them, `x_len` and `dy_len` apart.
#[derive(Debug, Clone, Copy)]
struct Images {
    count: usize,
    x_len: usize,
    dy_len: usize,
}

/// `sums` in the first `T` places of six.
fn widen<const T: usize>(sums: [[f32; T]; 2]) -> [[f32; 6]; 2] {
    sums.map(|row| std::array::from_fn(|t| if t < T { row[t] } else { 0.0 }))
}

/// For the two rows `dy` and `dy + stride` and each of the `T` offsets `off`, the sum over the
/// images `i` and `q < stride` of `dy[i · dy_len + q] · x[i · x_len + off + q]` (`stride` a
/// multiple of 8).
///
/// # Safety
/// The CPU has AVX2 and FMA; `offsets` has `T` elements; for each image, `dy` is readable for
/// `2 · stride` elements and `x` at `off + q` for every offset and `q < stride`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_dw<const T: usize>(
    dy: *const f32,
    stride: usize,
    x: *const f32,
    offsets: &[usize],
    images: Images,
) -> [[f32; T]; 2] {
    use std::arch::x86_64::*;
    let offsets: [usize; T] = offsets.try_into().expect("T offsets");
    let mut acc = [[_mm256_setzero_ps(); T]; 2];
    for i in 0..images.count {
        // SAFETY (all pointer arithmetic and reads below): the caller's contract.
        let (dy, x) = unsafe { (dy.add(i * images.dy_len), x.add(i * images.x_len)) };
        for q in (0..stride).step_by(LANES) {
            let d = [0, stride].map(|row| unsafe { _mm256_loadu_ps(dy.add(row + q)) });
            for t in 0..T {
                let xv = unsafe { _mm256_loadu_ps(x.add(offsets[t] + q)) };
                for r in 0..2 {
                    acc[r][t] = _mm256_fmadd_ps(d[r], xv, acc[r][t]);
                }
            }
        }
    }
    acc.map(|row| {
        row.map(|v| {
            let mut lanes = [0f32; LANES];
            // SAFETY: `lanes` holds 8 floats.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
            lanes.iter().sum()
        })
    })
}
