//! The fused kernels against the tensor definition, through the public optimizers, on the suite's
//! device: flex's CPU kernels by default, the GPU kernel with `GC_TEST_DEVICE=wgpu` (lavapipe in
//! `.ci/run`). Every seed optimizer and case, on odd shapes: rows that fill no cube evenly, rows
//! longer than a cube, columns, no GC, more rows than one grid axis holds.

use burn::optim::Optimizer;
use burn::tensor::{Tensor, TensorData};
use gradient_centralization::optim::diagnostics::{cube_steps, without_fused};
use gradient_centralization::optim::{
    Adagrad, AdagradConfig, AdamConfig, AdamWConfig, AdamWFormula, Gc, GcOptimizer, SgdConfig,
    SgdState, WeightDecay,
};
use gradient_centralization::{Centralize, Placement};

use super::device;

/// Steps this thread took through either backend's kernels.
pub fn kernel_steps() -> usize {
    cube_steps() + gradient_centralization::optim::diagnostics::fused_steps()
}

/// Values in [-scale, scale) from a local xorshift generator (reproducible on every backend).
fn values<const D: usize>(shape: [usize; D], seed: u64, scale: f32) -> Tensor<D> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let data: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect();
    Tensor::from_data(TensorData::new(data, shape), &device())
}

/// Three steps (first and later: the states start at zero) of `optimizer` on `shape`, through
/// the kernels or not; the final weight, and how many steps took the kernels.
fn run<O: Optimizer, const D: usize>(
    optimizer: &O,
    shape: [usize; D],
    fused: bool,
) -> (Vec<f32>, usize) {
    let mut w = values(shape, 7, 1.0);
    let mut state = None;
    let before = kernel_steps();
    for t in 0..3 {
        let g = values(shape, 100 + t, 0.1);
        let lr = 0.1 / (t + 1) as f64;
        let step = || optimizer.step(lr, w.clone(), g, state.take());
        (w, state) = if fused { step() } else { without_fused(step) };
    }
    let taken = kernel_steps() - before;
    (w.into_data().try_to_vec::<f32>().unwrap(), taken)
}

/// Shapes and GC operations every optimizer is checked on.
fn cases() -> Vec<(&'static str, Gc, Vec<usize>)> {
    let rows = Gc::new(Centralize::along(0), Placement::Gradient);
    let cols = Gc::new(Centralize::along(1), Placement::Gradient);
    vec![
        // A 3x3 convolution: rows of 27, shorter than a cube.
        ("conv", rows, vec![5, 3, 3, 3]),
        // Rows of 37: no power of two; rows of 300: longer than a cube of 256.
        ("rows of 37", rows, vec![3, 37, 1, 1]),
        ("rows of 300", rows, vec![2, 3, 10, 10]),
        // burn's Linear [in, out]: GC down each of 11 columns of 7.
        ("linear", cols, vec![7, 11, 1, 1]),
        // A bias (no GC), longer than one cube.
        ("bias", Gc::NONE, vec![1000, 1, 1, 1]),
    ]
}

/// `optimizer` with each case's GC, through the kernels and without, to rounding.
fn compare<O: GcOptimizer>(name: &str, optimizer: O) {
    for (case, gc, shape) in cases() {
        let o = optimizer.with_gc(gc);
        let shape: [usize; 4] = shape.try_into().unwrap();
        let (fused, taken) = run(&o, shape, true);
        let (plain, none) = run(&o, shape, false);
        assert_eq!(
            none, 0,
            "{name} {case}: steps through the kernels when they are off"
        );
        assert_eq!(taken, 3, "{name} {case}: steps through the kernels");
        let scale = plain.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = fused
            .iter()
            .zip(&plain)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        // GC's mean is summed in another order: a few ulps of the weights' scale.
        assert!(err <= 1e-5 * scale, "{name} {case}: {err} (scale {scale})");
    }
}

#[test]
fn sgd_in_every_case_matches_the_tensor_path() {
    compare("sgd", SgdConfig::new().build().unwrap());
    compare(
        "sgd decoupled",
        SgdConfig::new()
            .with_weight_decay(WeightDecay::Decoupled(0.05))
            .build()
            .unwrap(),
    );
    compare(
        "sgd momentum L2",
        SgdConfig::new()
            .with_momentum(0.9)
            .with_dampening(0.1)
            .with_weight_decay(WeightDecay::L2(0.05))
            .build()
            .unwrap(),
    );
    compare(
        "sgd nesterov decoupled",
        SgdConfig::new()
            .with_momentum(0.9)
            .with_nesterov(true)
            .with_weight_decay(WeightDecay::Decoupled(0.05))
            .build()
            .unwrap(),
    );
}

#[test]
fn adam_and_both_adamw_formulas_match_the_tensor_path() {
    compare("adam", AdamConfig::new().build().unwrap());
    compare(
        "adam L2",
        AdamConfig::new()
            .with_betas(0.8, 0.99)
            .with_weight_decay(0.05)
            .build()
            .unwrap(),
    );
    compare("adamw seed", AdamWConfig::new().build().unwrap());
    compare(
        "adamw seed decay",
        AdamWConfig::new().with_weight_decay(0.05).build().unwrap(),
    );
    compare("adamw torch", AdamWConfig::torch().build().unwrap());
    assert_eq!(AdamWConfig::torch().formula(), AdamWFormula::Torch);
}

#[test]
fn adagrad_matches_the_tensor_path() {
    let adagrad: Adagrad = AdagradConfig::new()
        .with_lr_decay(0.1)
        .with_weight_decay(0.05)
        .with_initial_accumulator_value(0.2)
        .build()
        .unwrap();
    compare("adagrad", adagrad);
}

#[test]
fn a_weight_held_elsewhere_is_copied_not_overwritten() {
    let sgd = SgdConfig::new()
        .with_momentum(0.9)
        .build()
        .unwrap()
        .with_gc(Gc::new(Centralize::along(0), Placement::Gradient));
    let w = values([4, 3, 3, 3], 1, 1.0);
    let kept = w.clone();
    let before = kernel_steps();
    let (stepped, state) = sgd.step(0.1, w, values([4, 3, 3, 3], 2, 0.1), None);
    let momentum = state.unwrap().momentum;
    // The momentum buffer is held by the next step's caller too.
    let held = momentum.clone();
    let next = Some(SgdState { momentum });
    let (_, _) = sgd.step(0.1, stepped, values([4, 3, 3, 3], 3, 0.1), next);
    assert_eq!(kernel_steps() - before, 2, "steps through the kernels");
    assert_eq!(
        kept.into_data(),
        values([4, 3, 3, 3], 1, 1.0).into_data(),
        "the caller's copy of the weight"
    );
    let (_, first) = without_fused(|| {
        sgd.step(
            0.1,
            values([4, 3, 3, 3], 1, 1.0),
            values([4, 3, 3, 3], 2, 0.1),
            None,
        )
    });
    held.into_data().assert_approx_eq::<f32>(
        &first.unwrap().momentum.into_data(),
        burn::tensor::Tolerance::absolute(1e-6),
    );
}

#[test]
fn more_rows_than_one_grid_axis_holds_are_all_stepped() {
    // 70 000 rows of one element: the GPU grid spans two axes (65 535 cubes at most on one). GC
    // of a row of one is zero, so each weight moves by the decoupled decay alone, once.
    let rows = 70_000;
    let sgd = SgdConfig::new()
        .with_weight_decay(WeightDecay::Decoupled(0.5))
        .build()
        .unwrap()
        .with_gc(Gc::new(Centralize::along(0), Placement::Gradient));
    let w = Tensor::<4>::ones([rows, 1, 1, 1], &device());
    let g = values([rows, 1, 1, 1], 5, 0.1);
    let before = kernel_steps();
    let (w, _) = sgd.step(0.1, w, g, None);
    assert_eq!(kernel_steps() - before, 1, "steps through the kernels");
    let w = w.into_data().try_to_vec::<f32>().unwrap();
    // w − (0·lr + w·lr·λ) = 1 − 0.05 for every row.
    let expected = 1.0 - (0.5f64 * 0.1) as f32;
    assert!(w.iter().all(|&x| x == expected), "every row stepped once");
}
