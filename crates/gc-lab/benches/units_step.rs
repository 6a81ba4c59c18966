//! What GC's layout costs in one fused SGD step of a single f32 tensor: no GC, GC by columns
//! (burn's `Linear [in, out]`: a column-sum pass first) and GC by rows (convolutions: the mean of
//! each row in cache), on three weight shapes. The three are interleaved, 55 timed steps each
//! after 5; min / quartiles / max in ms and the median in ns per parameter.
//!
//! `cargo bench --bench units_step`

use std::time::Instant;

use burn::optim::Optimizer;
use burn::tensor::{Device, Distribution, Tensor};
use gradient_centralization::optim::{Gc, GcOptimizer, Sgd, SgdConfig, SgdState, WeightDecay};
use gradient_centralization::{Centralize, Placement};

const WARMUP: usize = 5;
const SAMPLES: usize = 55;

fn main() {
    let malloc = gc_lab::memory::keep_freed_memory();
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
    println!("SGD (momentum 0.9, L2 5e-4) step of one tensor; malloc {malloc:?}");
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
        for ((name, _), mut t) in layouts.iter().zip(times) {
            t.sort_by(f64::total_cmp);
            let q = |f: f64| t[((t.len() - 1) as f64 * f) as usize];
            println!(
                "{:>4} x {:<4} {name:<8} min {:.3}  p25 {:.3}  median {:.3}  p75 {:.3}  max {:.3} ms  \
                 ({:.3} ns/param)",
                shape[0],
                shape[1],
                q(0.0),
                q(0.25),
                q(0.5),
                q(0.75),
                q(1.0),
                q(0.5) * 1e6 / n as f64
            );
        }
    }
}
