//! The convolutions of a ResNet-20 step (batch 128, 32x32) and, with `--resnet50`, of a
//! ResNet-50 step (batch 16, 224x224), layer shape by layer shape: burn-flex's own convolution,
//! weight gradient and input gradient against `flex_kernels::conv`' methods, each forced
//! where it applies (im2col; shifted products, stride 1; the flipped forward convolution, input
//! gradients at stride 1; the direct kernels, stride 1 on CPUs with AVX2 and FMA), and against
//! the method the kernels pick; interleaved per round (each round starting with the next side),
//! medians in ms, and the sums over the model's layers. "x" is the pick's time over flex's.
//!
//! `cargo bench --bench conv_layers [-- --resnet50 | --small-cnn] [-- --rounds N]
//! [-- --default-malloc]` (`--small-cnn`: the two convolutions of the lab's default job, batch
//! 128 of 28x28)

use std::time::Instant;

use bench_support::{Args, median, rotation};
use burn::backend::Flex;
use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::ops::ModuleOps;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Bytes, DType, Shape};
use flex_kernels::conv::dispatch::{Method, with_method};
use flex_kernels::conv::geometry::{Geometry, flipped};
use flex_kernels::conv::im2col;
use flex_kernels::conv::{direct, shifted};

/// One convolution shape of a model: `count` layers of `c -> o` channels, `k x k`, on `size x
/// size` inputs.
struct Layer {
    count: usize,
    c: usize,
    o: usize,
    k: usize,
    stride: usize,
    size: usize,
}

const fn layer(count: usize, c: usize, o: usize, k: usize, stride: usize, size: usize) -> Layer {
    Layer {
        count,
        c,
        o,
        k,
        stride,
        size,
    }
}

/// The lab's CIFAR ResNet-20 (projection shortcuts).
const RESNET20: [Layer; 8] = [
    layer(1, 3, 16, 3, 1, 32),
    layer(6, 16, 16, 3, 1, 32),
    layer(1, 16, 32, 3, 2, 32),
    layer(1, 16, 32, 1, 2, 32),
    layer(5, 32, 32, 3, 1, 16),
    layer(1, 32, 64, 3, 2, 16),
    layer(1, 32, 64, 1, 2, 16),
    layer(5, 64, 64, 3, 1, 8),
];

/// The lab's small CNN on Fashion-MNIST (the README's default job).
const SMALL_CNN: [Layer; 2] = [layer(1, 1, 16, 3, 1, 28), layer(1, 16, 32, 3, 1, 14)];

/// torchvision's ResNet-50 (stride on the 3x3 convolution).
const RESNET50: [Layer; 18] = [
    layer(1, 3, 64, 7, 2, 224),
    layer(1, 64, 64, 1, 1, 56),
    layer(3, 64, 64, 3, 1, 56),
    layer(4, 64, 256, 1, 1, 56),
    layer(2, 256, 64, 1, 1, 56),
    layer(1, 256, 128, 1, 1, 56),
    layer(1, 128, 128, 3, 2, 56),
    layer(1, 256, 512, 1, 2, 56),
    layer(3, 128, 128, 3, 1, 28),
    layer(4, 128, 512, 1, 1, 28),
    layer(3, 512, 128, 1, 1, 28),
    layer(1, 512, 256, 1, 1, 28),
    layer(1, 256, 256, 3, 2, 28),
    layer(1, 512, 1024, 1, 2, 28),
    layer(5, 256, 256, 3, 1, 14),
    layer(6, 256, 1024, 1, 1, 14),
    layer(5, 1024, 256, 1, 1, 14),
    layer(1, 1024, 512, 1, 1, 14),
];

/// What a column times: burn-flex's own, one method forced, or the kernels' own pick.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
    Flex,
    Forced(Method),
    Picked,
}

/// The columns of each pass.
const SIDES: [Side; 6] = [
    Side::Flex,
    Side::Forced(Method::Im2col),
    Side::Forced(Method::Shifted),
    Side::Forced(Method::Flipped),
    Side::Forced(Method::Direct),
    Side::Picked,
];

const PASSES: [&str; 3] = ["forward", "dw", "dx"];

fn main() {
    let args = Args::from_env();
    let malloc = flex_kernels::malloc::for_bench(args.all());
    let rounds = args.parsed("--rounds").unwrap_or(5);
    let (name, batch, layers): (&str, usize, &[Layer]) = if args.flag("--resnet50") {
        ("ResNet-50", 16, &RESNET50)
    } else if args.flag("--small-cnn") {
        ("small-cnn", 128, &SMALL_CNN)
    } else {
        ("ResNet-20", 128, &RESNET20)
    };
    println!(
        "{name} convolutions, batch {batch}, {rounds} rounds, {} threads, malloc {malloc}, \
         direct kernel {}; ms",
        rayon::current_num_threads(),
        if direct::available() {
            "available"
        } else {
            "not available (no AVX2 and FMA)"
        }
    );
    println!(
        "gemm alone, 1024 x 1024 x 1024 on all threads: {:.1} GFLOP/s (what the products here \
         could reach at best)",
        gemm_probe()
    );
    println!(
        "columns per pass: flex, im2col, shifted, flipped, direct (each forced where it applies: \
         shifted at stride 1, flipped for dx at stride 1, direct for the forward pass, dw \
         and the flipped dx at stride 1), picked (the kernels' own choice), x = picked / flex"
    );
    let head = |op: &str| {
        format!(
            "{op:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>5}",
            "flex", "im2col", "shifted", "flipped", "direct", "picked", "x"
        )
    };
    println!(
        "{:>26} {:>5} | {} | {} | {}",
        "layer",
        "count",
        head(PASSES[0]),
        head(PASSES[1]),
        head(PASSES[2])
    );
    let shown = |t: Option<f64>| t.map_or("-".into(), |t| format!("{t:.2}"));
    // [pass][side]; a layer without a time for a method adds its im2col time there.
    let mut totals = [[0f64; SIDES.len()]; 3];
    for l in layers {
        let times = measure(l, batch, rounds);
        let mut line = format!(
            "{:>26} {:>5} |",
            format!("{}->{} {}x{}/{} @{}", l.c, l.o, l.k, l.k, l.stride, l.size),
            l.count
        );
        for (op, row) in times.iter().enumerate() {
            let [flex, im2col, .., picked] = row.map(|t| t.unwrap_or(f64::NAN));
            line += &format!(" {:>7}", "");
            for t in row {
                line += &format!(" {:>7}", shown(*t));
            }
            line += &format!(" {:>5.2} |", picked / flex);
            for (side, t) in row.iter().enumerate() {
                totals[op][side] += t.unwrap_or(im2col) * l.count as f64;
            }
        }
        println!("{}", line.trim_end_matches(" |"));
    }
    let mut line = format!("{:>26} {:>5} |", "model (sum x count)", "");
    for row in totals {
        line += &format!(" {:>7}", "");
        for t in row {
            line += &format!(" {t:>7.1}");
        }
        line += &format!(" {:>5.2} |", row[5] / row[0]);
    }
    println!("{}", line.trim_end_matches(" |"));
    let all = |side: usize| totals.iter().map(|t| t[side]).sum::<f64>();
    println!(
        "conv_layers {} flex_ms {:.1} ours_ms {:.1} ratio {:.3}",
        name.to_lowercase(),
        all(0),
        all(5),
        all(5) / all(0)
    );
    println!(
        "conv_methods {} im2col_ms {:.1} shifted_ms {:.1} flipped_dx_ms {:.1} direct_ms {:.1} \
         picked_ms {:.1}",
        name.to_lowercase(),
        all(1),
        all(2),
        totals[2][3],
        all(4),
        all(5)
    );
}

/// GFLOP/s of one big square product (the best of 5).
fn gemm_probe() -> f64 {
    let n = 1024;
    let a = vec![1f32; n * n];
    let b = vec![0.5f32; n * n];
    let mut c = vec![0f32; n * n];
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        // SAFETY: all three are n x n, row-major, and `c` is borrowed mutably alone.
        unsafe {
            gemm::gemm(
                n,
                n,
                n,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                1,
                n as isize,
                b.as_ptr(),
                1,
                n as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(0),
            )
        };
        best = best.min(start.elapsed().as_secs_f64());
    }
    assert_eq!(c[n * n - 1], 0.5 * n as f32);
    2.0 * (n * n * n) as f64 / best / 1e9
}

fn tensor(shape: [usize; 4], seed: u64) -> (FlexTensor, Vec<f32>) {
    // A small linear congruential generator: values in [-1, 1), the same on every run.
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let values: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 23) as f32) - 1.0
        })
        .collect();
    let ft = FlexTensor::new(
        Bytes::from_elems(values.clone()),
        Layout::contiguous(Shape::from(shape.to_vec())),
        DType::F32,
    );
    (ft, values)
}

/// Medians over the rounds, ms: [forward, weight gradient, input gradient] x [`SIDES`], each
/// where it applies.
fn measure(l: &Layer, batch: usize, rounds: usize) -> [[Option<f64>; SIDES.len()]; 3] {
    let pad = l.k / 2;
    let options = ConvOptions::new([l.stride; 2], [pad; 2], [1, 1], 1);
    let x_shape = [batch, l.c, l.size, l.size];
    let w_shape = [l.o, l.c, l.k, l.k];
    let g = Geometry::new(x_shape, w_shape, &options).expect("a valid layer");
    let (x, xv) = tensor(x_shape, 1);
    let (w, wv) = tensor(w_shape, 2);
    let (dy, dyv) = tensor([batch, l.o, g.oh, g.ow], 3);
    let flips = flipped(&g).is_some();
    let applies = |side: Side, op: usize| match side {
        Side::Forced(Method::Shifted) => shifted::fits(&g),
        Side::Forced(Method::Flipped) => op == 2 && flips,
        Side::Forced(Method::Direct) => direct::fits(&g) && (op < 2 || flips),
        _ => true,
    };
    let sides: Vec<usize> = (0..SIDES.len())
        .filter(|&s| (0..3).any(|op| applies(SIDES[s], op)))
        .collect();
    let mut samples = vec![[[0f64; SIDES.len()]; 3]; rounds];
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        f();
        start.elapsed().as_secs_f64() * 1e3
    };
    // One untimed call of each first: thread pools, buffers.
    for round in 0..=rounds {
        let mut times = [[0f64; SIDES.len()]; 3];
        for k in rotation(round, sides.len()) {
            let slot = sides[k];
            let side = SIDES[slot];
            for op in (0..3).filter(|&op| applies(side, op)) {
                let mut pass = || match (side, op) {
                    (Side::Flex, 0) => {
                        std::hint::black_box(Flex::conv2d(
                            x.clone(),
                            w.clone(),
                            None,
                            options.clone(),
                        ));
                    }
                    (Side::Flex, 1) => {
                        std::hint::black_box(Flex::conv2d_weight_backward(
                            x.clone(),
                            w.clone(),
                            dy.clone(),
                            options.clone(),
                        ));
                    }
                    (Side::Flex, _) => {
                        std::hint::black_box(Flex::conv2d_x_backward(
                            x.clone(),
                            w.clone(),
                            dy.clone(),
                            options.clone(),
                        ));
                    }
                    (_, 0) => {
                        std::hint::black_box(im2col::forward(&g, &xv, &wv));
                    }
                    (_, 1) => {
                        std::hint::black_box(im2col::weight_grad(&g, &xv, &dyv));
                    }
                    _ => {
                        std::hint::black_box(im2col::input_grad(&g, &wv, &dyv));
                    }
                };
                times[op][slot] = match side {
                    Side::Forced(method) => with_method(method, || time(&mut pass)),
                    _ => time(&mut pass),
                };
            }
        }
        if round > 0 {
            samples[round - 1] = times;
        }
    }
    std::array::from_fn(|op| {
        std::array::from_fn(|slot| {
            applies(SIDES[slot], op).then(|| median(samples.iter().map(|s| s[op][slot]).collect()))
        })
    })
}
