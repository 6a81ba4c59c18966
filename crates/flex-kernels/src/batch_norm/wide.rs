//! The AVX-512 forms of [`super::kernels`]' loops over a plane: the statistics' lane sums, the
//! normalized output, the two gradient sums and the input gradient, 16 f32 lanes per register.
//! The crate is compiled for any x86-64, where the portable loops run four lanes wide (SSE) at
//! best, and the sums, whose lanes the compiler keeps in an array, one element at a time; these
//! run where the CPU has AVX-512F.
//!
//! Each is the portable loop's arithmetic to the bit: the same operations in the same order for
//! each element (no fused multiply-adds), and each sum's lane `l` gathers the elements `l` modulo
//! 16, as the portable lanes do. The callers hand over whole vectors (a multiple of 16 elements)
//! and take the rest of a plane element by element.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
#[cfg(target_arch = "x86_64")]
use std::mem::MaybeUninit;

/// f32 lanes of a register, and of the portable sums.
pub(super) const LANES: usize = 16;

/// The 16 lanes of a vector as an array.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn lanes(v: __m512) -> [f32; LANES] {
    let mut out = [0f32; LANES];
    // SAFETY: `out` holds 16 floats.
    unsafe { _mm512_storeu_ps(out.as_mut_ptr(), v) };
    out
}

/// `sums[l]` = Σ `plane[i]` (`centre` none) or Σ `(plane[i] − m)²` (`centre` m) over the `i`
/// equal to `l` modulo 16.
///
/// # Safety
/// The CPU has AVX-512F; `plane.len()` is a multiple of 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn lane_sums(plane: &[f32], centre: Option<f32>) -> [f32; LANES] {
    let mut sum = _mm512_setzero_ps();
    let at = |i: usize| {
        // SAFETY: `i + 16 <= len` (the loops below, and the caller's contract).
        unsafe { _mm512_loadu_ps(plane.as_ptr().add(i)) }
    };
    match centre {
        None => {
            for i in (0..plane.len()).step_by(LANES) {
                sum = _mm512_add_ps(sum, at(i));
            }
        }
        Some(m) => {
            let m = _mm512_set1_ps(m);
            for i in (0..plane.len()).step_by(LANES) {
                let d = _mm512_sub_ps(at(i), m);
                sum = _mm512_add_ps(sum, _mm512_mul_ps(d, d));
            }
        }
    }
    lanes(sum)
}

/// `out[i] = (x[i] − m) · a + b`, plus `residual[i]` where there is one, then with `relu` 0
/// where that is not above 0.
///
/// # Safety
/// The CPU has AVX-512F; `out`, `x` and `residual` are as long, a multiple of 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn normalize(
    out: &mut [MaybeUninit<f32>],
    x: &[f32],
    (m, a, b): (f32, f32, f32),
    residual: Option<&[f32]>,
    relu: bool,
) {
    let (mv, av, bv, zero) = (
        _mm512_set1_ps(m),
        _mm512_set1_ps(a),
        _mm512_set1_ps(b),
        _mm512_setzero_ps(),
    );
    let to = out.as_mut_ptr().cast::<f32>();
    for i in (0..x.len()).step_by(LANES) {
        // SAFETY: `i + 16 <= len` for all (the caller's contract).
        let xv = unsafe { _mm512_loadu_ps(x.as_ptr().add(i)) };
        let v = _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(xv, mv), av), bv);
        let v = match residual {
            // SAFETY: as above.
            Some(r) => _mm512_add_ps(v, unsafe { _mm512_loadu_ps(r.as_ptr().add(i)) }),
            None => v,
        };
        let v = if relu {
            _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, zero), v)
        } else {
            v
        };
        // SAFETY: as above; `MaybeUninit<f32>` is laid out as `f32`.
        unsafe { _mm512_storeu_ps(to.add(i), v) };
    }
}

/// `dy[i]` with `mask` = (a, b): 0 where `(x[i] − m) · a + b` is not above 0 (the forward pass's
/// ReLU), as a vector; `d` = `x[i] − m`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn masked(g: __m512, d: __m512, mask: Option<(__m512, __m512)>) -> __m512 {
    match mask {
        Some((a, b)) => {
            let v = _mm512_add_ps(_mm512_mul_ps(d, a), b);
            _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, _mm512_setzero_ps()), g)
        }
        None => g,
    }
}

/// `(sums, dots)`: `sums[l]` = Σ g and `dots[l]` = Σ g · (x − m) over the `i` equal to `l`
/// modulo 16, `g` = `dy[i]` masked by the ReLU's `mask` where there is one.
///
/// # Safety
/// The CPU has AVX-512F; `dy` and `x` are as long, a multiple of 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn gradient_sums(
    dy: &[f32],
    x: &[f32],
    m: f32,
    mask: Option<(f32, f32)>,
) -> ([f32; LANES], [f32; LANES]) {
    let mv = _mm512_set1_ps(m);
    let mask = mask.map(|(a, b)| (_mm512_set1_ps(a), _mm512_set1_ps(b)));
    let (mut sums, mut dots) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    for i in (0..dy.len()).step_by(LANES) {
        // SAFETY: `i + 16 <= len` for both (the caller's contract).
        let (g, xv) = unsafe {
            (
                _mm512_loadu_ps(dy.as_ptr().add(i)),
                _mm512_loadu_ps(x.as_ptr().add(i)),
            )
        };
        let d = _mm512_sub_ps(xv, mv);
        let g = masked(g, d, mask);
        sums = _mm512_add_ps(sums, g);
        dots = _mm512_add_ps(dots, _mm512_mul_ps(g, d));
    }
    (lanes(sums), lanes(dots))
}

/// `out[i] = g · k − (x[i] − m) · q − r`, `g` = `dy[i]` masked by the ReLU's `mask` where there
/// is one.
///
/// # Safety
/// The CPU has AVX-512F; `out`, `dy` and `x` are as long, a multiple of 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn input_grad(
    out: &mut [MaybeUninit<f32>],
    dy: &[f32],
    x: &[f32],
    (m, k, q, r): (f32, f32, f32, f32),
    mask: Option<(f32, f32)>,
) {
    let (mv, kv, qv, rv) = (
        _mm512_set1_ps(m),
        _mm512_set1_ps(k),
        _mm512_set1_ps(q),
        _mm512_set1_ps(r),
    );
    let mask = mask.map(|(a, b)| (_mm512_set1_ps(a), _mm512_set1_ps(b)));
    let to = out.as_mut_ptr().cast::<f32>();
    for i in (0..x.len()).step_by(LANES) {
        // SAFETY: `i + 16 <= len` for all three (the caller's contract).
        let (g, xv) = unsafe {
            (
                _mm512_loadu_ps(dy.as_ptr().add(i)),
                _mm512_loadu_ps(x.as_ptr().add(i)),
            )
        };
        let d = _mm512_sub_ps(xv, mv);
        let g = masked(g, d, mask);
        let v = _mm512_sub_ps(
            _mm512_sub_ps(_mm512_mul_ps(g, kv), _mm512_mul_ps(d, qv)),
            rv,
        );
        // SAFETY: as above; `MaybeUninit<f32>` is laid out as `f32`.
        unsafe { _mm512_storeu_ps(to.add(i), v) };
    }
}
