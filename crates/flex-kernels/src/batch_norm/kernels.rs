//! The arithmetic of training-mode batch norm on `[n, c, s]` f32 buffers: statistics per
//! channel, the normalized output (optionally through a ReLU), and the three gradients.

use std::cell::Cell;
use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::wide::{self, LANES};

thread_local! {
    /// Whether this thread keeps to the portable loops ([`with_portable`]).
    static PORTABLE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the batch norms called from this thread on the portable loops, also on a CPU
/// with AVX-512: to test the two forms against each other, and to measure them.
pub fn with_portable<R>(f: impl FnOnce() -> R) -> R {
    crate::with_setting(&PORTABLE, true, f)
}

/// Whether a kernel called from this thread runs the AVX-512 forms ([`wide`]). Read once per
/// call, on the caller's thread, and handed to the pool's tasks.
fn runs_wide() -> bool {
    crate::has_avx512f() && !PORTABLE.get()
}

/// The end of a plane's whole vectors of [`LANES`]: the loops here take `..full` in lanes and
/// the rest element by element.
fn whole(len: usize) -> usize {
    len - len % LANES
}

/// The sum of a plane's lanes and of its rest: `Σ v` (`centre` none) or `Σ (v − m)²` (`centre`
/// m), in [`LANES`] f32 partial sums (lane `l` the elements `l` modulo 16) combined in f64.
fn plane_sum(plane: &[f32], centre: Option<f32>, wide: bool) -> f64 {
    let full = whole(plane.len());
    let lanes = lane_sums(&plane[..full], centre, wide);
    let tail: f64 = plane[full..].iter().map(|&v| term(v, centre) as f64).sum();
    lanes.iter().map(|&v| v as f64).sum::<f64>() + tail
}

/// What [`plane_sum`] adds up for `v`.
#[inline(always)]
fn term(v: f32, centre: Option<f32>) -> f32 {
    centre.map_or(v, |m| (v - m) * (v - m))
}

/// The lanes of [`plane_sum`] over whole vectors, in AVX-512 registers with `wide`.
fn lane_sums(plane: &[f32], centre: Option<f32>, wide: bool) -> [f32; LANES] {
    assert!(plane.len().is_multiple_of(LANES));
    #[cfg(target_arch = "x86_64")]
    if wide {
        // SAFETY: `wide` only where the CPU has AVX-512F; the plane is whole vectors (asserted).
        return unsafe { wide::lane_sums(plane, centre) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = wide;
    let mut lanes = [0f32; LANES];
    for chunk in plane.chunks_exact(LANES) {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += term(v, centre);
        }
    }
    lanes
}

/// Over one plane: Σ g' and Σ g' · (x − m), where g' is `dy` where the forward pass's output
/// `(x − m) · a + b` is above 0 with `mask` = (a, b) (a ReLU followed), else `dy`. One read of
/// each, in lanes as [`plane_sum`].
pub(super) fn gradient_sums(
    dy: &[f32],
    x: &[f32],
    m: f32,
    mask: Option<(f32, f32)>,
    wide: bool,
) -> (f64, f64) {
    assert_eq!(dy.len(), x.len());
    let full = whole(dy.len());
    let (sums, dots) = lane_gradient_sums(&dy[..full], &x[..full], m, mask, wide);
    let (mut sum, mut dot) = (0f64, 0f64);
    for (&g, &v) in dy[full..].iter().zip(&x[full..]) {
        let d = v - m;
        let g = masked(g, d, mask);
        sum += g as f64;
        dot += (g * d) as f64;
    }
    let total = |lanes: [f32; LANES]| lanes.iter().map(|&v| v as f64).sum::<f64>();
    (total(sums) + sum, total(dots) + dot)
}

/// `g` where there is no ReLU or its output `d · a + b` (`d` = x − m, `mask` = (a, b)) is above 0,
/// else 0.
#[inline(always)]
fn masked(g: f32, d: f32, mask: Option<(f32, f32)>) -> f32 {
    match mask {
        Some((a, b)) => {
            if d * a + b > 0.0 {
                g
            } else {
                0.0
            }
        }
        None => g,
    }
}

/// The lanes of [`gradient_sums`] over whole vectors, in AVX-512 registers with `wide`.
fn lane_gradient_sums(
    dy: &[f32],
    x: &[f32],
    m: f32,
    mask: Option<(f32, f32)>,
    wide: bool,
) -> ([f32; LANES], [f32; LANES]) {
    assert!(dy.len() == x.len() && dy.len().is_multiple_of(LANES));
    #[cfg(target_arch = "x86_64")]
    if wide {
        // SAFETY: `wide` only where the CPU has AVX-512F; the slices are as long, whole vectors
        // (asserted).
        return unsafe { wide::gradient_sums(dy, x, m, mask) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = wide;
    let (mut sums, mut dots) = ([0f32; LANES], [0f32; LANES]);
    for (dy, x) in dy.chunks_exact(LANES).zip(x.chunks_exact(LANES)) {
        for l in 0..LANES {
            let d = x[l] - m;
            let g = masked(dy[l], d, mask);
            sums[l] += g;
            dots[l] += g * d;
        }
    }
    (sums, dots)
}

/// `out = (x − m) · a + b`, plus `residual` where there is one, then with `relu` 0 where that is
/// not above 0.
fn normalize(
    out: &mut [MaybeUninit<f32>],
    x: &[f32],
    (m, a, b): (f32, f32, f32),
    (residual, relu): (Option<&[f32]>, bool),
    wide: bool,
) {
    assert_eq!(out.len(), x.len());
    assert!(residual.is_none_or(|r| r.len() == x.len()));
    let full = if wide { whole(x.len()) } else { 0 };
    #[cfg(target_arch = "x86_64")]
    if wide {
        let residual = residual.map(|r| &r[..full]);
        // SAFETY: `wide` only where the CPU has AVX-512F; `..full` is whole vectors of all.
        unsafe { wide::normalize(&mut out[..full], &x[..full], (m, a, b), residual, relu) };
    }
    for (i, (o, &x)) in out.iter_mut().zip(x).enumerate().skip(full) {
        let v = (x - m) * a + b;
        let v = residual.map_or(v, |r| v + r[i]);
        o.write(if !relu || v > 0.0 { v } else { 0.0 });
    }
}

/// `out = g · k − (x − m) · q − r`, `g` = `dy` masked by the ReLU's `mask` where there is one.
fn input_grad(
    out: &mut [MaybeUninit<f32>],
    (dy, x): (&[f32], &[f32]),
    (m, k, q, r): (f32, f32, f32, f32),
    mask: Option<(f32, f32)>,
    wide: bool,
) {
    assert!(out.len() == x.len() && dy.len() == x.len());
    let full = if wide { whole(x.len()) } else { 0 };
    #[cfg(target_arch = "x86_64")]
    if wide {
        // SAFETY: `wide` only where the CPU has AVX-512F; `..full` is whole vectors of all three.
        unsafe {
            wide::input_grad(
                &mut out[..full],
                &dy[..full],
                &x[..full],
                (m, k, q, r),
                mask,
            )
        };
    }
    for ((o, &g), &x) in out[full..].iter_mut().zip(&dy[full..]).zip(&x[full..]) {
        let d = x - m;
        let g = masked(g, d, mask);
        o.write(g * k - d * q - r);
    }
}

/// `f(b, ci)` for every image `b < n` and channel `ci < c`, as a table `[n][c]`: images over
/// the pool, each task reading its images' planes in memory order (a channel's planes lie
/// `c · s` apart: one channel per task reads 4 KiB or less per jump, which the prefetchers
/// follow worse). The caller sums the table's column `ci` in image order, the order of a
/// channel-by-channel loop, so that the sums are that loop's to the bit.
fn per_plane<T: Copy + Default + Send>(
    [n, c, _]: [usize; 3],
    f: impl Fn(usize, usize) -> T + Sync,
) -> Vec<T> {
    let mut table = vec![T::default(); n * c];
    table
        .par_chunks_mut(c.max(1))
        .enumerate()
        .for_each(|(b, row)| {
            for (ci, cell) in row.iter_mut().enumerate() {
                *cell = f(b, ci);
            }
        });
    table
}

/// The per-channel statistics of `x` (`[n, c, s]` flattened): mean and biased variance (two
/// passes: the mean first, then the squared deviations from it).
pub(super) fn statistics(x: &[f32], [n, c, s]: [usize; 3], wide: bool) -> Vec<(f64, f64)> {
    let count = (n * s) as f64;
    (0..c)
        .into_par_iter()
        .map(|ci| {
            let planes = || (0..n).map(move |b| &x[(b * c + ci) * s..][..s]);
            let sum: f64 = planes().map(|p| plane_sum(p, None, wide)).sum();
            let mean = sum / count;
            let m = mean as f32;
            let squares: f64 = planes().map(|p| plane_sum(p, Some(m), wide)).sum();
            // The deviations were taken from the f32-rounded mean: correct for the difference.
            let shift = mean - m as f64;
            (mean, (squares / count - shift * shift).max(0.0))
        })
        .collect()
}

/// A fresh `[n, c, s]` vector whose image `b`, channel `ci` plane is written by
/// `fill(b * c * s + ci * s, ci, plane)` (once, not zeroed first), images in parallel. Contract
/// (why this stays private): `fill` writes every element of the plane it is given.
fn planes_into(
    len: usize,
    [_, c, s]: [usize; 3],
    fill: impl Fn(usize, usize, &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let image = c * s;
    let one = |(b, out): (usize, &mut [MaybeUninit<f32>])| {
        for (ci, plane) in out.chunks_mut(s.max(1)).enumerate() {
            fill(b * image + ci * s, ci, plane);
        }
    };
    // SAFETY: an image's planes cover its chunk, and `fill` writes each whole (see callers).
    unsafe { crate::images_into(len / image.max(1), image, true, one) }
}

/// Per channel, what the output is computed with: `(x − mean) · scale + beta`, `scale` =
/// `gamma / sqrt(variance + epsilon)` from the f32 variance the forward pass returns (so that the
/// backward pass gets the same scale, and a ReLU's mask, bit for bit).
pub(super) fn scales(gamma: &[f32], variance: &[f32], epsilon: f64) -> Vec<f32> {
    gamma
        .iter()
        .zip(variance)
        .map(|(&g, &v)| (g as f64 / (v as f64 + epsilon).sqrt()) as f32)
        .collect()
}

/// Forward: (output, mean, variance); with `relu`, the output is `max(0, ·)`'s.
pub fn forward_kernel(
    x: &[f32],
    shape: [usize; 3],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
    relu: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    forward_with(x, shape, (gamma, beta), epsilon, (None, relu))
}

/// Forward with a residual: `max(0, bn(x) + residual)`, (output, mean, variance); the sum in the
/// order of `relu(bn(x) + residual)` computed apart, so that the two agree to the bit.
pub fn forward_add_relu_kernel(
    x: &[f32],
    shape: [usize; 3],
    (gamma, beta): (&[f32], &[f32]),
    residual: &[f32],
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(
        residual.len(),
        x.len(),
        "the residual is shaped as the input"
    );
    forward_with(x, shape, (gamma, beta), epsilon, (Some(residual), true))
}

fn forward_with(
    x: &[f32],
    shape: [usize; 3],
    (gamma, beta): (&[f32], &[f32]),
    epsilon: f64,
    (residual, relu): (Option<&[f32]>, bool),
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let wide = runs_wide();
    let stats = statistics(x, shape, wide);
    let mean: Vec<f32> = stats.iter().map(|&(m, _)| m as f32).collect();
    let variance: Vec<f32> = stats.iter().map(|&(_, v)| v as f32).collect();
    let scale = scales(gamma, &variance, epsilon);
    // The mean subtracted first, as burn does (x · a + b would cancel large terms when the mean
    // is large against the spread).
    let y = planes_into(x.len(), shape, |at, ci, out| {
        let x = &x[at..at + out.len()];
        let residual = residual.map(|r| &r[at..at + out.len()]);
        normalize(
            out,
            x,
            (mean[ci], scale[ci], beta[ci]),
            (residual, relu),
            wide,
        );
    });
    (y, mean, variance)
}

/// Backward: (input gradient, gamma gradient, beta gradient). `relu_beta`: the forward pass's
/// beta where it applied a ReLU, whose mask is computed again from `x` (see `scales`).
#[allow(clippy::too_many_arguments)]
pub fn backward_kernel(
    x: &[f32],
    shape: [usize; 3],
    gamma: &[f32],
    mean: &[f32],
    variance: &[f32],
    epsilon: f64,
    relu_beta: Option<&[f32]>,
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let [n, c, s] = shape;
    let count = (n * s) as f64;
    let inv_std: Vec<f64> = variance
        .iter()
        .map(|&v| 1.0 / (v as f64 + epsilon).sqrt())
        .collect();
    let scale = scales(gamma, variance, epsilon);
    let mask = |ci: usize| relu_beta.map(|b| (scale[ci], b[ci]));
    let wide = runs_wide();
    // Per channel: the sum of dy (beta's gradient) and of dy · x̂ (gamma's), dy masked by the
    // ReLU's where there is one.
    let planes = per_plane(shape, |b, ci| {
        let at = (b * c + ci) * s;
        let (g, v) = (&dy[at..][..s], &x[at..][..s]);
        gradient_sums(g, v, mean[ci], mask(ci), wide)
    });
    let sums: Vec<(f64, f64)> = (0..c)
        .map(|ci| {
            let (mut sum, mut dot) = (0f64, 0f64);
            for b in 0..n {
                let (plane_sum, plane_dot) = planes[b * c + ci];
                sum += plane_sum;
                dot += plane_dot;
            }
            (sum, dot * inv_std[ci])
        })
        .collect();
    // dx = gamma · inv_std · (dy − mean(dy) − x̂ · mean(dy · x̂)) with x̂ = (x − m) · inv_std:
    // dx = dy · k − (x − m) · q − r per channel.
    let mut k = vec![0f32; c];
    let mut q = vec![0f32; c];
    let mut r = vec![0f32; c];
    for ci in 0..c {
        let g = gamma[ci] as f64 * inv_std[ci];
        let mean_dy = sums[ci].0 / count;
        let mean_dyxhat = sums[ci].1 / count;
        k[ci] = g as f32;
        q[ci] = (g * inv_std[ci] * mean_dyxhat) as f32;
        r[ci] = (g * mean_dy) as f32;
    }
    let dx = planes_into(x.len(), shape, |at, ci, out| {
        let (dy, x) = (&dy[at..at + out.len()], &x[at..at + out.len()]);
        input_grad(
            out,
            (dy, x),
            (mean[ci], k[ci], q[ci], r[ci]),
            mask(ci),
            wide,
        );
    });
    let gamma_grad = sums.iter().map(|&(_, d)| d as f32).collect();
    let beta_grad = sums.iter().map(|&(s, _)| s as f32).collect();
    (dx, gamma_grad, beta_grad)
}
