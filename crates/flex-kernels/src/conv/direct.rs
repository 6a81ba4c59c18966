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
//! - Weight gradient (`kernel_dw`): the output channels in the lanes instead: for 16 output
//!   channels (`dy` transposed per image) and six fan-in elements (channel, tap), twelve vector
//!   accumulators sum `dy[oy·ow + ox][o..o + 16] · xpad[ci][oy·wp + ox + off_t]` over the output
//!   positions (`oy`, `ox`) of a batch of images.
//! - Input gradient: the forward kernel computes [`super::geometry::flipped`]'s convolution.
//!
//! On CPUs with AVX-512F both kernels run in their 16-lane forms (`conv/wide.rs`): one register
//! holds a forward block's 16 positions (blocks of 8 output channels, two blocks of positions
//! per call) or a weight-gradient block's 16 output channels (calls of up to 24 fan-in
//! elements: whole kernel rows 3, 5 or 7 taps wide, whose taps share the broadcast input;
//! other kernels tap by tap);
//! [`with_avx2`] keeps a thread on the AVX2 forms, to compare them and to test both.
//!
//! The forward kernel's output positions past the last row and in the discarded columns read
//! whatever lies there (the next plane, or a slack that ends the buffer); they are never copied
//! out. The last block of output channels is padded with zero weights (forward) or zero `dy`
//! (weight gradient), the positions to whole vectors.
//!
//! (Longer than the project's 400 lines: the forward and weight-gradient kernels share the
//! padded copy, the blocking and the packing, and each one's SAFETY argument rests on them.)

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::ops::Range;
use std::sync::OnceLock;

use rayon::prelude::*;

use super::geometry::Geometry;
use super::shifted::{Padded, embed, extract, with_buffers};
use super::spread::{as_uninit, per_image, sum_over_images};
use super::wide;
use crate::images_into;

/// f32 lanes of an AVX register.
const LANES: usize = 8;

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

/// The instruction set the kernels run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    /// 8 lanes, 16 registers.
    Avx2,
    /// 16 lanes, 32 registers ([`wide`]).
    Avx512,
}

thread_local! {
    /// Whether this thread keeps to the AVX2 kernels ([`with_avx2`]).
    static AVX2_ONLY: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the direct kernels called from this thread in their AVX2 forms, also on a CPU
/// with AVX-512: to measure one against the other, and to test both on one machine.
pub fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    crate::with_setting(&AVX2_ONLY, true, f)
}

/// Whether this CPU has AVX-512F (with the AVX2 and FMA that [`available`] needs).
pub fn avx512_available() -> bool {
    available() && crate::has_avx512f()
}

/// Whether the kernels called from this thread run in their AVX-512 forms (the CPU has them,
/// and [`with_avx2`] does not hold).
pub fn runs_avx512() -> bool {
    isa() == Isa::Avx512
}

/// The kernels' form for a call from this thread.
fn isa() -> Isa {
    if avx512_available() && !AVX2_ONLY.get() {
        Isa::Avx512
    } else {
        Isa::Avx2
    }
}

/// Whether this method can compute the forward pass of `g`: stride 1, on a CPU with AVX2 and FMA.
pub fn fits(g: &Geometry) -> bool {
    g.stride == [1, 1] && available()
}

/// Vectors of positions per block (two: 16 positions).
const NV: usize = 2;

/// Output channels per block: with AVX2 6 (12 accumulators, 2 input vectors and a broadcast
/// weight fill 15 of the 16 registers), with AVX-512 [`wide::MR`]; the last block of a group
/// an even number below that where the channel count leaves a rest (an odd count gets one
/// zero-weight channel). An AVX2 4 x 3 block (24 positions) would need 17 registers: one
/// accumulator would live on the stack, at about half the speed.
fn blocks(og: usize, isa: Isa) -> Vec<(usize, usize)> {
    let mr = match isa {
        Isa::Avx2 => 6,
        Isa::Avx512 => wide::MR,
    };
    let mut blocks: Vec<(usize, usize)> = (0..og / mr).map(|b| (mr * b, mr)).collect();
    let rest = og % mr;
    if rest > 0 {
        blocks.push((og - rest, rest.next_multiple_of(2)));
    }
    blocks
}

/// See [`super::im2col::forward`], which checks the buffers' lengths and calls this where
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
    let isa = isa();
    let blocks = blocks(og, isa);
    let rows = og.next_multiple_of(2);
    let packed = pack(g, weight, &blocks);
    let offsets: Vec<usize> = (0..taps).map(|t| pad.offset(g, t)).collect();
    // Rows a whole number of blocks wide, or two rows of 8 per block, and blocks of channels that
    // end at the last one: the kernel writes the output planes themselves and computes no
    // discarded column (ResNet-20's 32-, 16- and 8-wide layers: 34, 18 and 10 columns computed
    // for 32, 16 and 8 otherwise). Else it writes a tile of `wide` rows that `extract` copies out.
    let even = og.is_multiple_of(2);
    let rows_of = if g.ow.is_multiple_of(nr) && even {
        Rows::Whole
    } else if g.ow == LANES && g.oh.is_multiple_of(2) && even {
        Rows::Pairs
    } else {
        Rows::Wide
    };
    let rowwise = rows_of != Rows::Wide;
    // Each block of 16 positions: where it starts in the padded input and in the output rows.
    let spots: Vec<(usize, usize)> = match rows_of {
        Rows::Whole => (0..g.oh)
            .flat_map(|oy| {
                (0..g.ow)
                    .step_by(nr)
                    .map(move |ox| (oy * pad.wp + ox, oy * g.ow + ox))
            })
            .collect(),
        Rows::Pairs => (0..g.oh)
            .step_by(2)
            .map(|oy| (oy * pad.wp, oy * g.ow))
            .collect(),
        Rows::Wide => (0..wide).step_by(nr).map(|q| (q, q)).collect(),
    };
    // With `Rows::Wide`, the last block of the last plane reads up to `nr - 2` elements past it.
    let x_len = cg * pad.plane + nr;
    let spread = per_image(g.n);
    let one = |(b, out): (usize, &mut [MaybeUninit<f32>])| {
        let image = &x[b * image_in..][..image_in];
        let tile_len = if rowwise { 0 } else { rows * wide };
        with_buffers(x_len, tile_len, |xpad, tile| {
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
                // Output channel rows `stride` apart: the image's own output planes (`p`), or the
                // wide tile's rows.
                let stride = if rowwise { p } else { wide };
                let block = |((first, mr), out): ((usize, usize), &mut [MaybeUninit<f32>])| {
                    let w = &weights[first * cg * taps..][..mr * cg * taps];
                    // The block's two vectors lie `steps` apart in the input and the output: 8
                    // (16 consecutive positions) or, for pairs of 8-wide rows, one padded row
                    // and one output row.
                    let steps = match rows_of {
                        Rows::Pairs => [pad.wp, g.ow],
                        _ => [LANES; 2],
                    };
                    // One kernel call for the blocks of positions `spots` (one, or with
                    // AVX-512 two) and this block of channels.
                    let run = |spots: &[(usize, usize)]| {
                        let (q, at) = spots[0];
                        let (x, out) = (xpad[q..].as_ptr(), out[at..].as_mut_ptr().cast::<f32>());
                        // Where each block lies from the first, in the input and the output
                        // (`spots` ascend in both).
                        let from = |j: usize| {
                            debug_assert!(spots[j].0 >= q && spots[j].1 >= at);
                            (spots[j].0 - q, spots[j].1 - at)
                        };
                        // SAFETY: `fits` checked AVX2 and FMA. The kernel reads `x` at
                        // `ci · plane + off + j · steps[0] + (0..8)` for `ci < cg`, `j < 2`
                        // past each block's `q`: for the real positions below `positions + off
                        // <= plane` (`Padded::of`; pairs: `q + wp` is the next row's first
                        // position, both rows real), and with `Rows::Wide` `q < wide <=
                        // positions + nr - 1` in all, inside `x_len`; `w` holds `cg · taps ·
                        // mr` weights; `out` is `mr` rows `stride` apart, written at `at + j ·
                        // steps[1] + (0..8)` past each block's `at`: inside the tile's rows, or
                        // inside the output plane (`ow` a multiple of 16; pairs: rows `oy` and
                        // `oy + 1 < oh` of 8). With AVX-512 (`isa` is `Avx512` only where the
                        // CPU has it), a block's two 8-lane halves are one register: the same
                        // reads and writes, `steps[1]` being 8 or the 8-wide rows' `ow`
                        // (contiguous); two blocks in one call read and write what the two
                        // calls would (`from` places the second one).
                        #[cfg(target_arch = "x86_64")]
                        unsafe {
                            let (plane, offsets) = (pad.plane, &offsets);
                            let split = steps[0] != LANES;
                            let xs = steps[0];
                            // The AVX-512 kernel for `mr` channels, split or not, at `$at`.
                            macro_rules! wide_kernel {
                                ($split:literal, $at:expr) => {
                                    match mr {
                                        8 => wide::kernel::<8, _, $split>(
                                            x, plane, offsets, cg, w, out, stride, xs, $at,
                                        ),
                                        6 => wide::kernel::<6, _, $split>(
                                            x, plane, offsets, cg, w, out, stride, xs, $at,
                                        ),
                                        4 => wide::kernel::<4, _, $split>(
                                            x, plane, offsets, cg, w, out, stride, xs, $at,
                                        ),
                                        _ => wide::kernel::<2, _, $split>(
                                            x, plane, offsets, cg, w, out, stride, xs, $at,
                                        ),
                                    }
                                };
                            }
                            match (isa, split, spots.len()) {
                                (Isa::Avx2, _, _) => match mr {
                                    6 => kernel::<6>(x, plane, offsets, cg, w, out, stride, steps),
                                    4 => kernel::<4>(x, plane, offsets, cg, w, out, stride, steps),
                                    _ => kernel::<2>(x, plane, offsets, cg, w, out, stride, steps),
                                },
                                (Isa::Avx512, false, 1) => wide_kernel!(false, [from(0)]),
                                (Isa::Avx512, true, 1) => wide_kernel!(true, [from(0)]),
                                (Isa::Avx512, false, _) => wide_kernel!(false, [from(0), from(1)]),
                                (Isa::Avx512, true, _) => wide_kernel!(true, [from(0), from(1)]),
                            }
                        }
                        #[cfg(not(target_arch = "x86_64"))]
                        unreachable!(
                            "`fits` holds on x86-64 only ({x:?}, {out:?}, {:?})",
                            from(0)
                        );
                    };
                    // AVX2's kernel holds one block of positions, AVX-512's two.
                    let per_call = match isa {
                        Isa::Avx2 => 1,
                        Isa::Avx512 => 2,
                    };
                    spots.chunks(per_call).for_each(run);
                };
                let dst = &mut out[group * og * p..][..og * p];
                let mut rest = if rowwise {
                    &mut dst[..]
                } else {
                    // SAFETY: the kernel stores initialized floats only.
                    unsafe { as_uninit(&mut tile[..rows * wide]) }
                };
                let mut work = Vec::with_capacity(blocks.len());
                for &(first, mr) in &blocks {
                    let (head, tail) = std::mem::take(&mut rest).split_at_mut(mr * stride);
                    work.push(((first, mr), head));
                    rest = tail;
                }
                if spread {
                    work.into_iter().for_each(block);
                } else {
                    work.into_par_iter().for_each(block);
                }
                if !rowwise {
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
            }
        });
    };
    // SAFETY: every element of the image is written: with rows whole or in pairs, the kernel
    // stores each block of 16 positions of every output row (`spots`) for every block of
    // channels (`blocks` cover `0..og`, `og` even: no padded channel); else `extract` copies the
    // `oh x ow` positions of each of the `og` planes out of the tile.
    unsafe { images_into(g.n, image_out, spread, one) }
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

/// How the forward kernel's blocks of 16 positions map onto the output rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rows {
    /// Rows a multiple of 16 wide: blocks along each row, written into the output planes.
    Whole,
    /// Rows 8 wide, an even number of them: a block is two rows, written into the output planes.
    Pairs,
    /// Any other: blocks over the `wp`-wide positions, written into a tile.
    Wide,
}

/// One block: `out[r · stride + j · ostep + l]` for `r < MR`, `j < 2`, `l < 8` is the sum over
/// `ci < cg` and the taps `t` of `w[(ci · taps + t) · MR + r] · x[ci · plane + offsets[t] + j ·
/// xstep + l]`, with `[xstep, ostep]` = `steps`.
///
/// # Safety
/// The CPU has AVX2 and FMA; `x` is readable at every such index, `w` has `cg · taps · MR`
/// elements, `out` is writable at every such index.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel<const MR: usize>(
    x: *const f32,
    plane: usize,
    offsets: &[usize],
    cg: usize,
    w: &[f32],
    out: *mut f32,
    stride: usize,
    [xstep, ostep]: [usize; 2],
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
                std::array::from_fn(|j| unsafe { _mm256_loadu_ps(src.add(j * xstep)) });
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
            unsafe { _mm256_storeu_ps(out.add(r * stride + j * ostep), *v) };
        }
    }
}

/// What a batch of images of the weight gradient takes at most: the core's share of the L2
/// cache (512 KiB here) halved.
const BATCH_BYTES: usize = 256 << 10;

/// Output channels per block of the transposed weight gradient: two AVX2 vectors, one AVX-512.
const OB: usize = 2 * LANES;
const _: () = assert!(OB == wide::LANES);
// `weight_grad`'s calls of the AVX-512 kernel list these row counts (1 to 12 rows of 1 column,
// to 8 of 3, 4 of 5, 3 of 7).
const _: () = assert!(
    wide::rows_per_call(1) == 12
        && wide::rows_per_call(3) == 8
        && wide::rows_per_call(5) == 4
        && wide::rows_per_call(7) == 3
);

/// See [`super::im2col::weight_grad`], which checks the buffers' lengths and calls this where
/// [`fits`] holds. The output channels lie in the vector lanes: the images of a thread's range go
/// in batches that fit [`BATCH_BYTES`], each image copied padded and its `dy` transposed
/// (`[position][og rounded up to 16]`, the real positions only); then per block of 16 output
/// channels and chunk of fan-in elements `f = ci · taps + t` (six with AVX2; with AVX-512
/// whole kernel rows, see [`wide::kernel_dw`]), one call of `kernel_dw` sums `dy[oy·ow +
/// ox][o..o + 16] · xpad[ci][oy·wp + ox + off_t]` over every output position (`oy`, `ox`) of
/// the batch's images in one vector accumulator per fan-in element (two with AVX2). Against the
/// output positions in the lanes (as the forward kernel has them), this needs no sums across
/// lanes at the end of a call and reads no discarded columns; it is slower only where the
/// transposition of `dy` weighs most against the fan-in (a 3-channel first layer).
pub(super) fn weight_grad(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    assert!(
        fits(g),
        "the direct kernel needs stride 1 and a CPU with AVX2 and FMA"
    );
    let (k, p, og, cg, taps) = (g.k(), g.p(), g.og(), g.cg(), g.kh * g.kw);
    let pad = Padded::of(g);
    let (image_in, image_out) = (g.image_in(), g.image_out());
    let cols = og.next_multiple_of(OB);
    let isa = isa();
    // Kernel columns the kernel takes as one row (`wide::kernel_dw`'s `KW`): the widths it is
    // called with below, where the columns lie one position apart (no dilation across); 1, tap
    // by tap, otherwise. And fan-in elements per kernel call (whole rows).
    let kw = match isa {
        Isa::Avx512 if g.dilation[1] == 1 && matches!(g.kw, 3 | 5 | 7) => g.kw,
        _ => 1,
    };
    let fan = match isa {
        Isa::Avx2 => 6,
        Isa::Avx512 => kw * wide::rows_per_call(kw),
    };
    // Where the row starting at fan-in element `f` reads in an image's padded planes,
    // relative to the position.
    let reads: Vec<usize> = (0..k)
        .step_by(kw)
        .map(|f| (f / taps) * pad.plane + pad.offset(g, f % taps))
        .collect();
    let (x_len, dy_len) = (cg * pad.plane, p * cols);
    let batch = (BATCH_BYTES / 4 / (x_len + dy_len)).max(1);
    let spread = per_image(g.n);
    let shape = Shape {
        oh: g.oh,
        ow: g.ow,
        wp: pad.wp,
        cols,
        x_len,
        dy_len,
    };
    // Each range's sum laid out `[group][f][cols]`.
    let partial = |images: Range<usize>| {
        let mut dwt = vec![0f32; g.groups * k * cols];
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
                            &mut xpad[i * x_len..][..x_len],
                            (pad.plane, pad.hp, pad.wp),
                            (g.pad[0], g.pad[1]),
                        );
                        let from = &dy[b * image_out + group * og * p..][..og * p];
                        let to = &mut grad[i * dy_len..][..dy_len];
                        // (The lanes from `og` on are never read; zeroed so that they hold no
                        // stale values.)
                        if og < cols {
                            for row in to.chunks_exact_mut(cols) {
                                row[og..].fill(0.0);
                            }
                        }
                        transpose(from, p, to, cols);
                    }
                    let (xpad, grad) = (&*xpad, &*grad);
                    let chunk = |(c, dst): (usize, &mut [f32])| {
                        let at = &reads[fan * c / kw..(fan * c + fan).min(k) / kw];
                        for ob in (0..cols).step_by(OB) {
                            let (dy, x) = (grad[ob..].as_ptr(), xpad.as_ptr());
                            // Each kernel call's sums, added to `dst`'s rows.
                            macro_rules! call {
                                ($kernel:ident; $($t:literal)+) => {
                                    match at.len() {
                                        $($t => add(dst, cols, ob, &$kernel::<$t>(dy, x, at, shape, count)),)+
                                        n => unreachable!("{n} fan-in elements in a call"),
                                    }
                                };
                                ($kernel:ident, $kw:literal; $($r:literal)+) => {
                                    match at.len() {
                                        $($r => add(dst, cols, ob, $kernel::<$r, $kw>(dy, x, at, shape, count).as_flattened()),)+
                                        n => unreachable!("{n} kernel rows in a call"),
                                    }
                                };
                            }
                            // SAFETY: `fits` checked AVX2 and FMA, `isa` AVX-512F where it
                            // says `Avx512`. For each of the `count` images the kernel reads
                            // `dy` at `q · cols + ob + (0..16)` for the `p` positions, inside the
                            // image's `dy_len`, and `x` at `read + oy · wp + ox + kx` (`kx <
                            // kw`) for the real positions, below `plane · cg` (`Padded::of`).
                            #[cfg(target_arch = "x86_64")]
                            unsafe {
                                use wide::kernel_dw as kernel_dw512;
                                match (isa, kw) {
                                    (Isa::Avx2, _) => call!(kernel_dw; 1 2 3 4 5 6),
                                    (Isa::Avx512, 1) => {
                                        call!(kernel_dw512, 1; 1 2 3 4 5 6 7 8 9 10 11 12)
                                    }
                                    (Isa::Avx512, 3) => call!(kernel_dw512, 3; 1 2 3 4 5 6 7 8),
                                    (Isa::Avx512, 5) => call!(kernel_dw512, 5; 1 2 3 4),
                                    (Isa::Avx512, 7) => call!(kernel_dw512, 7; 1 2 3),
                                    (Isa::Avx512, kw) => unreachable!("no kernel for rows of {kw}"),
                                }
                            }
                            #[cfg(not(target_arch = "x86_64"))]
                            unreachable!("`fits` holds on x86-64 only ({dy:?}, {x:?}, {count})");
                        }
                    };
                    let dst = &mut dwt[group * k * cols..][..k * cols];
                    if spread {
                        dst.chunks_mut(fan * cols).enumerate().for_each(chunk);
                    } else {
                        dst.par_chunks_mut(fan * cols).enumerate().for_each(chunk);
                    }
                }
            });
            start += count;
        }
        dwt
    };
    let sum = sum_over_images(g.n, spread, partial);
    // Laid out `[o, cg, kh, kw]`.
    let mut dw = vec![0f32; g.o * k];
    dw.par_chunks_mut(k).enumerate().for_each(|(o, row)| {
        let (group, co) = (o / og, o % og);
        for (f, v) in row.iter_mut().enumerate() {
            *v = sum[(group * k + f) * cols + co];
        }
    });
    dw
}

/// `to[q · cols + o] = from[o · p + q]` for every plane `o` of `from` and position `q < p`. With
/// AVX-512, blocks of 16 planes by 16 positions are turned in registers ([`wide::transpose`]);
/// the planes and positions past the last whole block go through [`transpose_range`].
pub(super) fn transpose(from: &[f32], p: usize, to: &mut [f32], cols: usize) {
    let planes = from.len() / p.max(1);
    assert!(planes <= cols && to.len() >= p * cols);
    let (whole_q, whole_o) = match isa() {
        Isa::Avx512 => (p - p % wide::LANES, planes - planes % wide::LANES),
        Isa::Avx2 => (0, 0),
    };
    #[cfg(target_arch = "x86_64")]
    for q0 in (0..whole_q).step_by(wide::LANES) {
        for o0 in (0..whole_o).step_by(wide::LANES) {
            // SAFETY: `isa` says AVX-512F only where the CPU has it; the block reads planes
            // `o0..o0 + 16 <= planes` at positions `q0..q0 + 16 <= p`, inside `from`, and writes
            // rows `q0..q0 + 16` of `to` at `o0..o0 + 16 <= cols` (asserted above).
            unsafe {
                wide::transpose(
                    from[o0 * p + q0..].as_ptr(),
                    p,
                    to[q0 * cols + o0..].as_mut_ptr(),
                    cols,
                )
            };
        }
    }
    transpose_range(from, p, to, cols, whole_o..planes, 0..p);
    transpose_range(from, p, to, cols, 0..whole_o, whole_q..p);
}

/// [`transpose`] of the planes `planes` at the positions `positions`, in tiles of [`TILE`]
/// positions: a tile's rows of `to` stay in L1 while every plane writes into them (position by
/// position over a whole plane, the rows of a 16-channel layer's image, 64 KiB, left L1 before
/// the next plane came back to them).
fn transpose_range(
    from: &[f32],
    p: usize,
    to: &mut [f32],
    cols: usize,
    planes: Range<usize>,
    positions: Range<usize>,
) {
    for q0 in positions.clone().step_by(TILE) {
        let q1 = (q0 + TILE).min(positions.end);
        let rows = &mut to[q0 * cols..q1 * cols];
        for o in planes.clone() {
            let plane = &from[o * p..][..p];
            for (row, v) in rows.chunks_exact_mut(cols).zip(&plane[q0..q1]) {
                row[o] = *v;
            }
        }
    }
}

/// Positions per tile of [`transpose_range`].
const TILE: usize = 16;

/// The sizes [`kernel_dw`] walks: output rows and columns, padded width, `dy`'s row length,
/// and how far apart one image's padded planes and transposed `dy` lie.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shape {
    pub(super) oh: usize,
    pub(super) ow: usize,
    pub(super) wp: usize,
    pub(super) cols: usize,
    pub(super) x_len: usize,
    pub(super) dy_len: usize,
}

/// Adds a kernel call's sums, one row of 16 output channels per fan-in element, onto the rows
/// of `dst` (`cols` long) at columns `ob..ob + 16`.
fn add(dst: &mut [f32], cols: usize, ob: usize, sums: &[[f32; OB]]) {
    for (row, sums) in dst.chunks_exact_mut(cols).zip(sums) {
        for (d, s) in row[ob..ob + OB].iter_mut().zip(sums) {
            *d += *s;
        }
    }
}

/// For each of the `T` reads `r`, the 16 sums over the images `i` and the positions `(oy, ox)` of
/// `dy[i · dy_len + (oy · ow + ox) · cols + (0..16)] · x[i · x_len + r + oy · wp + ox]`.
///
/// # Safety
/// The CPU has AVX2 and FMA; `reads` has `T` elements; for each of the `count` images, `dy` is
/// readable at every such index and `x` at every such index.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_dw<const T: usize>(
    dy: *const f32,
    x: *const f32,
    reads: &[usize],
    s: Shape,
    count: usize,
) -> [[f32; OB]; T] {
    use std::arch::x86_64::*;
    let reads: [usize; T] = reads.try_into().expect("T reads");
    let mut acc = [[_mm256_setzero_ps(); 2]; T];
    for i in 0..count {
        for oy in 0..s.oh {
            // SAFETY (all pointer arithmetic and reads below): the caller's contract.
            let mut d = unsafe { dy.add(i * s.dy_len + oy * s.ow * s.cols) };
            let row = unsafe { x.add(i * s.x_len + oy * s.wp) };
            for ox in 0..s.ow {
                let dv = unsafe { [_mm256_loadu_ps(d), _mm256_loadu_ps(d.add(LANES))] };
                for t in 0..T {
                    let xv = unsafe { _mm256_broadcast_ss(&*row.add(reads[t] + ox)) };
                    for v in 0..2 {
                        acc[t][v] = _mm256_fmadd_ps(dv[v], xv, acc[t][v]);
                    }
                }
                d = unsafe { d.add(s.cols) };
            }
        }
    }
    acc.map(|pair| {
        let mut lanes = [0f32; OB];
        // SAFETY: `lanes` holds 16 floats.
        unsafe {
            _mm256_storeu_ps(lanes.as_mut_ptr(), pair[0]);
            _mm256_storeu_ps(lanes.as_mut_ptr().add(LANES), pair[1]);
        }
        lanes
    })
}
