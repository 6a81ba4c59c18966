//! What GC's layout costs in one fused SGD step of a single f32 tensor: no GC, GC by columns
//! (burn's `Linear [in, out]`: a column-sum pass first) and GC by rows (convolutions: the mean of
//! each row in cache), on three weight shapes; then GC by rows of three convolution weights with
//! the gradient dense or as burn's backward pass hands it over (swapped axes, read in place). The
//! cases of a shape are interleaved, each round starting one case later, 55 timed steps each
//! after 5; min / quartiles / max in ms and the median in ns per parameter.
//!
//! `cargo bench --bench units_step [-- --default-malloc]`

use std::time::Instant;

use bench_support::{Args, rotation};
use burn::optim::Optimizer;
use burn::tensor::{Device, Distribution, Tensor};
use gradient_centralization::optim::diagnostics::{fused_gathers, fused_steps};
use gradient_centralization::optim::{Gc, GcOptimizer, Sgd, SgdConfig, SgdState, WeightDecay};
use gradient_centralization::{Centralize, Placement};

const WARMUP: usize = 5;
const SAMPLES: usize = 55;

fn main() {
    let malloc = flex_kernels::malloc::for_bench(Args::from_env().all());
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
        let fresh = || Tensor::<2>::random(shape, Distribution::Default, &device);
        let cases: Vec<Case<2>> = layouts
            .iter()
            .map(|(name, optimizer)| Case {
                name,
                optimizer,
                grad: Box::new(fresh),
            })
            .collect();
        report(&shape, &cases, interleave(shape, &cases, &device));
    }
    // Convolution weights by rows, with the gradient dense or as burn's backward pass hands it
    // over (a view of an `[in, out, kh, kw]` buffer with the first two axes swapped).
    let rows = sgd.with_gc(Gc::new(Centralize::along(0), Placement::Gradient));
    for shape in [[2048, 512, 1, 1], [512, 2048, 1, 1], [512, 512, 3, 3]] {
        let [o, i, h, w] = shape;
        let cases = [
            Case {
                name: "dense",
                optimizer: &rows,
                grad: Box::new(|| Tensor::<4>::random(shape, Distribution::Default, &device)),
            },
            Case {
                name: "swapped",
                optimizer: &rows,
                grad: Box::new(|| {
                    Tensor::<4>::random([i, o, h, w], Distribution::Default, &device)
                        .swap_dims(0, 1)
                }),
            },
        ];
        report(&shape, &cases, interleave(shape, &cases, &device));
    }
}

/// One case of a shape: its name, its optimizer and how it makes a fresh gradient.
struct Case<'a, const D: usize> {
    name: &'a str,
    optimizer: &'a Sgd,
    grad: Box<dyn Fn() -> Tensor<D> + 'a>,
}

/// Steps every case of `shape` once per round, each round starting one case later than the one
/// before (so that no case always follows the same one); the timed steps of each case, in ms.
fn interleave<const D: usize>(
    shape: [usize; D],
    cases: &[Case<D>],
    device: &Device,
) -> Vec<Vec<f64>> {
    let mut weights: Vec<Option<Tensor<D>>> = cases
        .iter()
        .map(|_| Some(Tensor::random(shape, Distribution::Default, device)))
        .collect();
    let mut states: Vec<Option<SgdState<D>>> = vec![None; cases.len()];
    let mut times = vec![Vec::new(); cases.len()];
    for round in 0..WARMUP + SAMPLES {
        for k in rotation(round, cases.len()) {
            // A fresh, uniquely owned gradient, made before the clock starts.
            let grad = (cases[k].grad)();
            let weight = weights[k].take().expect("a weight");
            let (steps, gathers) = (fused_steps(), fused_gathers());
            let start = Instant::now();
            let (weight, state) = cases[k]
                .optimizer
                .step(0.01, weight, grad, states[k].take());
            // Reading a value waits for the step.
            let _ = weight
                .clone()
                .flatten::<1>(0, D - 1)
                .slice(0..1)
                .into_scalar::<f32>();
            let ms = start.elapsed().as_secs_f64() * 1e3;
            // Through the fused kernels, a strided gradient read where it lies.
            assert_eq!((fused_steps() - steps, fused_gathers() - gathers), (1, 0));
            (weights[k], states[k]) = (Some(weight), state);
            if round >= WARMUP {
                times[k].push(ms);
            }
        }
    }
    times
}

/// One line per layout: min / quartiles / max and the median per parameter.
fn report<const D: usize>(shape: &[usize; D], cases: &[Case<D>], times: Vec<Vec<f64>>) {
    let n: usize = shape.iter().product();
    let shape = shape
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" x ");
    for (Case { name, .. }, mut t) in cases.iter().zip(times) {
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
