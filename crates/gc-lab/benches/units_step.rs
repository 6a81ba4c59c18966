//! What GC's layout costs in one fused SGD step of a single f32 tensor: no GC, GC by columns
//! (burn's `Linear [in, out]`: a column-sum pass first) and GC by rows (convolutions: the mean of
//! each row in cache), on three weight shapes; then GC by rows of three convolution weights with
//! the gradient dense or as burn's backward pass hands it over (swapped axes, read in place). The
//! cases of a shape are interleaved, 55 timed steps each after 5; min / quartiles / max in ms and
//! the median in ns per parameter.
//!
//! `cargo bench --bench units_step [-- --default-malloc]`

use std::time::Instant;

use burn::optim::Optimizer;
use burn::tensor::{Device, Distribution, Tensor};
use gradient_centralization::optim::{
    Gc, GcOptimizer, Sgd, SgdConfig, SgdState, WeightDecay, fused_gathers, fused_steps,
};
use gradient_centralization::{Centralize, Placement};

const WARMUP: usize = 5;
const SAMPLES: usize = 55;

fn main() {
    let malloc = gc_lab::memory::for_bench(&std::env::args().collect::<Vec<_>>());
    let device = Device::flex();
    let sgd = SgdConfig::new()
        .with_momentum(0.9)
        .with_weight_decay(WeightDecay::L2(5e-4))
        .build()
        .expect("valid settings");
    let layouts: [(&str, Sgd); 3] = [
        ("none", sgd.with_gc(Gc::NONE)),
        (
            "columns",
            sgd.with_gc(Gc::new(Centralize::along(1), Placement::Gradient)),
        ),
        (
            "rows",
            sgd.with_gc(Gc::new(Centralize::along(0), Placement::Gradient)),
        ),
    ];
    println!("SGD (momentum 0.9, L2 5e-4) step of one tensor; malloc {malloc}");
    for shape in [[2048, 1000], [1000, 2048], [512, 4096]] {
        let n = shape[0] * shape[1];
        let mut weights: Vec<Option<Tensor<2>>> = (0..layouts.len())
            .map(|_| Some(Tensor::random(shape, Distribution::Default, &device)))
            .collect();
        let mut states: Vec<Option<SgdState<2>>> = vec![None; layouts.len()];
        let mut times = vec![Vec::new(); layouts.len()];
        for round in 0..WARMUP + SAMPLES {
            for (k, (_, optimizer)) in layouts.iter().enumerate() {
                // A fresh, uniquely owned gradient, made before the clock starts.
                let grad = Tensor::<2>::random(shape, Distribution::Default, &device);
                let weight = weights[k].take().expect("a weight");
                let start = Instant::now();
                let (weight, state) = optimizer.step(0.01, weight, grad, states[k].take());
                // Reading a value waits for the step.
                let _ = weight.clone().slice([0..1, 0..1]).into_scalar::<f32>();
                let ms = start.elapsed().as_secs_f64() * 1e3;
                (weights[k], states[k]) = (Some(weight), state);
                if round >= WARMUP {
                    times[k].push(ms);
                }
            }
        }
        report(&shape, n, layouts.iter().map(|(name, _)| *name), times);
    }
    // Convolution weights by rows, with the gradient dense or as burn's backward pass hands it
    // over (a view of an `[in, out, kh, kw]` buffer with the first two axes swapped).
    let rows = sgd.with_gc(Gc::new(Centralize::along(0), Placement::Gradient));
    for shape in [[2048, 512, 1, 1], [512, 2048, 1, 1], [512, 512, 3, 3]] {
        let n: usize = shape.iter().product();
        let mut weights: Vec<Option<Tensor<4>>> = (0..2)
            .map(|_| Some(Tensor::random(shape, Distribution::Default, &device)))
            .collect();
        let mut states: Vec<Option<SgdState<4>>> = vec![None; 2];
        let mut times = vec![Vec::new(); 2];
        for round in 0..WARMUP + SAMPLES {
            // Each round in the other order, so that neither always follows the other.
            for k in [round % 2, 1 - round % 2] {
                let swapped = k == 1;
                let grad = if swapped {
                    let [o, i, h, w] = shape;
                    Tensor::<4>::random([i, o, h, w], Distribution::Default, &device)
                        .swap_dims(0, 1)
                } else {
                    Tensor::<4>::random(shape, Distribution::Default, &device)
                };
                let weight = weights[k].take().expect("a weight");
                let (steps, gathers) = (fused_steps(), fused_gathers());
                let start = Instant::now();
                let (weight, state) = rows.step(0.01, weight, grad, states[k].take());
                let _ = weight
                    .clone()
                    .slice([0..1, 0..1, 0..1, 0..1])
                    .into_scalar::<f32>();
                let ms = start.elapsed().as_secs_f64() * 1e3;
                // Through the fused kernels, the swapped gradient read where it lies.
                assert_eq!((fused_steps() - steps, fused_gathers() - gathers), (1, 0));
                (weights[k], states[k]) = (Some(weight), state);
                if round >= WARMUP {
                    times[k].push(ms);
                }
            }
        }
        report(&shape, n, ["dense", "swapped"].into_iter(), times);
    }
}

/// One line per layout: min / quartiles / max and the median per parameter.
fn report<'a>(
    shape: &[usize],
    n: usize,
    names: impl Iterator<Item = &'a str>,
    times: Vec<Vec<f64>>,
) {
    let shape = shape
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" x ");
    for (name, mut t) in names.zip(times) {
        t.sort_by(f64::total_cmp);
        let q = |f: f64| t[((t.len() - 1) as f64 * f) as usize];
        println!(
            "{shape:<18} {name:<8} min {:.3}  p25 {:.3}  median {:.3}  p75 {:.3}  max {:.3} ms  \
             ({:.3} ns/param)",
            q(0.0),
            q(0.25),
            q(0.5),
            q(0.75),
            q(1.0),
            q(0.5) * 1e6 / n as f64
        );
    }
}
