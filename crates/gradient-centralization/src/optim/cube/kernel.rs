//! The GPU kernel: one launch per tensor does the whole seed optimizer step, GC's means included.
//!
//! Three layouts of GC's units (see `optim::units`): without GC one unit per element; with GC by
//! columns (burn's `Linear [in, out]`) one unit per column, walking its rows twice (neighbouring
//! units read neighbouring addresses); with GC by rows (convolutions) one cube per row, whose
//! units sum the row in shared memory and then update it. Each [`Plan`] compiles its own shader,
//! so the per-element code has no branch the plan decides.

use cubecl::prelude::*;

/// Which optimizer's arithmetic (see `optim::rule::Rule`).
#[derive(Debug, Hash, PartialEq, Eq, Clone, Copy)]
pub enum Kind {
    Sgd,
    Momentum,
    Adam,
    AdamWSeed,
    AdamWTorch,
    Adagrad,
}

/// Where GC's units lie (see `optim::units::Units`).
#[derive(Debug, Hash, PartialEq, Eq, Clone, Copy)]
pub enum Layout {
    /// No GC: one unit per element.
    Elements,
    /// GC over contiguous rows: one cube per row.
    Rows,
    /// GC over columns: one unit per column.
    Cols,
}

/// What the shader is compiled for.
#[derive(Debug, Hash, PartialEq, Eq, Clone, Copy)]
pub struct Plan {
    pub kind: Kind,
    pub layout: Layout,
    /// The states are zero: not read.
    pub first: bool,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// The rule's decay term is present (`decay != 0`).
    pub decays: bool,
    /// Coupled L2 is added to the gradient (`l2 != 0`).
    pub coupled: bool,
    /// Units per cube: a power of two for [`Layout::Rows`], 0 otherwise.
    pub threads: usize,
}

/// The step's scalars, each rounded to f32 as the tensor path rounds it; a rule reads those it
/// names (see `optim::rule::Rule`).
#[derive(CubeLaunch, CubeType)]
pub struct Scalars {
    pub l2: f32,
    pub lr: f32,
    pub decay: f32,
    pub beta1: f32,
    pub keep1: f32,
    pub beta2: f32,
    pub keep2: f32,
    pub root2: f32,
    pub eps: f32,
    pub init: f32,
}

/// One step of `n` elements: `w` and the states `s1`, `s2` (one-element placeholders where the
/// rule has fewer) in place, from the gradient `g`. `unit` is a row's length ([`Layout::Rows`]) or
/// the number of columns ([`Layout::Cols`]).
#[cube(launch)]
pub fn step(
    w: &mut [f32],
    g: &[f32],
    s1: &mut [f32],
    s2: &mut [f32],
    k: Scalars,
    n: usize,
    unit: usize,
    #[comptime] plan: Plan,
) {
    if comptime![plan.layout == Layout::Rows] {
        by_rows(w, g, s1, s2, &k, n, unit, plan);
    } else if comptime![plan.layout == Layout::Cols] {
        by_cols(w, g, s1, s2, &k, n, unit, plan);
    } else {
        let i = ABSOLUTE_POS;
        if i < n {
            let d = gradient(w, g, i, &k, plan);
            update(w, s1, s2, i, d, &k, plan);
        }
    }
}

/// GC by rows of `len`: this cube's row summed by its units in shared memory (a tree), then
/// updated.
#[cube]
fn by_rows(
    w: &mut [f32],
    g: &[f32],
    s1: &mut [f32],
    s2: &mut [f32],
    k: &Scalars,
    n: usize,
    len: usize,
    #[comptime] plan: Plan,
) {
    let row = (CUBE_POS_Y * CUBE_COUNT_X + CUBE_POS_X) as usize;
    let start = row * len;
    // Cubes past the last row (a grid rounded up) take part in no row but in every barrier.
    let mut span = len;
    if start >= n {
        span = 0;
    }
    let t = UNIT_POS as usize;
    let threads = CUBE_DIM as usize;
    let mut sums = Shared::<[f32]>::new_slice(comptime![plan.threads]);
    let mut sum = 0.0f32;
    for j in range_stepped(t, span, threads) {
        sum += gradient(w, g, start + j, k, plan);
    }
    sums[t] = sum;
    sync_cube();
    let mut half = threads / 2;
    while half > 0 {
        if t < half {
            let other = sums[t + half];
            sums[t] += other;
        }
        sync_cube();
        half /= 2;
    }
    let mean = sums[0] / f32::cast_from(len);
    for j in range_stepped(t, span, threads) {
        let i = start + j;
        let d = gradient(w, g, i, k, plan) - mean;
        update(w, s1, s2, i, d, k, plan);
    }
}

/// GC by columns: this unit's column summed down its rows, then updated.
#[cube]
fn by_cols(
    w: &mut [f32],
    g: &[f32],
    s1: &mut [f32],
    s2: &mut [f32],
    k: &Scalars,
    n: usize,
    units: usize,
    #[comptime] plan: Plan,
) {
    let c = ABSOLUTE_POS;
    if c < units {
        let rows = n / units;
        let mut sum = 0.0f32;
        for r in 0..rows {
            sum += gradient(w, g, r * units + c, k, plan);
        }
        let mean = sum / f32::cast_from(rows);
        for r in 0..rows {
            let i = r * units + c;
            let d = gradient(w, g, i, k, plan) - mean;
            update(w, s1, s2, i, d, k, plan);
        }
    }
}

/// `g + w·l2` at `i` (coupled L2 before GC, as the seed).
#[cube]
fn gradient(w: &mut [f32], g: &[f32], i: usize, k: &Scalars, #[comptime] plan: Plan) -> f32 {
    let mut d = g[i];
    if comptime![plan.coupled] {
        d += w[i] * k.l2;
    }
    d
}

/// The rule's update of element `i` from the centralized gradient `d`.
#[cube]
fn update(
    w: &mut [f32],
    s1: &mut [f32],
    s2: &mut [f32],
    i: usize,
    d: f32,
    k: &Scalars,
    #[comptime] plan: Plan,
) {
    let x = w[i];
    if comptime![plan.kind == Kind::Sgd] {
        w[i] = x - descent(x, d, k, plan);
    } else if comptime![plan.kind == Kind::Momentum] {
        // torch: the first buffer is the gradient itself, undamped.
        let mut b = d;
        if comptime![!plan.first] {
            b = s1[i] * k.beta1 + d * k.keep1;
        }
        s1[i] = b;
        let mut e = b;
        if comptime![plan.nesterov] {
            e = d + b * k.beta1;
        }
        w[i] = x - descent(x, e, k, plan);
    } else if comptime![plan.kind == Kind::Adagrad] {
        let mut s = d * d + k.init;
        if comptime![!plan.first] {
            s = s1[i] + d * d;
        }
        s1[i] = s;
        w[i] = x - (d / (s.sqrt() + k.eps)) * k.lr;
    } else {
        // The Adam family: zero moments on the first step give (1 − β)·g exactly.
        let mut m = d * k.keep1;
        let mut v = (d * d) * k.keep2;
        if comptime![!plan.first] {
            m = s1[i] * k.beta1 + d * k.keep1;
            v = s2[i] * k.beta2 + (d * d) * k.keep2;
        }
        s1[i] = m;
        s2[i] = v;
        if comptime![plan.kind == Kind::Adam] {
            w[i] = x - (m / (v.sqrt() / k.root2 + k.eps)) * k.lr;
        } else if comptime![plan.kind == Kind::AdamWSeed] {
            let mut direction = m / (v.sqrt() + k.eps);
            if comptime![plan.decays] {
                direction += x * k.decay;
            }
            w[i] = x - direction * k.lr;
        } else {
            let mut delta = (m / (v.sqrt() / k.root2 + k.eps)) * k.lr;
            if comptime![plan.decays] {
                delta += x * k.decay;
            }
            w[i] = x - delta;
        }
    }
}

/// SGD's `d·lr [+ w·decay]`.
#[cube]
fn descent(x: f32, d: f32, k: &Scalars, #[comptime] plan: Plan) -> f32 {
    let mut delta = d * k.lr;
    if comptime![plan.decays] {
        delta += x * k.decay;
    }
    delta
}
