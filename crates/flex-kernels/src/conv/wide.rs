//! The AVX-512 forms of [`super::direct`]'s two kernels: 16 f32 lanes per register and 32
//! registers, where the CPU has AVX-512F (`direct` picks them, unless [`super::direct::with_avx2`]
//! says otherwise). The blocks of positions are the AVX2 kernels' (16 positions each), so the
//! callers' layouts and bounds carry over: the forward kernel holds `MR` output channels (up to
//! 8) by one or two such blocks, one register per channel and block, and the weight gradient 16
//! output channels (one register) by up to 24 fan-in elements, whole kernel rows where it can.
//! With two blocks, a step of the forward kernel loads two input vectors and `MR` broadcast
//! weights for `2 · MR` fused multiply-adds (one block alone: one load per `MR` FMAs plus the
//! broadcasts, which left the loads, not the FMA units, setting the pace).

/// f32 lanes of an AVX-512 register: the 16 positions of a forward block, the 16 output
/// channels of a weight-gradient block.
pub(super) const LANES: usize = 16;

/// Output channels per block of the forward kernel (8 accumulators: two FMA ports of 4 cycles'
/// latency keep 8 independent sums busy).
pub(super) const MR: usize = 8;

/// Kernel rows per call of the weight-gradient kernel, `KW` columns each: `R · KW` sums (at
/// most 24, and at most 12 rows), `KW` vectors of `dy` and a broadcast fit the 32 registers.
pub(super) const fn rows_per_call(kw: usize) -> usize {
    let rows = 24 / kw;
    if rows > 12 { 12 } else { rows }
}

/// The forward kernel: for each of the `NB` vectors `j` at `(xd, od) = at[j]`, `out[od + r ·
/// stride + l]` for `r < M`, `l < 16` is the sum over `ci < cg` and the taps `t` of `w[(ci ·
/// taps + t) · M + r] · x[xd + ci · plane + offsets[t] + l']`, where `l' = l` (`SPLIT` false)
/// or, with `SPLIT`, `l` for `l < 8` and `xstep + l − 8` after (two 8-wide output rows a padded
/// row apart). With two vectors, a step loads two inputs and one broadcast weight per channel
/// for `2 · M` fused multiply-adds, so that the FMA units, not the loads, set the pace.
///
/// # Safety
/// The CPU has AVX-512F; `x` is readable at every such index, `w` has `cg · taps · M`
/// elements, `out` is writable at every such index.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn kernel<const M: usize, const NB: usize, const SPLIT: bool>(
    x: *const f32,
    plane: usize,
    offsets: &[usize],
    cg: usize,
    w: &[f32],
    out: *mut f32,
    stride: usize,
    xstep: usize,
    at: [(usize, usize); NB],
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); NB]; M];
    let mut weights = w.chunks_exact(M);
    for ci in 0..cg {
        // SAFETY (all pointer reads and writes below): the caller's contract.
        let channel = unsafe { x.add(ci * plane) };
        for &off in offsets {
            let xv: [__m512; NB] = std::array::from_fn(|j| {
                let src = unsafe { channel.add(at[j].0 + off) };
                if SPLIT {
                    let (lo, hi) =
                        unsafe { (_mm256_loadu_ps(src), _mm256_loadu_ps(src.add(xstep))) };
                    let both = _mm512_insertf64x4(
                        _mm512_castpd256_pd512(_mm256_castps_pd(lo)),
                        _mm256_castps_pd(hi),
                        1,
                    );
                    _mm512_castpd_ps(both)
                } else {
                    unsafe { _mm512_loadu_ps(src) }
                }
            });
            let wr = weights.next().expect("cg · taps blocks of weights");
            for r in 0..M {
                let wv = _mm512_set1_ps(wr[r]);
                for j in 0..NB {
                    acc[r][j] = _mm512_fmadd_ps(wv, xv[j], acc[r][j]);
                }
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            unsafe { _mm512_storeu_ps(out.add(at[j].1 + r * stride), *v) };
        }
    }
}

/// The weight-gradient kernel over `R` kernel rows of `KW` taps each (kernel columns one
/// position apart): for row `r` and column `kx`, the 16 sums over the images `i` and the
/// positions `(oy, ox)` of `dy[i · dy_len + (oy · ow + ox) · cols + (0..16)] · x[i · x_len +
/// reads[r] + oy · wp + ox + kx]`.
///
/// The kernel walks the input row, not the output row: at input column `j` it broadcasts
/// `x[.. + j]` once per kernel row and multiplies it into the `KW` sums whose tap reads it,
/// those of output columns `j − kx`. A step of `R` kernel rows costs `KW` loads of `dy` and
/// `R` broadcasts for `R · KW` fused multiply-adds (tap by tap it was 13 loads for 12), so
/// that the FMA units, not the loads, set the pace. The first and last `KW − 1` columns skip
/// the taps whose output column lies outside the row; each sum adds its products in the
/// order of the output columns, as a sum per tap does.
///
/// # Safety
/// The CPU has AVX-512F; `reads` has `R` elements; for each of the `count` images, `dy` is
/// readable at every such index and `x` at every such index.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn kernel_dw<const R: usize, const KW: usize>(
    dy: *const f32,
    x: *const f32,
    reads: &[usize],
    s: super::direct::Shape,
    count: usize,
) -> [[[f32; LANES]; KW]; R] {
    use std::arch::x86_64::*;
    let reads: [usize; R] = reads.try_into().expect("R reads");
    let mut acc = [[_mm512_setzero_ps(); KW]; R];
    for i in 0..count {
        for oy in 0..s.oh {
            // SAFETY (all pointer arithmetic and reads below): the caller's contract; input
            // column `j` is read for the output columns `j − kx` in `0..ow` only.
            let d = unsafe { dy.add(i * s.dy_len + oy * s.ow * s.cols) };
            let rows: [*const f32; R] =
                std::array::from_fn(|r| unsafe { x.add(i * s.x_len + reads[r] + oy * s.wp) });
            // Input column `j`, with the taps `kx` for which `$takes` holds.
            macro_rules! column {
                ($j:expr, $takes:expr) => {{
                    let j: usize = $j;
                    let takes: [bool; KW] = std::array::from_fn($takes);
                    let dv: [__m512; KW] = std::array::from_fn(|kx| {
                        if takes[kx] {
                            unsafe { _mm512_loadu_ps(d.add((j - kx) * s.cols)) }
                        } else {
                            _mm512_setzero_ps()
                        }
                    });
                    for r in 0..R {
                        let xv = _mm512_set1_ps(unsafe { *rows[r].add(j) });
                        for kx in 0..KW {
                            if takes[kx] {
                                acc[r][kx] = _mm512_fmadd_ps(dv[kx], xv, acc[r][kx]);
                            }
                        }
                    }
                }};
            }
            if s.ow >= KW - 1 {
                // The first and last `KW − 1` columns, whose taps the column's place alone
                // decides (constants once the short loops are unrolled), and every tap in the
                // columns between.
                for e in 0..KW - 1 {
                    column!(e, |kx| kx <= e);
                }
                for j in KW - 1..s.ow {
                    column!(j, |_| true);
                }
                for e in 0..KW - 1 {
                    column!(s.ow + e, |kx| kx > e);
                }
            } else {
                // A row narrower than the kernel: every column checks both ends.
                for j in 0..s.ow + KW - 1 {
                    column!(j, |kx| j >= kx && j - kx < s.ow);
                }
            }
        }
    }
    acc.map(|row| {
        row.map(|v| {
            let mut lanes = [0f32; LANES];
            // SAFETY: `lanes` holds 16 floats.
            unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), v) };
            lanes
        })
    })
}

/// `to[q · cols + o] = from[o · p + q]` for `o`, `q` < 16: a 16 x 16 block turned in registers
/// (16 loads, 64 shuffles, 16 stores, against 256 scalar stores 64 bytes or more apart).
///
/// # Safety
/// The CPU has AVX-512F; `from` is readable at `o · p + (0..16)` and `to` writable at `q · cols +
/// (0..16)` for `o`, `q` < 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn transpose(from: *const f32, p: usize, to: *mut f32, cols: usize) {
    use std::arch::x86_64::*;
    // SAFETY (the loads and stores): the caller's contract.
    let r: [__m512; 16] = std::array::from_fn(|o| unsafe { _mm512_loadu_ps(from.add(o * p)) });
    // Rows 2i and 2i + 1 interleaved: per 128-bit lane k, t[2i] holds their columns 4k and
    // 4k + 1, t[2i + 1] their columns 4k + 2 and 4k + 3.
    let t: [__m512d; 16] = std::array::from_fn(|i| {
        let (a, b) = (r[i & !1], r[i | 1]);
        _mm512_castps_pd(if i % 2 == 0 {
            _mm512_unpacklo_ps(a, b)
        } else {
            _mm512_unpackhi_ps(a, b)
        })
    });
    // u[4g + j], lane k: column 4k + j of rows 4g..4g + 4.
    let u: [__m512; 16] = std::array::from_fn(|i| {
        let (g, j) = (i / 4, i % 4);
        let (a, b) = (t[4 * g + j / 2], t[4 * g + 2 + j / 2]);
        _mm512_castpd_ps(if j % 2 == 0 {
            _mm512_unpacklo_pd(a, b)
        } else {
            _mm512_unpackhi_pd(a, b)
        })
    });
    for j in 0..4 {
        // Lanes 0, 1 of rows 0-3 and 4-7, of rows 8-11 and 12-15; then lanes 2, 3.
        let v0 = _mm512_shuffle_f32x4::<0x44>(u[j], u[4 + j]);
        let w0 = _mm512_shuffle_f32x4::<0x44>(u[8 + j], u[12 + j]);
        let v1 = _mm512_shuffle_f32x4::<0xEE>(u[j], u[4 + j]);
        let w1 = _mm512_shuffle_f32x4::<0xEE>(u[8 + j], u[12 + j]);
        // Column 4k + j: lane k of u[j], u[4 + j], u[8 + j], u[12 + j].
        let columns = [
            _mm512_shuffle_f32x4::<0x88>(v0, w0),
            _mm512_shuffle_f32x4::<0xDD>(v0, w0),
            _mm512_shuffle_f32x4::<0x88>(v1, w1),
            _mm512_shuffle_f32x4::<0xDD>(v1, w1),
        ];
        for (k, column) in columns.into_iter().enumerate() {
            unsafe { _mm512_storeu_ps(to.add((4 * k + j) * cols), column) };
        }
    }
}
