//! Stride-1 convolutions without a patch matrix: a sum of `kh · kw` matrix products, one per
//! kernel tap, each reading a shifted view of a zero-padded copy of the image.
//!
//! With the image padded to `hp x wp` (`hp = oh + (kh − 1)·dh`, `wp = ow + (kw − 1)·dw`: for
//! stride 1 exactly the input with its padding on both sides) and the output computed `wp` wide
//! (its last `wp − ow` columns are discarded), output position `q = oy·wp + ox` reads tap (`ky`,
//! `kx`) of every input plane at `q + ky·dh·wp + kx·dw`: for each tap, the padded planes from that
//! offset on are a `[channels, positions]` matrix with unit column stride, so that
//! - forward: `y[og, Q] = Σ_tap w_tap[og, cg] · xpad[cg, Q + off_tap]`, `kh · kw` products of
//!   depth `cg` where im2col makes one of depth `cg · kh · kw`;
//! - weight gradient: `dw_tap[og, cg] += dy[og, Q] · xpad[cg, Q + off_tap]ᵀ` (`dy` laid out `wp`
//!   wide, its extra columns zero, so that they add nothing), `kh · kw` products of depth `Q`
//!   where im2col makes one `og x (cg · kh · kw)` product of the same depth;
//! - input gradient: `dxpad[cg, Q + off_tap] += w_tap[og, cg]ᵀ · dy[og, Q]`, the interior of
//!   `dxpad` being `dx`: `kh · kw` products of depth `og`, as im2col's one, written into the
//!   padded image instead of a patch matrix that col2im adds back.
//!
//! im2col writes every input element `kh · kw` times into the patch matrix (and col2im adds them
//! back one short row at a time); here each image is copied once, padded. That pays where the
//! products are small against the copies: the gradients of layers with few output channels
//! ([`RULES`](super::dispatch::RULES)). One difference at the edges: the weight gradient pairs each discarded column's
//! zero gradient with a real input element, so an infinite input there gives NaN where im2col
//! gives ±Inf.

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::ops::Range;

use rayon::prelude::*;

use super::geometry::Geometry;
use super::spread::{inner, matmul, per_image, sum_over_images, tile_height, tiles};
use crate::images_into;

thread_local! {
    /// This thread's padded image and its output or gradient tile (also the direct kernels'),
    /// kept for the next call.
    static BUFFERS: Cell<(Vec<f32>, Vec<f32>)> = const { Cell::new((Vec::new(), Vec::new())) };
}

/// Runs `f` with this thread's two buffers, at least `a` and `b` long (contents unspecified).
/// They are taken out of the thread-local for the call (see `im2col::with_col`), so a call
/// nested in another on the same thread (a product spread over the pool) gets buffers of its own.
pub(super) fn with_buffers<R>(
    a: usize,
    b: usize,
    f: impl FnOnce(&mut [f32], &mut [f32]) -> R,
) -> R {
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

/// The padded layout of one convolution.
#[derive(Debug, Clone, Copy)]
pub(super) struct Padded {
    /// Padded rows.
    pub hp: usize,
    /// Padded columns, also the width the output is computed at.
    pub wp: usize,
    /// Elements per padded plane: `hp · wp`, plus the reads of the last row's discarded columns.
    pub plane: usize,
}

impl Padded {
    pub fn of(g: &Geometry) -> Padded {
        let hp = g.oh + (g.kh - 1) * g.dilation[0];
        let wp = g.ow + (g.kw - 1) * g.dilation[1];
        Padded {
            hp,
            wp,
            plane: hp * wp + (g.kw - 1) * g.dilation[1],
        }
    }

    /// Where tap `t` (`ky · kw + kx`) reads, relative to the output position.
    pub fn offset(&self, g: &Geometry, t: usize) -> usize {
        let (ky, kx) = (t / g.kw, t % g.kw);
        ky * g.dilation[0] * self.wp + kx * g.dilation[1]
    }

    /// Output rows per tile: a tile's output block and the padded rows its taps read stay in the
    /// core's L2 cache across the taps.
    fn tile_rows(&self, g: &Geometry) -> usize {
        tile_height(g.oh, 4 * (g.og() + g.cg()) * self.wp)
    }

    fn tiles(&self, g: &Geometry) -> impl Iterator<Item = Range<usize>> + use<> {
        tiles(g.oh, self.tile_rows(g))
    }
}

/// How many tiles of output rows `g` is cut into.
#[cfg(test)]
pub fn tile_count(g: &Geometry) -> usize {
    Padded::of(g).tiles(g).count()
}

/// Whether this method can compute `g`: stride 1.
pub fn fits(g: &Geometry) -> bool {
    g.stride == [1, 1]
}

/// Copies `planes` planes of `rows x cols` from `src` into `dst` (`plane` apart, each `dst_rows
/// x dst_cols` then zeros up to `plane`), placed `top` rows down and `left` columns in, zeros
/// around. Rows and columns that would fall past `dst_rows` or `dst_cols` are left out: only a
/// convolution with negative padding after has them, the flipped input gradient of one whose
/// padding after exceeds `(k - 1)·dilation`, and it never reads them.
pub(super) fn embed(
    src: &[f32],
    (planes, rows, cols): (usize, usize, usize),
    dst: &mut [f32],
    (plane, dst_rows, dst_cols): (usize, usize, usize),
    (top, left): (usize, usize),
) {
    assert!(top <= dst_rows && left <= dst_cols && dst_rows * dst_cols <= plane);
    let (kept_rows, kept_cols) = (rows.min(dst_rows - top), cols.min(dst_cols - left));
    for c in 0..planes {
        let src = &src[c * rows * cols..][..rows * cols];
        let dst = &mut dst[c * plane..][..plane];
        dst[..top * dst_cols].fill(0.0);
        for (y, line) in src.chunks_exact(cols.max(1)).take(kept_rows).enumerate() {
            let out = &mut dst[(top + y) * dst_cols..][..dst_cols];
            out[..left].fill(0.0);
            out[left..left + kept_cols].copy_from_slice(&line[..kept_cols]);
            out[left + kept_cols..].fill(0.0);
        }
        dst[(top + kept_rows) * dst_cols..].fill(0.0);
    }
}

/// The inverse of [`embed`]: `dst`'s `rows x cols` planes read from `src`'s (`plane` apart,
/// `src_cols` wide) at `top` rows down and `left` columns in; every element of those planes in
/// `dst` is written (`dst` may be uninitialized).
pub(super) fn extract(
    src: &[f32],
    (plane, src_cols): (usize, usize),
    (top, left): (usize, usize),
    dst: &mut [MaybeUninit<f32>],
    (planes, rows, cols): (usize, usize, usize),
) {
    assert!(left + cols <= src_cols && (top + rows) * src_cols <= plane);
    for c in 0..planes {
        let src = &src[c * plane..][..plane];
        let dst = &mut dst[c * rows * cols..][..rows * cols];
        for (y, line) in dst.chunks_exact_mut(cols.max(1)).enumerate() {
            line.write_copy_of_slice(&src[(top + y) * src_cols + left..][..cols]);
        }
    }
}

/// See [`super::im2col::forward`], which checks the buffers' lengths and calls this.
pub(super) fn forward(g: &Geometry, x: &[f32], weight: &[f32]) -> Vec<f32> {
    let (k, p, og, cg, taps) = (g.k(), g.p(), g.og(), g.cg(), g.kh * g.kw);
    let pad = Padded::of(g);
    let (image_in, image_out) = (g.image_in(), g.image_out());
    let spread = per_image(g.n);
    let rows = pad.tile_rows(g);
    let one = |(b, out): (usize, &mut [MaybeUninit<f32>])| {
        let image = &x[b * image_in..][..image_in];
        with_buffers(cg * pad.plane, og * rows * pad.wp, |xpad, tile| {
            for group in 0..g.groups {
                let planes = &image[group * cg * g.h * g.w..][..cg * g.h * g.w];
                embed(
                    planes,
                    (cg, g.h, g.w),
                    xpad,
                    (pad.plane, pad.hp, pad.wp),
                    (g.pad[0], g.pad[1]),
                );
                let w = &weight[group * og * k..][..og * k];
                let dst = &mut out[group * og * p..][..og * p];
                for span in pad.tiles(g) {
                    let q = span.len() * pad.wp;
                    let tile = &mut tile[..og * q];
                    for t in 0..taps {
                        let from = span.start * pad.wp + pad.offset(g, t);
                        matmul(
                            (og, q, cg),
                            tile,
                            [q, 1],
                            t > 0,
                            &w[t..],
                            [k, taps],
                            &xpad[from..],
                            [pad.plane, 1],
                            inner(spread),
                        );
                    }
                    // The tile's rows of every output plane, without the discarded columns.
                    for co in 0..og {
                        extract(
                            &tile[co * q..][..q],
                            (q, pad.wp),
                            (0, 0),
                            &mut dst[co * p + span.start * g.ow..][..span.len() * g.ow],
                            (1, span.len(), g.ow),
                        );
                    }
                }
            }
        });
    };
    // SAFETY: for each group, the tiles' spans cover the output rows `0..oh` and `extract`
    // writes each span's rows of every one of the group's `og` planes: the whole image.
    unsafe { images_into(g.n, image_out, spread, one) }
}

/// See [`super::im2col::weight_grad`], which checks the buffers' lengths and calls this.
pub(super) fn weight_grad(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (k, p, og, cg, taps) = (g.k(), g.p(), g.og(), g.cg(), g.kh * g.kw);
    let pad = Padded::of(g);
    let (image_in, image_out) = (g.image_in(), g.image_out());
    let wide = g.oh * pad.wp;
    let spread = per_image(g.n);
    // Each range's sum tap-major (`[group][tap][og][cg]`: every product writes a dense block).
    let partial = |images: Range<usize>| {
        let mut dw = vec![0f32; g.o * k];
        let mut first = true;
        for b in images {
            let image = &x[b * image_in..][..image_in];
            with_buffers(cg * pad.plane, og * wide, |xpad, grad| {
                for group in 0..g.groups {
                    embed(
                        &image[group * cg * g.h * g.w..][..cg * g.h * g.w],
                        (cg, g.h, g.w),
                        xpad,
                        (pad.plane, pad.hp, pad.wp),
                        (g.pad[0], g.pad[1]),
                    );
                    embed(
                        &dy[b * image_out + group * og * p..][..og * p],
                        (og, g.oh, g.ow),
                        grad,
                        (wide, g.oh, pad.wp),
                        (0, 0),
                    );
                    let dst = &mut dw[group * og * k..][..og * k];
                    for span in pad.tiles(g) {
                        let q = span.len() * pad.wp;
                        let at = span.start * pad.wp;
                        for t in 0..taps {
                            let from = at + pad.offset(g, t);
                            matmul(
                                (og, cg, q),
                                &mut dst[t * og * cg..][..og * cg],
                                [cg, 1],
                                !first || span.start > 0,
                                &grad[at..],
                                [wide, 1],
                                &xpad[from..],
                                [1, pad.plane],
                                inner(spread),
                            );
                        }
                    }
                }
            });
            first = false;
        }
        dw
    };
    let sum = sum_over_images(g.n, spread, partial);
    // Laid out `[o, cg, kh, kw]`.
    let mut dw = vec![0f32; g.o * k];
    dw.par_chunks_mut(k).enumerate().for_each(|(o, row)| {
        let (group, co) = (o / og, o % og);
        let block = &sum[group * og * k..][..og * k];
        for ci in 0..cg {
            for t in 0..taps {
                row[ci * taps + t] = block[(t * og + co) * cg + ci];
            }
        }
    });
    dw
}

/// See [`super::im2col::input_grad`], which checks the buffers' lengths and calls this.
pub(super) fn input_grad(g: &Geometry, weight: &[f32], dy: &[f32]) -> Vec<f32> {
    let (k, p, og, cg, taps) = (g.k(), g.p(), g.og(), g.cg(), g.kh * g.kw);
    let pad = Padded::of(g);
    let (image_in, image_out) = (g.image_in(), g.image_out());
    let wide = g.oh * pad.wp;
    let spread = per_image(g.n);
    let one = |(b, image): (usize, &mut [MaybeUninit<f32>])| {
        with_buffers(cg * pad.plane, og * wide, |dxpad, grad| {
            for group in 0..g.groups {
                embed(
                    &dy[b * image_out + group * og * p..][..og * p],
                    (og, g.oh, g.ow),
                    grad,
                    (wide, g.oh, pad.wp),
                    (0, 0),
                );
                dxpad.fill(0.0);
                let w = &weight[group * og * k..][..og * k];
                for span in pad.tiles(g) {
                    let q = span.len() * pad.wp;
                    let at = span.start * pad.wp;
                    for t in 0..taps {
                        matmul(
                            (cg, q, og),
                            &mut dxpad[at + pad.offset(g, t)..],
                            [pad.plane, 1],
                            true,
                            &w[t..],
                            [taps, k],
                            &grad[at..],
                            [wide, 1],
                            inner(spread),
                        );
                    }
                }
                extract(
                    dxpad,
                    (pad.plane, pad.wp),
                    (g.pad[0], g.pad[1]),
                    &mut image[group * cg * g.h * g.w..][..cg * g.h * g.w],
                    (cg, g.h, g.w),
                );
            }
        });
    };
    // SAFETY: `extract` writes each group's `cg` planes of `h x w`: the whole image.
    unsafe { images_into(g.n, image_in, spread, one) }
}
