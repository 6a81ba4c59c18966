//! Properties that follow from the math (SPEC "Properties worth testing"), on random tensors.

use burn::optim::Optimizer;
use burn::tensor::{Device, Tensor, TensorData};
use gradient_centralization::optim::{
    AdagradConfig, AdamConfig, AdamWConfig, Gc, GcOptimizer, SgdConfig, WeightDecay,
};
use gradient_centralization::{Centralize, Placement};
use proptest::prelude::*;

fn device() -> Device {
    crate::device()
}

/// A shape of rank 2-4 with small dims, an axis in it, and values.
fn tensor_case() -> impl Strategy<Value = (Vec<usize>, usize, Vec<f32>)> {
    prop::collection::vec(1usize..5, 2..=4)
        .prop_flat_map(|shape| {
            let n: usize = shape.iter().product();
            let rank = shape.len();
            (
                Just(shape),
                0..rank,
                prop::collection::vec(-100.0f32..100.0, n),
            )
        })
        .prop_filter("fan-in above 1", |(shape, axis, _)| {
            Centralize::along(*axis).fan_in(shape) > 1
        })
}

fn tensor4(shape: &[usize], values: &[f32]) -> Tensor<4> {
    // Pad the shape to rank 4 with leading ones; the axis shifts accordingly.
    let mut padded = vec![1; 4 - shape.len()];
    padded.extend_from_slice(shape);
    Tensor::from_data(TensorData::new(values.to_vec(), padded), &device())
}

fn to_vec(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_to_vec().unwrap()
}

/// Mean over each output unit's fan-in, computed independently of the library (f64, by index).
fn unit_means(shape: &[usize], axis: usize, values: &[f32]) -> Vec<f64> {
    let units = shape[axis];
    let trail: usize = shape[axis + 1..].iter().product();
    let mut sums = vec![0.0f64; units];
    let mut counts = vec![0usize; units];
    for (i, &v) in values.iter().enumerate() {
        let unit = (i / trail) % units;
        sums[unit] += v as f64;
        counts[unit] += 1;
    }
    sums.iter().zip(counts).map(|(s, c)| s / c as f64).collect()
}

fn norm(values: &[f32]) -> f64 {
    values
        .iter()
        .map(|&v| (v as f64).powi(2))
        .sum::<f64>()
        .sqrt()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_unit_has_zero_mean((shape, axis, values) in tensor_case()) {
        let op = Centralize::along(axis + 4 - shape.len());
        let out = to_vec(op.apply(tensor4(&shape, &values)));
        for mean in unit_means(&shape, axis, &out) {
            prop_assert!(mean.abs() < 1e-4, "mean {mean}");
        }
    }

    #[test]
    fn gc_is_idempotent((shape, axis, values) in tensor_case()) {
        let op = Centralize::along(axis + 4 - shape.len());
        let once = op.apply(tensor4(&shape, &values));
        let twice = to_vec(op.apply(once.clone()));
        for (a, b) in to_vec(once).iter().zip(&twice) {
            prop_assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn gc_is_linear((shape, axis, values) in tensor_case(), a in -3.0f32..3.0, b in -3.0f32..3.0) {
        let op = Centralize::along(axis + 4 - shape.len());
        let g = tensor4(&shape, &values);
        let h = g.clone().flip([3]).mul_scalar(0.5).add_scalar(1.0);
        let left = to_vec(op.apply(g.clone().mul_scalar(a) + h.clone().mul_scalar(b)));
        let right = to_vec(op.apply(g).mul_scalar(a) + op.apply(h).mul_scalar(b));
        for (l, r) in left.iter().zip(&right) {
            prop_assert!((l - r).abs() < 1e-3, "{l} vs {r}");
        }
    }

    #[test]
    fn norm_never_grows((shape, axis, values) in tensor_case()) {
        let op = Centralize::along(axis + 4 - shape.len());
        let out = to_vec(op.apply(tensor4(&shape, &values)));
        prop_assert!(norm(&out) <= norm(&values) * (1.0 + 1e-6) + 1e-6);
    }
}

/// Random gradients from a 64-bit LCG (deterministic per seed).
pub(crate) fn gradient(seed: u64, shape: [usize; 4], scale: f32) -> Tensor<4> {
    let n: usize = shape.iter().product();
    let mut state = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let values: Vec<f32> = (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0) * scale
        })
        .collect();
    Tensor::from_data(TensorData::new(values, shape), &device())
}

pub(crate) const SHAPE: [usize; 4] = [6, 3, 3, 3];

/// The largest change of any output unit's weight mean over 200 random steps.
pub(crate) fn mean_drift<O: Optimizer>(optimizer: O, lr: f64) -> f32 {
    let mut w = gradient(999, SHAPE, 0.5);
    let before = w.clone().reshape([6, 27]).mean_dim(1);
    let mut state = None;
    for step in 0..200 {
        let (next, next_state) = optimizer.step(lr, w, gradient(step, SHAPE, 1.0), state);
        w = next;
        state = next_state;
    }
    let after = w.reshape([6, 27]).mean_dim(1);
    (after - before).abs().max().into_scalar::<f32>()
}

fn on_gradient() -> Gc {
    Gc::new(Centralize::along(0), Placement::Gradient)
}

fn on_update() -> Gc {
    Gc::new(Centralize::along(0), Placement::Update)
}

/// SGD_GC(C) with coupled L2 and momentum, and every GC2 variant, keep each centralized unit's weight
/// mean fixed (exactly in real arithmetic; here to f32 rounding over 200 steps).
#[test]
fn weight_means_are_invariant_under_sgd_gc_and_the_gc2_variants() {
    let sgd = SgdConfig::new()
        .with_momentum(0.9)
        .with_weight_decay(WeightDecay::L2(5e-4));
    let nesterov = sgd.with_nesterov(true);
    let drifts = [
        (
            "sgd_gc",
            mean_drift(sgd.build().unwrap().with_gc(on_gradient()), 0.1),
        ),
        (
            "sgd_gc nesterov",
            mean_drift(nesterov.build().unwrap().with_gc(on_gradient()), 0.1),
        ),
        (
            "adam_gc2",
            mean_drift(
                AdamConfig::new()
                    .with_weight_decay(5e-4)
                    .build()
                    .unwrap()
                    .with_gc(on_update()),
                0.01,
            ),
        ),
        (
            "adamw_gc2",
            mean_drift(
                AdamWConfig::new()
                    .with_weight_decay(5e-2)
                    .build()
                    .unwrap()
                    .with_gc(on_update()),
                0.01,
            ),
        ),
        (
            "adagrad_gc2",
            mean_drift(
                AdagradConfig::new()
                    .with_weight_decay(5e-4)
                    .build()
                    .unwrap()
                    .with_gc(on_update()),
                0.1,
            ),
        ),
        (
            "sgdw_gc2",
            mean_drift(
                SgdConfig::new()
                    .with_momentum(0.9)
                    .with_weight_decay(WeightDecay::Decoupled(5e-2))
                    .build()
                    .unwrap()
                    .with_gc(on_update()),
                0.1,
            ),
        ),
    ];
    for (name, drift) in drifts {
        assert!(drift < 2e-5, "{name}: weight mean drifted by {drift}");
    }
}

/// Where the invariant does NOT hold: Adam/Adagrad divide elementwise after GC, SGDW/AdamW decay
/// the weights outside GC. The drift is far above rounding.
#[test]
fn weight_means_drift_under_adam_gc_adagrad_gc_and_decoupled_decay() {
    let drifts = [
        (
            "adam_gc",
            mean_drift(
                AdamConfig::new().build().unwrap().with_gc(on_gradient()),
                0.01,
            ),
        ),
        (
            "adamw_gc",
            mean_drift(
                AdamWConfig::new()
                    .with_weight_decay(5e-2)
                    .build()
                    .unwrap()
                    .with_gc(on_gradient()),
                0.01,
            ),
        ),
        (
            "adagrad_gc",
            mean_drift(
                AdagradConfig::new().build().unwrap().with_gc(on_gradient()),
                0.1,
            ),
        ),
        (
            "sgdw_gc",
            mean_drift(
                SgdConfig::new()
                    .with_momentum(0.9)
                    .with_weight_decay(WeightDecay::Decoupled(5e-2))
                    .build()
                    .unwrap()
                    .with_gc(on_gradient()),
                0.1,
            ),
        ),
    ];
    for (name, drift) in drifts {
        assert!(drift > 1e-3, "{name}: weight mean drifted by only {drift}");
    }
}

/// Zero, tiny and huge gradients leave every optimizer's weights finite.
#[test]
fn weights_stay_finite_on_zero_tiny_and_huge_gradients() {
    for scale in [0.0f32, 1e-30, 1e30] {
        let check = |name: &str, drift_input: Tensor<4>| {
            let finite = drift_input.is_finite().all().into_scalar::<bool>();
            assert!(finite, "{name} at gradient scale {scale:e}");
        };
        let run = |optimizer: &dyn Fn(Tensor<4>, Tensor<4>, u64) -> Tensor<4>| {
            let mut w = gradient(5, SHAPE, 0.5);
            for step in 0..5 {
                w = optimizer(w, gradient(step, SHAPE, scale), step);
            }
            w
        };
        macro_rules! finite {
            ($name:expr, $optimizer:expr, $lr:expr) => {{
                let optimizer = $optimizer;
                let state = std::cell::RefCell::new(None);
                let w = run(&|w, g, _| {
                    let (w, s) = optimizer.step($lr, w, g, state.borrow_mut().take());
                    *state.borrow_mut() = s;
                    w
                });
                check($name, w);
            }};
        }
        for gc in [on_gradient(), on_update()] {
            finite!(
                "sgd",
                SgdConfig::new()
                    .with_momentum(0.9)
                    .with_weight_decay(WeightDecay::L2(5e-4))
                    .build()
                    .unwrap()
                    .with_gc(gc),
                1e-3
            );
            finite!(
                "adam",
                AdamConfig::new()
                    .with_amsgrad(true)
                    .build()
                    .unwrap()
                    .with_gc(gc),
                1e-3
            );
            finite!(
                "adamw",
                AdamWConfig::torch().build().unwrap().with_gc(gc),
                1e-3
            );
            finite!(
                "adamw seed",
                AdamWConfig::new().build().unwrap().with_gc(gc),
                1e-3
            );
            finite!(
                "adagrad",
                AdagradConfig::new().build().unwrap().with_gc(gc),
                1e-3
            );
        }
    }
}

/// Adam's second moment of a gradient of about 1e30 is (1−β2)·g² ≈ 1e57: beyond f32's 3.4e38, so
/// v = ∞ and the step m̂/(√v̂ + ε) is exactly 0, which is what torch.optim.Adam computes on a
/// float32 parameter (same expressions, IEEE arithmetic): the weights stay where they are. In f64
/// nothing overflows and the first step moves every weight by lr·ĝ/(|ĝ| + ε) ≈ lr against the sign
/// of its gradient (|g| ≫ ε). Both the fused kernels (flex, f32) and the tensor path.
#[test]
fn adam_g_squared_beyond_f32_gives_a_zero_step_and_f64_a_full_one() {
    let lr = 1e-3;
    let w0 = gradient(5, SHAPE, 0.5);
    let g = gradient(1, SHAPE, 1e30);
    let magnitude = g.clone().abs().min().into_scalar::<f32>();
    assert!(
        magnitude > 1e25,
        "every |g| far above sqrt(f32::MAX) ({magnitude:e})"
    );
    for gc in [Gc::NONE, on_gradient()] {
        let adam = AdamConfig::new().build().unwrap().with_gc(gc);
        let step = || adam.step(lr, w0.clone(), g.clone(), None).0;
        let mut results = vec![("default path", step())];
        #[cfg(feature = "fused")]
        results.push((
            "tensor path",
            gradient_centralization::optim::diagnostics::without_fused(step),
        ));
        let before: Vec<f32> = w0.clone().into_data().try_to_vec().unwrap();
        for (path, w) in results {
            let after: Vec<f32> = w.into_data().try_to_vec().unwrap();
            assert!(
                before
                    .iter()
                    .zip(&after)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{path}, {gc:?}: f32 Adam moved the weights on an overflowing g²"
            );
        }
    }
    // f64: the full step, with its sign.
    let adam = AdamConfig::new().build().unwrap();
    let (w64, g64) = (
        w0.clone().cast(burn::tensor::FloatDType::F64),
        g.clone().cast(burn::tensor::FloatDType::F64),
    );
    let (w, _) = adam.step(lr, w64.clone(), g64.clone(), None);
    let moved = (w64 - w) * g64.sign();
    let (low, high) = (
        moved.clone().min().into_scalar::<f64>(),
        moved.max().into_scalar::<f64>(),
    );
    assert!(
        (low - lr).abs() < 1e-12 && (high - lr).abs() < 1e-12,
        "f64 step {low:e}..{high:e}, expected {lr:e}"
    );
}
