//! How a convolution's work is spread over the thread pool: images over threads when there are
//! enough of them, else inside each matrix product; sums over images in a fixed order; tiles of
//! output rows sized for the L2 cache.

use std::mem::MaybeUninit;
use std::ops::Range;

use gemm::Parallelism;
use rayon::prelude::*;

/// The size a tile's patch matrix aims at (see [`tile_height`]).
pub(super) const TILE_BYTES: usize = 256 << 10;

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
    let operands = (a, a_strides, b, b_strides);
    // SAFETY: `dst` is initialized, so gemm may read it where it accumulates.
    let dst = unsafe { as_uninit(dst) };
    gemm_into(
        (m, n, k),
        dst,
        dst_strides,
        accumulate,
        operands,
        parallelism,
    );
}

/// `dst[m, n] = a[m, k] · b[k, n]` as [`matmul`], into a `dst` that may be uninitialized: every
/// element the strides reach is written (gemm does not read `dst` when it does not accumulate).
/// `k` is at least 1 (a product of depth 0 might leave `dst` as it is).
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul_into(
    (m, n, k): (usize, usize, usize),
    dst: &mut [MaybeUninit<f32>],
    dst_strides: [usize; 2],
    a: &[f32],
    a_strides: [usize; 2],
    b: &[f32],
    b_strides: [usize; 2],
    parallelism: Parallelism,
) {
    assert!(k > 0, "a product of depth 0");
    let operands = (a, a_strides, b, b_strides);
    gemm_into((m, n, k), dst, dst_strides, false, operands, parallelism);
}

/// A product's two operands, each with its row and column strides.
type Operands<'a> = (&'a [f32], [usize; 2], &'a [f32], [usize; 2]);

/// The product of [`matmul`] and [`matmul_into`]; `dst` is read only with `accumulate`, and
/// then it is initialized (both callers' contracts).
fn gemm_into(
    (m, n, k): (usize, usize, usize),
    dst: &mut [MaybeUninit<f32>],
    dst_strides: [usize; 2],
    accumulate: bool,
    (a, a_strides, b, b_strides): Operands,
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
    // is borrowed mutably, so it overlaps neither operand; gemm reads `dst` only with
    // `accumulate`, where it is initialized, and writes initialized floats.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr().cast::<f32>(),
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

/// `values` seen as `MaybeUninit<f32>`, so that one code path stores into initialized and
/// uninitialized buffers alike.
///
/// # Safety
/// Only initialized floats are written through the view (`values` stays initialized).
pub(super) unsafe fn as_uninit(values: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: `MaybeUninit<f32>` has `f32`'s layout; the caller writes initialized values only.
    unsafe { &mut *(values as *mut [f32] as *mut [MaybeUninit<f32>]) }
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

pub(super) fn inner(per_image: bool) -> Parallelism {
    if per_image {
        Parallelism::None
    } else {
        Parallelism::Rayon(0)
    }
}
