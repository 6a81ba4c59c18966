//! The fused pass itself: tasks of whole rows over the thread pool, each computing its rows'
//! means and updating them while they are in cache, compiled for the baseline instruction set and
//! for AVX2 (picked at run time; both give the same bits).

use std::cell::Cell;

use rayon::prelude::*;

use super::diagnostics::WIDE;
use super::layout::{Strided, TILE_PAD};
use crate::optim::units::Units;

thread_local! {
    /// The tile a task gathers a strided gradient's rows into, kept for the thread's next task
    /// (it only grows: at most a task's rows of the largest strided gradient, ~0.5 MiB for
    /// ResNet-50).
    static TILE: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Elements per parallel task: big enough to amortize scheduling, small enough that a task's rows
/// stay in cache between computing their means and updating them. (Whole rows per task: a task
/// holds more when a row is longer, or when a strided gradient needs more rows per read.)
const CHUNK: usize = 1 << 14;

/// Blocks of rows whose column sums are taken in parallel, for GC by columns.
const COLUMN_BLOCKS: usize = 16;

/// A raw pointer that tasks share; each task touches only its own disjoint range.
#[derive(Clone, Copy)]
pub(super) struct Shared(*mut f32);
// SAFETY: a `Shared` only carries the address to another thread; every task that turns it into a
// slice takes its own range, disjoint from every other task's.
unsafe impl Send for Shared {}
// SAFETY: tasks share the address, never the elements: each writes only through the slice of its
// own range (see `kernel`).
unsafe impl Sync for Shared {}

impl Shared {
    /// The pointer (a method, so that closures capture the whole `Shared`, not its field).
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// Where the kernel reads the gradient.
pub(super) enum Grad<'a> {
    /// Dense, in the weight's order.
    Dense(&'a [f32]),
    /// Rows of the logical layout read through strides from the whole buffer.
    Strided(&'a [f32], Strided),
}

/// The fused pass: `d = g + l2·w − c(unit)`, `(w, s) ← update(w, d, s)`, on all cores.
///
/// `center` is false only for rows that are read through strides without being centralized.
pub(super) fn kernel<const N: usize>(
    w: &mut [f32],
    grad: &Grad,
    states: [&mut [f32]; N],
    units: Units,
    center: bool,
    l2: f32,
    update: &(impl Fn(f32, f32, [f32; N]) -> (f32, [f32; N]) + Sync),
) {
    let n = w.len();
    assert!(states.iter().all(|s| s.len() == n));
    let means = match (units, grad) {
        (Units::Cols { units }, Grad::Dense(g)) => column_means(w, g, units, l2),
        (Units::Cols { .. }, Grad::Strided(..)) => unreachable!("strided gradients come as rows"),
        _ => Vec::new(),
    };
    let chunk = match units {
        // Whole rows per task, so a row's mean and its update happen in one task; for a strided
        // gradient, enough rows that each piece a task reads is long (see `Strided::rows`).
        Units::Rows { len } if len > 0 => {
            let rows = match grad {
                // Not so many that fewer than four tasks per core remain.
                Grad::Strided(_, view) => view
                    .rows()
                    .min((n / len).div_ceil(4 * rayon::current_num_threads())),
                Grad::Dense(_) => 1,
            };
            len * (CHUNK / len).max(rows)
        }
        // Whole rows of units per task, so no element needs a division to find its unit.
        Units::Cols { units } if units > 0 => units * (CHUNK / units).max(1),
        _ => CHUNK,
    };
    #[cfg(target_arch = "x86_64")]
    let avx2 = WIDE.with(Cell::get) && std::is_x86_feature_detected!("avx2");
    let pitch = match (units, grad) {
        (Units::Rows { len }, Grad::Strided(..)) => len + TILE_PAD,
        (Units::Rows { len }, Grad::Dense(_)) => len,
        _ => 0,
    };
    let pass = Pass {
        units,
        center,
        pitch,
        means: &means,
        l2,
        update,
    };
    let wp = Shared(w.as_mut_ptr());
    let sp: [Shared; N] = states.map(|s| Shared(s.as_mut_ptr()));
    (0..n.div_ceil(chunk)).into_par_iter().for_each(|k| {
        let start = k * chunk;
        let len = chunk.min(n - start);
        // SAFETY: [start, start + len) is this task's own range of buffers of length n; the
        // weight and state buffers are distinct allocations (each uniquely owned).
        let w = unsafe { std::slice::from_raw_parts_mut(wp.at(start), len) };
        let mut s: [&mut [f32]; N] =
            sp.map(|p| unsafe { std::slice::from_raw_parts_mut(p.at(start), len) });
        let mut tile = TILE.take();
        let g = match grad {
            Grad::Dense(g) => &g[start..start + len],
            Grad::Strided(data, view) => {
                let Units::Rows { len: row } = units else {
                    unreachable!("strided gradients come as rows")
                };
                view.gather(data, start / row, len / row, (row, pitch), &mut tile);
                &tile[..len / row * pitch]
            }
        };
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: the CPU has AVX2 (detected above).
            unsafe { task_avx2(w, g, &mut s, &pass) };
            TILE.set(tile);
            return;
        }
        task(w, g, &mut s, &pass);
        TILE.set(tile);
    });
}

/// What every task of one fused pass shares.
struct Pass<'a, U> {
    units: Units,
    /// False only for rows read through strides without being centralized.
    center: bool,
    /// For `Units::Rows`: how far apart the gradient's rows lie in a task's slice (the row length
    /// when dense, a little more in the tile of a strided gradient).
    pitch: usize,
    /// GC's mean per column for `Units::Cols`, else empty.
    means: &'a [f32],
    l2: f32,
    update: &'a U,
}

/// [`task`] compiled for AVX2 (eight f32 lanes per instruction instead of SSE2's four). The
/// arithmetic is the same, element by element and lane by lane: no fused multiply-adds, which
/// Rust never forms on its own.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn task_avx2<const N: usize, U: Fn(f32, f32, [f32; N]) -> (f32, [f32; N])>(
    w: &mut [f32],
    g: &[f32],
    s: &mut [&mut [f32]; N],
    pass: &Pass<U>,
) {
    task(w, g, s, pass);
}

/// One task's range: whole rows (`Rows`), whole rows of units (`Cols`) or any range (`None`).
#[inline(always)]
fn task<const N: usize, U: Fn(f32, f32, [f32; N]) -> (f32, [f32; N])>(
    w: &mut [f32],
    g: &[f32],
    s: &mut [&mut [f32]; N],
    pass: &Pass<U>,
) {
    let Pass {
        units,
        center,
        pitch,
        means,
        l2,
        update,
    } = *pass;
    match units {
        Units::None => apply(w, g, s, l2, |_| 0.0, update),
        Units::Rows { len: row } => {
            for r in 0..w.len() / row {
                let span = r * row..(r + 1) * row;
                let g = &g[r * pitch..r * pitch + row];
                let mut rs: [&mut [f32]; N] = s.each_mut().map(|s| &mut s[span.clone()]);
                let c = if center {
                    row_mean(&w[span.clone()], g, l2, &rs)
                } else {
                    0.0
                };
                apply(&mut w[span], g, &mut rs, l2, |_| c, update);
            }
        }
        Units::Cols { units } => {
            let means = &means[..units];
            for r in 0..w.len() / units {
                let span = r * units..(r + 1) * units;
                let mut rs: [&mut [f32]; N] = s.each_mut().map(|s| &mut s[span.clone()]);
                apply(
                    &mut w[span.clone()],
                    &g[span],
                    &mut rs,
                    l2,
                    |i| means[i],
                    update,
                );
            }
        }
    }
}

#[inline(always)]
fn apply<const N: usize>(
    w: &mut [f32],
    g: &[f32],
    s: &mut [&mut [f32]; N],
    l2: f32,
    mean: impl Fn(usize) -> f32,
    update: &impl Fn(f32, f32, [f32; N]) -> (f32, [f32; N]),
) {
    // Equal lengths up front, so that the loop carries no bounds checks.
    let len = w.len();
    let g = &g[..len];
    let s: [&mut [f32]; N] = s.each_mut().map(|s| &mut s[..len]);
    for i in 0..len {
        let d = (g[i] + w[i] * l2) - mean(i);
        let (nw, ns) = update(w[i], d, std::array::from_fn(|j| s[j][i]));
        w[i] = nw;
        for j in 0..N {
            s[j][i] = ns[j];
        }
    }
}

/// Mean of `g + l2·w` over a row, in four independent sets of eight f32 lanes: the additions
/// of one set wait on each other (3-4 cycles apiece), four sets keep the adder busy, so that the
/// sweep runs at the speed of its loads rather than at the latency of one chain of additions.
///
/// On the way it asks for the row's `states` to be brought into the core's L2 cache: the update
/// sweep that follows then finds every buffer it reads in cache, and the state's memory traffic
/// overlaps the mean's instead of following it. L2, not L1: a row of 4608 elements of weight,
/// gradient and two states fills 72 KiB, twice an L1 data cache (docs/PERFORMANCE-LOG.md has the
/// measurements).
#[inline(always)]
fn row_mean<const N: usize>(w: &[f32], g: &[f32], l2: f32, states: &[&mut [f32]; N]) -> f32 {
    const LANES: usize = 32;
    let len = w.len();
    let (g, states) = (&g[..len], states.each_ref().map(|s| &s[..len]));
    let mut lanes = [0f32; LANES];
    let whole = len / LANES * LANES;
    for k in (0..whole).step_by(LANES) {
        // Two cache lines of 64 bytes per state.
        for s in states {
            prefetch(&s[k], Cache::L2);
            prefetch(&s[k + LANES / 2], Cache::L2);
        }
        let (w, g) = (&w[k..k + LANES], &g[k..k + LANES]);
        for l in 0..LANES {
            lanes[l] += g[l] + w[l] * l2;
        }
    }
    // The lanes in a fixed order: pairwise down to eight, then one by one.
    for half in [16, 8] {
        for l in 0..half {
            lanes[l] += lanes[l + half];
        }
    }
    let mut sum = lanes[..8].iter().sum::<f32>();
    for (w, g) in w[whole..].iter().zip(&g[whole..]) {
        sum += g + w * l2;
    }
    sum / len as f32
}

/// The cache level a prefetch hint asks for.
#[derive(Clone, Copy)]
pub(super) enum Cache {
    L1,
    L2,
}

/// A hint to bring the cache line holding `x` into `level` (a no-op off x86-64).
#[inline(always)]
pub(super) fn prefetch(x: &f32, level: Cache) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch only hints the cache; `x` is a valid reference anyway.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _MM_HINT_T1, _mm_prefetch};
        let p = std::ptr::from_ref(x).cast();
        match level {
            Cache::L1 => _mm_prefetch::<_MM_HINT_T0>(p),
            Cache::L2 => _mm_prefetch::<_MM_HINT_T1>(p),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (x, level);
}

/// Means of `g + l2·w` per column of an `[n / units, units]` buffer, summed in f64.
fn column_means(w: &[f32], g: &[f32], units: usize, l2: f32) -> Vec<f32> {
    let rows = w.len() / units;
    // A fixed number of blocks, whatever the machine: few partial sums to add up at the end (a
    // sequential pass over blocks x units), and the same sums on every machine.
    let block = rows.div_ceil(COLUMN_BLOCKS).max(1);
    #[cfg(target_arch = "x86_64")]
    let avx2 = WIDE.with(Cell::get) && std::is_x86_feature_detected!("avx2");
    // Partial sums per block of rows, then added in block order: the same sums on every run,
    // however the blocks were spread over the threads.
    let partial: Vec<Vec<f64>> = (0..rows.div_ceil(block))
        .into_par_iter()
        .map(|b| {
            let mut sums = vec![0f64; units];
            let span = b * block * units..((b + 1) * block).min(rows) * units;
            let (w, g) = (&w[span.clone()], &g[span]);
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: the CPU has AVX2 (detected above).
                unsafe { add_rows_avx2(&mut sums, w, g, l2) };
                return sums;
            }
            add_rows(&mut sums, w, g, l2);
            sums
        })
        .collect();
    let mut sums = vec![0f64; units];
    for p in partial {
        sums.iter_mut().zip(p).for_each(|(s, p)| *s += p);
    }
    sums.into_iter().map(|s| (s / rows as f64) as f32).collect()
}

/// [`add_rows`] compiled for AVX2.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn add_rows_avx2(sums: &mut [f64], w: &[f32], g: &[f32], l2: f32) {
    add_rows(sums, w, g, l2);
}

/// Adds `g + l2·w` of each row of `[.., sums.len()]` buffers to `sums`, in f64.
#[inline(always)]
fn add_rows(sums: &mut [f64], w: &[f32], g: &[f32], l2: f32) {
    let units = sums.len();
    for (w, g) in w.chunks_exact(units).zip(g.chunks_exact(units)) {
        for ((s, &w), &g) in sums.iter_mut().zip(w).zip(g) {
            *s += f64::from(g + w * l2);
        }
    }
}
