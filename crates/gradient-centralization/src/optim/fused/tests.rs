//! The fused path against the tensor definition, on every optimizer and layout. (Over 400 lines:
//! one case per layout burn hands over, dense and strided, for every optimizer.)

use burn::optim::Optimizer;
use burn::tensor::{Device, Distribution, Tensor};

use super::diagnostics::*;
use super::layout::*;
use super::*;
use crate::centralize::{Centralize, Placement};
use crate::optim::diagnostics::without_fused;
use crate::optim::units::Units;
use crate::optim::{
    AdagradConfig, AdamConfig, AdamWConfig, AdamWFormula, GcOptimizer, SgdConfig, WeightDecay,
};

/// A tensor of values in [-scale, scale) from a local generator (the backend's generator is
/// shared by tests running in parallel).
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
    Tensor::from_data(burn::tensor::TensorData::new(data, shape), &Device::flex())
}

/// Three steps of `optimizer` on `shape` with GC `gc`, fused or not; the final weights.
fn run<O: Optimizer, const D: usize>(optimizer: &O, shape: [usize; D], fused: bool) -> Vec<f32> {
    let mut w = values(shape, 7, 1.0);
    let grads: Vec<Tensor<D>> = (0..3).map(|t| values(shape, 100 + t, 0.1)).collect();
    let mut state = None;
    let taken = TAKEN.with(Cell::get);
    for (t, g) in grads.into_iter().enumerate() {
        let lr = 0.1 / (t + 1) as f64;
        let step = || optimizer.step(lr, w.clone(), g, state.take());
        (w, state) = if fused { step() } else { without_fused(step) };
    }
    let expected = if fused { 3 } else { 0 };
    assert_eq!(
        TAKEN.with(Cell::get) - taken,
        expected,
        "steps through the kernels"
    );
    floats(w)
}

fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec().unwrap()
}

/// The largest element-wise difference of two equally long slices.
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

fn compare<O: GcOptimizer>(name: &str, optimizer: O) {
    let conv = Gc::new(Centralize::along(0), Placement::Gradient);
    let linear = Gc::new(Centralize::along(1), Placement::Gradient);
    let check = |what: &str, a: Vec<f32>, b: Vec<f32>| {
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = max_diff(&a, &b);
        assert!(err <= 1e-6 * scale, "{name} {what}: {err} (scale {scale})");
    };
    let o = optimizer.with_gc(conv);
    check(
        "conv",
        run(&o, [4, 3, 3, 3], true),
        run(&o, [4, 3, 3, 3], false),
    );
    let o = optimizer.with_gc(linear);
    check("linear", run(&o, [6, 5], true), run(&o, [6, 5], false));
    let o = optimizer.with_gc(Gc::NONE);
    check("bias", run(&o, [40_000], true), run(&o, [40_000], false));
    // Big enough for several tasks, with rows that straddle no task boundary.
    let o = optimizer.with_gc(conv);
    check(
        "big conv",
        run(&o, [64, 32, 3, 3], true),
        run(&o, [64, 32, 3, 3], false),
    );
    let o = optimizer.with_gc(linear);
    check(
        "big linear",
        run(&o, [300, 70], true),
        run(&o, [300, 70], false),
    );
}

#[test]
fn fused_steps_agree_with_the_tensor_path() {
    let sgd = |m: f64, nesterov: bool, wd: WeightDecay| {
        SgdConfig::new()
            .with_momentum(m)
            .with_nesterov(nesterov)
            .with_weight_decay(wd)
            .build()
            .unwrap()
    };
    compare("sgd", sgd(0.0, false, WeightDecay::None));
    compare("sgd l2", sgd(0.9, false, WeightDecay::L2(5e-2)));
    compare("sgd nesterov", sgd(0.9, true, WeightDecay::L2(5e-2)));
    compare("sgdw", sgd(0.9, false, WeightDecay::Decoupled(5e-2)));
    compare(
        "sgd dampening",
        SgdConfig::new()
            .with_momentum(0.9)
            .with_dampening(0.3)
            .build()
            .unwrap(),
    );
    // Adam's first steps move each weight by about lr·d/(|d| + eps): with the default eps of
    // 1e-8, an element whose centralized gradient d is near zero turns a rounding difference
    // in the mean (summed in another order on each path) into a different step, up to lr. A
    // larger eps bounds that amplification by 1/eps and makes a misplaced eps more visible.
    compare(
        "adam",
        AdamConfig::new()
            .with_eps(1e-2)
            .with_weight_decay(5e-2)
            .build()
            .unwrap(),
    );
    for formula in [AdamWFormula::Seed, AdamWFormula::Torch] {
        compare(
            "adamw",
            AdamWConfig::new()
                .with_formula(formula)
                .with_eps(1e-2)
                .with_weight_decay(5e-2)
                .build()
                .unwrap(),
        );
    }
    compare(
        "adagrad",
        AdagradConfig::new()
            .with_weight_decay(5e-2)
            .with_lr_decay(0.1)
            .with_initial_accumulator_value(0.2)
            .build()
            .unwrap(),
    );
}

/// Every fused optimizer of the seed, each with non-default hyperparameters (Adagrad's eps
/// included), fused against the tensor path on a conv weight centralized by rows (`gc`) and a
/// linear weight by columns (no GC when `gc` has none).
fn every_fused_optimizer_agrees(gc: Gc, conv: [usize; 4], linear: [usize; 2]) {
    let by_columns = match gc.op {
        Some(_) => Gc::new(Centralize::along(1), gc.placement),
        None => Gc::NONE,
    };
    macro_rules! each {
        ($($name:literal => $optimizer:expr,)*) => {$(
            let optimizer = $optimizer;
            let o = optimizer.with_gc(gc);
            agree($name, run(&o, conv, true), run(&o, conv, false));
            let o = optimizer.with_gc(by_columns);
            agree($name, run(&o, linear, true), run(&o, linear, false));
        )*};
    }
    each! {
        "sgd" => SgdConfig::new().build().unwrap(),
        "sgd momentum l2" => SgdConfig::new()
            .with_momentum(0.9)
            .with_weight_decay(WeightDecay::L2(5e-2))
            .build()
            .unwrap(),
        "sgd nesterov" => SgdConfig::new()
            .with_momentum(0.8)
            .with_nesterov(true)
            .build()
            .unwrap(),
        "sgdw dampening" => SgdConfig::new()
            .with_momentum(0.9)
            .with_dampening(0.3)
            .with_weight_decay(WeightDecay::Decoupled(5e-2))
            .build()
            .unwrap(),
        // eps 1e-2 for the Adam family: see fused_steps_agree_with_the_tensor_path.
        "adam" => AdamConfig::new().with_eps(1e-2).with_weight_decay(5e-2).build().unwrap(),
        "adamw seed" => AdamWConfig::new()
            .with_formula(AdamWFormula::Seed)
            .with_eps(1e-2)
            .with_weight_decay(5e-2)
            .build()
            .unwrap(),
        "adamw torch" => AdamWConfig::new()
            .with_formula(AdamWFormula::Torch)
            .with_eps(1e-2)
            .with_weight_decay(5e-2)
            .build()
            .unwrap(),
        "adagrad eps" => AdagradConfig::new()
            .with_eps(1e-3)
            .with_lr_decay(0.1)
            .with_weight_decay(5e-2)
            .build()
            .unwrap(),
    }
}

/// Fused and tensor-path weights within 1e-6 of the weights' scale.
fn agree(name: &str, fused: Vec<f32>, tensor: Vec<f32>) {
    let scale = tensor.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = max_diff(&fused, &tensor);
    assert!(err <= 1e-6 * scale, "{name}: {err} (scale {scale})");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Random shapes: odd sizes, one output unit, fan-in 1, rows shorter and longer than the
    /// mean's 32 lanes; conv weights by rows, linear weights by columns, and no GC.
    #[test]
    fn fused_steps_agree_with_the_tensor_path_on_random_shapes(
        out in 1usize..10,
        fan in 1usize..9,
        k in 1usize..4,
        d_in in 1usize..300,
        d_out in 1usize..10,
        centralize in proptest::bool::ANY,
    ) {
        let gc = if centralize {
            Gc::new(Centralize::along(0), Placement::Gradient)
        } else {
            Gc::NONE
        };
        every_fused_optimizer_agrees(gc, [out, fan, k, k], [d_in, d_out]);
    }
}

/// One output unit over a huge fan-in: a conv channel of 102,400 inputs, a linear head of
/// 100,000 (the mean's lanes wrap many times; tasks split nothing).
#[test]
fn fused_steps_agree_with_the_tensor_path_on_a_huge_fan_in() {
    let gc = Gc::new(Centralize::along(0), Placement::Gradient);
    every_fused_optimizer_agrees(gc, [1, 4096, 5, 5], [100_000, 1]);
}

/// The AVX2 kernels compute the very same numbers as the baseline ones: same operations per
/// element, same 32 lanes for the row means.
#[test]
fn avx2_and_baseline_kernels_agree_bit_for_bit() {
    let conv = Gc::new(Centralize::along(0), Placement::Gradient);
    let linear = Gc::new(Centralize::along(1), Placement::Gradient);
    let sgd = SgdConfig::new()
        .with_momentum(0.9)
        .with_weight_decay(WeightDecay::L2(5e-2))
        .build()
        .unwrap();
    let adam = AdamConfig::new().with_weight_decay(5e-2).build().unwrap();
    let adagrad = AdagradConfig::new().build().unwrap();
    let same = |a: Vec<f32>, b: Vec<f32>| {
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    };
    // Rows of 288 (nine times the mean's 32 lanes) and of 315 (a tail after the lanes).
    for shape in [[64, 32, 3, 3], [64, 35, 3, 3]] {
        for gc in [conv, Gc::NONE] {
            let (o, a, g) = (sgd.with_gc(gc), adam.with_gc(gc), adagrad.with_gc(gc));
            same(run(&o, shape, true), without_avx2(|| run(&o, shape, true)));
            same(run(&a, shape, true), without_avx2(|| run(&a, shape, true)));
            same(run(&g, shape, true), without_avx2(|| run(&g, shape, true)));
        }
    }
    let (o, a) = (sgd.with_gc(linear), adam.with_gc(linear));
    same(
        run(&o, [300, 70], true),
        without_avx2(|| run(&o, [300, 70], true)),
    );
    same(
        run(&a, [300, 70], true),
        without_avx2(|| run(&a, [300, 70], true)),
    );
}

/// A uniquely owned weight is updated where it lies; the step hands back the same buffer.
#[test]
fn unique_buffers_are_updated_in_place() {
    let device = Device::flex();
    let w = Tensor::<2>::random([8, 8], Distribution::Default, &device);
    let g = Tensor::<2>::random([8, 8], Distribution::Default, &device);
    let ptr = |t: Tensor<2>| {
        let ft = into_flex(t).unwrap_or_else(|_| panic!("a flex f32 tensor"));
        (ft.bytes().as_ptr() as usize, from_flex::<2>(ft))
    };
    let (before, w) = ptr(w);
    let sgd = SgdConfig::new()
        .with_momentum(0.9)
        .build()
        .unwrap()
        .with_gc(Gc::new(Centralize::along(0), Placement::Gradient));
    let (w, state) = sgd.step(0.1, w, g, None);
    let (after, _) = ptr(w);
    assert_eq!(before, after);
    assert!(state.is_some());
}

/// burn hands convolution weight gradients over with their first two axes swapped: the fused
/// path reads them in place and computes what the tensor path computes.
#[test]
fn strided_gradients_are_read_in_place_and_agree() {
    let sgd = SgdConfig::new()
        .with_momentum(0.9)
        .with_weight_decay(WeightDecay::L2(1e-2))
        .build()
        .unwrap();
    // eps 1e-2: see `fused_steps_agree_with_the_tensor_path`.
    let adam = AdamConfig::new()
        .with_eps(1e-2)
        .with_weight_decay(1e-2)
        .build()
        .unwrap();
    let rows = Gc::new(Centralize::along(0), Placement::Gradient);
    for gc in [rows, Gc::NONE] {
        // (shape, extra kernel rows and columns that the view slices off, as burn's
        // backward pass does for convolutions of stride 2)
        let cases = [
            ([4, 3, 3, 3], 0),
            ([64, 32, 3, 3], 0),
            ([128, 64, 1, 1], 0),
            // 1x1 with long rows: tasks take more rows than CHUNK alone would give them.
            ([300, 1024, 1, 1], 0),
            ([16, 8, 3, 3], 1),
            ([32, 16, 1, 1], 1),
        ];
        for ([o, i, kh, kw], extra) in cases {
            let w = values([o, i, kh, kw], 1, 1.0);
            let g = values([i, o, kh + extra, kw + extra], 2, 1.0)
                .swap_dims(0, 1)
                .slice([0..o, 0..i, 0..kh, 0..kw]);
            let check = |name: &str, fused: Tensor<4>, plain: Tensor<4>| {
                let err = max_diff(&floats(fused), &floats(plain));
                assert!(err < 1e-6, "{name} {gc:?} {o}x{i}x{kh}x{kw}: {err}");
            };
            let flex = into_flex(g.clone()).unwrap_or_else(|_| panic!("a flex tensor"));
            assert!(!is_dense(&flex), "the gradient is a strided view");
            let (gathers, steps) = (fused_gathers(), fused_steps());
            let sgd = sgd.with_gc(gc);
            let (fused, _) = sgd.step(0.1, w.clone(), g.clone(), None);
            // Read where it lies, through the kernels; except rows that are only read and
            // too few to keep every core busy, which are laid out densely once.
            let few = gc == Gc::NONE && o < 4 * rayon::current_num_threads();
            let expected = (usize::from(few), 1);
            assert_eq!((fused_gathers() - gathers, fused_steps() - steps), expected);
            let (plain, _) = without_fused(|| sgd.step(0.1, w.clone(), g.clone(), None));
            check("sgd", fused, plain);
            let adam = adam.with_gc(gc);
            let (fused, _) = adam.step(0.1, w.clone(), g.clone(), None);
            let (plain, _) = without_fused(|| adam.step(0.1, w.clone(), g.clone(), None));
            check("adam", fused, plain);
        }
    }
}

/// GC's units along a later axis, behind axes of length 1, with a strided gradient: not rows
/// along the first axis, so the gradient is laid out densely first, and the step agrees.
#[test]
fn strided_gradients_of_units_behind_unit_axes_are_gathered() {
    let sgd = SgdConfig::new()
        .with_momentum(0.9)
        .build()
        .unwrap()
        .with_gc(Gc::new(Centralize::along(1), Placement::Gradient));
    let w = values([1, 4, 3, 3], 1, 1.0);
    let g = values([1, 4, 3, 4], 2, 1.0).slice([0..1, 0..4, 0..3, 0..3]);
    let gathers = fused_gathers();
    let (fused, _) = sgd.step(0.1, w.clone(), g.clone(), None);
    assert_eq!(fused_gathers() - gathers, 1);
    let (plain, _) = without_fused(|| sgd.step(0.1, w, g, None));
    let err = max_diff(&floats(fused), &floats(plain));
    assert!(err < 1e-6, "{err}");
}

/// The row views merge contiguous inner axes and gather rows in the logical order.
#[test]
fn strided_rows_gather_the_logical_rows() {
    let flex = |t: Tensor<4>| into_flex(t).unwrap_or_else(|_| panic!("a flex f32 tensor"));
    let swapped = flex(values([5, 4, 3, 3], 3, 1.0).swap_dims(0, 1));
    let view = Strided::of(&swapped, &[4, 5, 3, 3]).expect("a row view");
    assert_eq!(
        (view.row_stride, view.inner.clone()),
        (9, vec![(5, 36), (9, 1)])
    );
    let sliced = values([5, 4, 3, 3], 4, 1.0)
        .swap_dims(0, 1)
        .slice([0..4, 0..5, 1..3, 0..2]);
    let logical = floats(sliced.clone());
    let sliced = flex(sliced);
    let view = Strided::of(&sliced, &[4, 5, 2, 2]).expect("a row view");
    assert_eq!(view.inner, vec![(5, 36), (2, 3), (2, 1)]);
    // Rows `first..first + rows` of `view`, `row` long, gathered `pitch` apart in the tile.
    let check = |view: &Strided, data: &[f32], logical: &[f32], row: usize, pitch: usize| {
        // A tile left bigger by an earlier task, with values that must all be overwritten.
        let mut tile = vec![f32::NAN; 8 * pitch];
        for (first, rows) in [(0, 4), (1, 2), (3, 1)] {
            view.gather(data, first, rows, (row, pitch), &mut tile);
            for r in 0..rows {
                let at = (first + r) * row;
                assert_eq!(
                    tile[r * pitch..r * pitch + row],
                    logical[at..at + row],
                    "row {} of rows {first}..{}",
                    first + r,
                    first + rows
                );
            }
        }
    };
    check(&view, sliced.storage::<f32>(), &logical, 20, 20);
    check(&view, sliced.storage::<f32>(), &logical, 20, 20 + TILE_PAD);
    // A 1x1 convolution's swapped gradient: the rows' elements lie a whole block of output
    // channels apart, so the strided axis becomes an outer one over runs of one element.
    let one = values([5, 4, 1, 1], 6, 1.0).swap_dims(0, 1);
    let logical = floats(one.clone());
    let one = flex(one);
    let view = Strided::of(&one, &[4, 5, 1, 1]).expect("a row view");
    assert_eq!(
        (view.row_stride, view.inner.clone()),
        (1, vec![(5, 4), (1, 1)])
    );
    check(&view, one.storage::<f32>(), &logical, 5, 5 + TILE_PAD);
    // Negative strides are not rows to read forwards.
    assert_eq!(
        Strided::of(&flex(values([3, 2, 1, 1], 5, 1.0).flip([0])), &[3, 2, 1, 1]),
        None
    );
}

#[test]
fn units_cover_rows_and_columns_and_decline_the_rest() {
    let rows = Gc::new(Centralize::along(0), Placement::Gradient);
    assert_eq!(
        Units::of(rows, &[4, 3, 3, 3]),
        Some(Units::Rows { len: 27 })
    );
    let cols = Gc::new(Centralize::along(1), Placement::Gradient);
    assert_eq!(Units::of(cols, &[6, 5]), Some(Units::Cols { units: 5 }));
    assert_eq!(Units::of(Gc::NONE, &[6]), Some(Units::None));
    let update = Gc::new(Centralize::along(0), Placement::Update);
    assert_eq!(Units::of(update, &[4, 3]), None);
    let grouped = Gc::new(Centralize::grouped(1, 2), Placement::Gradient);
    assert_eq!(Units::of(grouped, &[4, 3, 2]), None);
    let middle = Gc::new(Centralize::along(1), Placement::Gradient);
    assert_eq!(Units::of(middle, &[4, 3, 2]), None);
}
