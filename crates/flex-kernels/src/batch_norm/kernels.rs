//! The arithmetic of training-mode batch norm on `[n, c, s]` f32 buffers: statistics per
//! channel, the normalized output (optionally through a ReLU), and the three gradients.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// Lane count of the sums below: each plane is summed in this many f32 partial sums (which the
/// compiler keeps in vector registers), combined in f64 per plane and across planes.
const LANES: usize = 16;

/// Σ f(i) over one plane, f(i) computed from element i of each slice in `planes`.
fn lane_sum<const K: usize>(planes: [&[f32]; K], f: impl Fn([f32; K]) -> f32) -> f64 {
    let len = planes[0].len();
    let mut lanes = [0f32; LANES];
    let full = len - len % LANES;
    for start in (0..full).step_by(LANES) {
        for (l, lane) in lanes.iter_mut().enumerate() {
            *lane += f(planes.map(|p| p[start + l]));
        }
    }
    let tail: f64 = (full..len).map(|i| f(planes.map(|p| p[i])) as f64).sum();
    lanes.iter().map(|&v| v as f64).sum::<f64>() + tail
}

/// Over one plane: Σ g' and Σ g' · (x − m), where g' is `dy` where the forward pass's output
/// `(x − m) · a + b` is above 0 with `RELU` (with `mask` = (a, b)), else `dy`. One read of each,
/// in lanes as [`lane_sum`].
pub(super) fn gradient_sums<const RELU: bool>(
    dy: &[f32],
    x: &[f32],
    m: f32,
    (a, b): (f32, f32),
) -> (f64, f64) {
    let len = dy.len();
    let full = len - len % LANES;
    let (sums, dots) = lane_gradient_sums::<RELU>(&dy[..full], &x[..full], m, (a, b));
    let (mut sum, mut dot) = (0f64, 0f64);
    for i in full..len {
        let d = x[i] - m;
        let g = masked::<RELU>(dy[i], d, (a, b));
        sum += g as f64;
        dot += (g * d) as f64;
    }
    let total = |lanes: [f32; LANES]| lanes.iter().map(|&v| v as f64).sum::<f64>();
    (total(sums) + sum, total(dots) + dot)
}

/// `g` where there is no ReLU or its output `d · a + b` (`d` = x − m) is above 0, else 0.
#[inline(always)]
fn masked<const RELU: bool>(g: f32, d: f32, (a, b): (f32, f32)) -> f32 {
    if !RELU || d * a + b > 0.0 { g } else { 0.0 }
}

/// The lanes of [`gradient_sums`] over whole chunks of [`LANES`] (`dy.len()` a multiple of it):
/// `sums[l]` = Σ g' and `dots[l]` = Σ g' · (x − m) over the elements `l` modulo `LANES`.
fn lane_gradient_sums<const RELU: bool>(
    dy: &[f32],
    x: &[f32],
    m: f32,
    (a, b): (f32, f32),
) -> ([f32; LANES], [f32; LANES]) {
    assert!(dy.len() == x.len() && dy.len().is_multiple_of(LANES));
    #[cfg(target_arch = "x86_64")]
    if crate::conv::direct::avx512_available() {
        // SAFETY: the CPU has AVX-512F; the slices are as long, a multiple of 16 (asserted).
        return unsafe { lane_gradient_sums_avx512::<RELU>(dy, x, m, (a, b)) };
    }
    let (mut sums, mut dots) = ([0f32; LANES], [0f32; LANES]);
    for (dy, x) in dy.chunks_exact(LANES).zip(x.chunks_exact(LANES)) {
        for l in 0..LANES {
            let d = x[l] - m;
            let g = masked::<RELU>(dy[l], d, (a, b));
            sums[l] += g;
            dots[l] += g * d;
        }
    }
    (sums, dots)
}

/// [`lane_gradient_sums`] in AVX-512 registers, the same arithmetic lane by lane (no fused
/// multiply-adds, so the same sums to the bit). The compiler's own vectorization of the
/// portable loop turns the ReLU's select into one masked load per lane.
///
/// # Safety
/// The CPU has AVX-512F; `dy` and `x` are as long, a multiple of 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn lane_gradient_sums_avx512<const RELU: bool>(
    dy: &[f32],
    x: &[f32],
    m: f32,
    (a, b): (f32, f32),
) -> ([f32; LANES], [f32; LANES]) {
    use std::arch::x86_64::*;
    let (mv, av, bv, zero) = (
        _mm512_set1_ps(m),
        _mm512_set1_ps(a),
        _mm512_set1_ps(b),
        _mm512_setzero_ps(),
    );
    let (mut sums, mut dots) = (zero, zero);
    for start in (0..dy.len()).step_by(LANES) {
        // SAFETY: `start + 16 <= len` for both (the caller's contract).
        let (g, xv) = unsafe {
            (
                _mm512_loadu_ps(dy.as_ptr().add(start)),
                _mm512_loadu_ps(x.as_ptr().add(start)),
            )
        };
        let d = _mm512_sub_ps(xv, mv);
        let g = if RELU {
            let above =
                _mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_add_ps(_mm512_mul_ps(d, av), bv), zero);
            _mm512_maskz_mov_ps(above, g)
        } else {
            g
        };
        sums = _mm512_add_ps(sums, g);
        dots = _mm512_add_ps(dots, _mm512_mul_ps(g, d));
    }
    let (mut s, mut t) = ([0f32; LANES], [0f32; LANES]);
    // SAFETY: each array holds 16 floats.
    unsafe {
        _mm512_storeu_ps(s.as_mut_ptr(), sums);
        _mm512_storeu_ps(t.as_mut_ptr(), dots);
    }
    (s, t)
}

/// The per-channel statistics of `x` (`[n, c, s]` flattened): mean and biased variance (two
/// passes: the mean first, then the squared deviations from it).
pub(super) fn statistics(x: &[f32], [n, c, s]: [usize; 3]) -> Vec<(f64, f64)> {
    let count = (n * s) as f64;
    (0..c)
        .into_par_iter()
        .map(|ci| {
            let planes = || (0..n).map(move |b| &x[(b * c + ci) * s..][..s]);
            let sum: f64 = planes().map(|p| lane_sum([p], |[v]| v)).sum();
            let mean = sum / count;
            let m = mean as f32;
            let squares: f64 = planes()
                .map(|p| lane_sum([p], |[v]| (v - m) * (v - m)))
                .sum();
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
    let stats = statistics(x, shape);
    let mean: Vec<f32> = stats.iter().map(|&(m, _)| m as f32).collect();
    let variance: Vec<f32> = stats.iter().map(|&(_, v)| v as f32).collect();
    let scale = scales(gamma, &variance, epsilon);
    // The mean subtracted first, as burn does (x · a + b would cancel large terms when the mean
    // is large against the spread).
    let y = planes_into(x.len(), shape, |at, ci, out| {
        let (m, a, b) = (mean[ci], scale[ci], beta[ci]);
        let x = &x[at..at + out.len()];
        if relu {
            for (o, &x) in out.iter_mut().zip(x) {
                let v = (x - m) * a + b;
                o.write(if v > 0.0 { v } else { 0.0 });
            }
        } else {
            for (o, &x) in out.iter_mut().zip(x) {
                o.write((x - m) * a + b);
            }
        }
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
    let mask = |ci: usize| (scale[ci], relu_beta.map_or(0.0, |b| b[ci]));
    // Per channel: the sum of dy (beta's gradient) and of dy · x̂ (gamma's), dy masked by the
    // ReLU's where there is one.
    let sums: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ci| {
            let m = mean[ci];
            let (mut sum, mut dot) = (0f64, 0f64);
            for b in 0..n {
                let at = (b * c + ci) * s;
                let (g, v) = (&dy[at..][..s], &x[at..][..s]);
                let (plane_sum, plane_dot) = if relu_beta.is_some() {
                    gradient_sums::<true>(g, v, m, mask(ci))
                } else {
                    gradient_sums::<false>(g, v, m, mask(ci))
                };
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
        let (m, k, q, r) = (mean[ci], k[ci], q[ci], r[ci]);
        let (dy, x) = (&dy[at..at + out.len()], &x[at..at + out.len()]);
        if relu_beta.is_some() {
            let (a, b) = mask(ci);
            for ((o, &g), &x) in out.iter_mut().zip(dy).zip(x) {
                let d = x - m;
                let g = if d * a + b > 0.0 { g } else { 0.0 };
                o.write(g * k - d * q - r);
            }
        } else {
            for ((o, &g), &x) in out.iter_mut().zip(dy).zip(x) {
                o.write(g * k - (x - m) * q - r);
            }
        }
    });
    let gamma_grad = sums.iter().map(|&(_, d)| d as f32).collect();
    let beta_grad = sums.iter().map(|&(s, _)| s as f32).collect();
    (dx, gamma_grad, beta_grad)
}
