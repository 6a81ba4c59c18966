//! Training steps of the lab's models on the CPU backend, split into forward + loss, backward and
//! optimizer step, with the process's peak memory, for comparison with PyTorch
//! (`scripts/bench-vs-pytorch.sh` runs this and its PyTorch twin and prints the ratios).
//!
//! `cargo bench --bench train_step -- [resnet20|resnet50|small-cnn] [--optimizer NAME] [--quick]
//! [--no-gc-share] [--default-malloc] [--burn-ops] [--im2col] [--avx2] [--backend flex|ndarray]`
//! (ndarray: build with `--features ndarray`; `--burn-ops`: burn's own convolution, batch norm
//! and pooling instead of `flex_kernels`'; `--im2col`: `flex_kernels`' convolutions all through
//! im2col, none by the shifted, flipped or direct methods; `--avx2`: the direct kernels in their
//! AVX2 forms on a CPU with AVX-512) `[--device NAME] [--tensor-path]` (`--device`: one of the
//! lab's devices, `wgpu:cpu`, `vulkan`, `cuda:N`, ..., built with the lab's `wgpu` or `cuda`
//! feature, instead of `--backend`; on a GPU the phases overlap, as its work is queued: only the
//! step's total waits for all of it. `--tensor-path`: the optimizers' tensor definition instead of
//! the fused kernels, to measure what they bring)
//! (default: resnet20, sgd_gc). ResNet-20: batch 128 of 3x32x32, 10 classes. ResNet-50: the ImageNet
//! model (torchvision layout), batch 16 of 3x224x224, 1000 classes. small-cnn: the default job's
//! model, batch 128 of 1x28x28 (Fashion-MNIST's), 10 classes. One model per process, so that
//! the peak memory is that model's. `--no-gc-share` leaves out the second run without GC (and the
//! `gc_share` line), as `scripts/bench-vs-pytorch.sh` does.
//!
//! Ends with machine-readable lines:
//! `train_step <model> <optimizer> <step_ms> <forward_ms> <backward_ms> <optimizer_ms> <peak_mib>`
//! and `gc_share <model> <fraction>`: the time GC itself adds to a step (SGD_GC's optimizer step
//! minus plain SGD's, both measured here) over the whole SGD_GC training step, and
//! `grad_check <model> <ms> <fraction>`: `check_gradients`, which gclab runs before every step
//! (outside the step's total), and its share of the step.

use std::hint::black_box;
use std::time::Instant;

use bench_support::{Args, Which, median, param_value};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use flex_kernels::conv::dispatch::{Method, with_method};
use gc_lab::models::{Init, ModelName, Net};
use gradient_centralization::{Hyperparameters, Preset, check_gradients};

struct Phases {
    forward: f64,
    backward: f64,
    step: f64,
    /// `check_gradients`, which gclab runs before every step (not in the step's total).
    check: f64,
}

/// Peak resident memory of this process in MiB (`VmHWM`).
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Train `steps` steps after `warmup` ones; median seconds of each phase.
#[allow(clippy::too_many_arguments)]
fn measure(
    device: &Device,
    name: ModelName,
    batch: usize,
    channels: usize,
    size: usize,
    classes: usize,
    optimizer: &str,
    warmup: usize,
    steps: usize,
) -> Phases {
    let device = device.clone().autodiff();
    let mut model = Net::seeded(name, Init::Torch, channels, size, classes, 0, &device);
    let hyper = Hyperparameters {
        momentum: Some(0.9),
        weight_decay: Some(5e-4),
        ..Hyperparameters::default()
    };
    let preset: Preset = optimizer.parse().expect("an optimizer name");
    let hyper = if preset.family == gradient_centralization::Family::Sgd {
        hyper
    } else {
        Hyperparameters {
            momentum: None,
            ..hyper
        }
    };
    let mut optim = preset.init(&model, &hyper).expect("the optimizer builds");
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let x = Tensor::<4>::random(
        [batch, channels, size, size],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let labels: Vec<i64> = (0..batch as i64).map(|i| i % classes as i64).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), &device);
    let (mut forward, mut backward, mut step, mut check) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    use gradient_centralization::optim::diagnostics::{
        cube_steps, fused_copies, fused_gathers, fused_steps,
    };
    let (steps0, copies0, gathers0, cube0) =
        (fused_steps(), fused_copies(), fused_gathers(), cube_steps());
    for i in 0..warmup + steps {
        if i == warmup {
            // Under scripts/profile-train-step.sh, perf samples from here on.
            bench_support::perf_enable();
        }
        let t0 = Instant::now();
        let loss = loss_fn.forward(model.forward(x.clone()), y.clone());
        // Reading the loss waits for the forward pass.
        black_box(loss.clone().into_scalar::<f32>());
        let t1 = Instant::now();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let t2 = Instant::now();
        check_gradients(&model, &grads).expect("finite gradients");
        let t3 = Instant::now();
        model = optim.step(0.01, model, grads);
        black_box(first_value(&model));
        let t4 = Instant::now();
        if i >= warmup {
            forward.push((t1 - t0).as_secs_f64());
            backward.push((t2 - t1).as_secs_f64());
            check.push((t3 - t2).as_secs_f64());
            step.push((t4 - t3).as_secs_f64());
        }
    }
    println!(
        "  {optimizer}: {} tensor steps through the fused CPU kernels ({} weight/state buffers \
         copied first (shared), {} gradients laid out densely first (strided views)), {} through \
         the GPU kernel",
        fused_steps() - steps0,
        fused_copies() - copies0,
        fused_gathers() - gathers0,
        cube_steps() - cube0
    );
    Phases {
        forward: median(forward),
        backward: median(backward),
        step: median(step),
        check: median(check),
    }
}

/// One value of the first parameter, read to wait for the optimizer.
fn first_value(model: &Net) -> f32 {
    param_value(model, Which::First).unwrap_or(0.0)
}

fn main() {
    let args = Args::from_env();
    // As `gclab` runs, unless `--default-malloc` (glibc as it comes; see `flex_kernels::malloc`).
    let malloc = flex_kernels::malloc::for_bench(args.all());
    let quick = args.flag("--quick");
    // burn's own convolution, batch norm and pooling instead of `flex_kernels`', to measure one
    // against the other.
    let im2col = args.flag("--im2col");
    let avx2 = args.flag("--avx2");
    let ops = if args.flag("--burn-ops") {
        flex_kernels::use_burn_ops(true);
        "burn's"
    } else if im2col {
        "flex_kernels, im2col only"
    } else if avx2 {
        "flex_kernels, direct kernels in AVX2"
    } else {
        "flex_kernels"
    };
    let backend = args.value("--backend").unwrap_or("flex");
    let device = match args.value("--device") {
        Some(name) => name
            .parse::<gc_lab::device::DeviceName>()
            .and_then(|name| name.device().map_err(|err| err.to_string()))
            .unwrap_or_else(|err| {
                eprintln!("train_step: --device {name}: {err}");
                std::process::exit(2);
            }),
        None => match backend {
            "flex" => Device::flex(),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)] // measured against flex, which replaces it
            "ndarray" => Device::ndarray(),
            #[cfg(not(feature = "ndarray"))]
            "ndarray" => {
                eprintln!(
                    "train_step: the ndarray backend is not built in; run \
                 `cargo bench -p gc-lab --features ndarray --bench train_step -- --backend ndarray`"
                );
                std::process::exit(2);
            }
            other => {
                eprintln!("train_step: unknown backend {other} (flex or ndarray)");
                std::process::exit(2);
            }
        },
    };
    let backend = args.value("--device").unwrap_or(backend);
    // The lab's convolution and batch norm run on flex alone.
    let ops = if device == Device::flex() {
        ops
    } else {
        "burn's"
    };
    // The tensor definition of every optimizer step instead of the fused kernels.
    let tensor_path = args.flag("--tensor-path");
    let model = if args.flag("resnet50") {
        "resnet50"
    } else if args.flag("small-cnn") {
        "small-cnn"
    } else {
        "resnet20"
    };
    let optimizer = args.value("--optimizer").unwrap_or("sgd_gc");
    let (name, batch, channels, size, classes): (ModelName, _, _, _, _) = match model {
        "resnet50" => ("imagenet-r50".parse().unwrap(), 16, 3, 224, 1000),
        "small-cnn" => ("small-cnn".parse().unwrap(), 128, 1, 28, 10),
        _ => ("resnet20".parse().unwrap(), 128, 3, 32, 10),
    };
    let (warmup, steps) = match (model, quick) {
        ("resnet50", true) => (1, 2),
        ("resnet50", false) => (1, 4),
        ("small-cnn", true) => (3, 10),
        ("small-cnn", false) => (5, 40),
        (_, true) => (2, 5),
        _ => (3, 15),
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{model}: batch {batch} of {channels}x{size}x{size}, {classes} classes, {optimizer}; {threads} threads; \
         backend {backend}; conv and batch norm {ops}; optimizer steps {}; malloc {malloc}",
        if tensor_path {
            "the tensor definition"
        } else {
            "fused"
        }
    );
    // Convolutions run on this thread (burn's autodiff runs the backward pass on the caller's).
    let measure = |optimizer: &str| {
        let run = || {
            measure(
                &device, name, batch, channels, size, classes, optimizer, warmup, steps,
            )
        };
        let run = || {
            if im2col {
                with_method(Method::Im2col, run)
            } else {
                run()
            }
        };
        let run = || {
            if avx2 {
                flex_kernels::conv::direct::with_avx2(run)
            } else {
                run()
            }
        };
        if tensor_path {
            gradient_centralization::optim::diagnostics::without_fused(run)
        } else {
            run()
        }
    };
    let p = measure(optimizer);
    // GC's own cost: the same step with the optimizer without GC.
    let base = optimizer
        .to_ascii_lowercase()
        .trim_end_matches("_gcc")
        .trim_end_matches("_gc")
        .to_string();
    let plain = (base != optimizer.to_ascii_lowercase() && !args.flag("--no-gc-share"))
        .then(|| measure(&base));
    let total = p.forward + p.backward + p.step;
    let peak = peak_mib();
    println!(
        "{:<10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "optimizer", "step ms", "fwd ms", "bwd ms", "optim ms", "peak MiB"
    );
    println!(
        "{:<10} {:>10.1} {:>10.1} {:>10.1} {:>10.2} {:>10.0}",
        optimizer,
        total * 1e3,
        p.forward * 1e3,
        p.backward * 1e3,
        p.step * 1e3,
        peak
    );
    if let Some(q) = &plain {
        println!(
            "{:<10} {:>10.1} {:>10.1} {:>10.1} {:>10.2}",
            base,
            (q.forward + q.backward + q.step) * 1e3,
            q.forward * 1e3,
            q.backward * 1e3,
            q.step * 1e3
        );
    }
    println!(
        "train_step {model} {optimizer} {:.3} {:.3} {:.3} {:.3} {peak:.1}",
        total * 1e3,
        p.forward * 1e3,
        p.backward * 1e3,
        p.step * 1e3
    );
    if let Some(q) = plain {
        println!("gc_share {model} {:.5}", (p.step - q.step).max(0.0) / total);
    }
    println!(
        "grad_check {model} {:.3} {:.5}",
        p.check * 1e3,
        p.check / total
    );
}
