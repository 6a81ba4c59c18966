//! `optim_step --device NAME` on one of burn's GPU backends (`wgpu`, `vulkan`, `cuda`, with an
//! adapter): each seed optimizer's step over ResNet-50's parameters through the library's GPU
//! kernel and through the tensor definition (`without_fused`), interleaved, with a copy probe of
//! the device's memory bandwidth for the bound. `--launches` also counts the kernels each step
//! launches, with CubeCL's profiler, in child processes of this bench (the profiler waits for
//! every kernel, so it never runs while steps are timed).

use std::process::Command;
use std::time::Instant;

use bench_support::{Args, median, rotation, time};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use gc_lab::device::DeviceName;
use gc_lab::models::Net;
use gradient_centralization::optim::diagnostics::{cube_steps, without_fused};
use gradient_centralization::{Hyperparameters, Preset};

use super::{GradientSet, adam_hyper, resnet50, sgd_hyper, sync};

/// The optimizers timed, with the minimal bytes a fused f32 step moves per parameter.
fn cases() -> Vec<(&'static str, f64, Hyperparameters)> {
    let (sgd, adam) = (sgd_hyper(), adam_hyper());
    vec![
        ("sgd", 20.0, sgd),
        ("sgd_gc", 20.0, sgd),
        ("sgdw_gcc", 20.0, sgd),
        ("adam_gc", 28.0, adam),
        ("adamw_gcc", 28.0, adam),
        ("adagrad_gcc", 20.0, Hyperparameters::default()),
    ]
}

fn optimizer(name: &str, hyper: &Hyperparameters, model: &Net) -> ModuleOptimizer {
    name.parse::<Preset>()
        .expect("a preset name")
        .init(model, hyper)
        .expect("the optimizer builds")
}

/// Copy bandwidth of `device` in bytes/s (read + write), the best of several `x·1` over `n`
/// floats.
fn bandwidth(device: &Device, n: usize) -> f64 {
    let x = Tensor::<1>::ones([n], device);
    let (_, best) = time(2, 9, || {
        let y = x.clone().mul_scalar(1.0);
        device.sync().expect("the device runs");
        std::hint::black_box(y);
    });
    (2 * 4 * n) as f64 / best
}

/// One step through the kernel (`kernel`) or the tensor path, on gradients uploaded before.
fn step(optimizer: &mut ModuleOptimizer, model: Net, g: GradientsParams, kernel: bool) -> Net {
    if kernel {
        optimizer.step(0.01, model, g)
    } else {
        without_fused(|| optimizer.step(0.01, model, g))
    }
}

/// The bench on `name`'s device.
pub fn main(args: &Args, name: DeviceName, warmup: usize, samples: usize) {
    let device = name
        .device()
        .unwrap_or_else(|err| panic!("--device {name}: {err}"))
        .autodiff();
    if let Some(probe) = args.value("--launch-probe") {
        let steps = args.parsed::<usize>("--probe-steps").unwrap_or(1);
        return launch_probe(&device, probe, steps);
    }
    let model = resnet50(&device);
    let grads = GradientSet::new(&model, &device);
    let n = grads.params();
    let inner = device.clone().inner();
    println!(
        "ResNet-50 (torchvision layout) on {name}: {} parameter tensors, {n} parameters; copy \
         bandwidth {:.1} GB/s",
        grads.grads.len(),
        bandwidth(&inner, n) / 1e9
    );
    struct Live {
        name: &'static str,
        bytes: f64,
        kernel: bool,
        optimizer: ModuleOptimizer,
        model: Option<Net>,
        times: Vec<f64>,
        kernel_steps: usize,
    }
    let mut live: Vec<Live> = cases()
        .into_iter()
        .flat_map(|(case, bytes, hyper)| {
            [true, false].map(|kernel| Live {
                name: case,
                bytes,
                kernel,
                optimizer: optimizer(case, &hyper, &model),
                model: Some(model.clone()),
                times: Vec::new(),
                kernel_steps: 0,
            })
        })
        .collect();
    let mut bws = Vec::new();
    for round in 0..warmup + samples {
        for k in rotation(round, live.len()) {
            let l = &mut live[k];
            let m = l.model.take().expect("the model is back after each step");
            // Uploaded, uniquely owned gradients, as a backward pass leaves them, before the clock.
            let g = grads.fresh(&device, false);
            device.sync().expect("the device runs");
            let before = cube_steps();
            let start = Instant::now();
            let m = step(&mut l.optimizer, m, g, l.kernel);
            sync(&m);
            let seconds = start.elapsed().as_secs_f64();
            l.kernel_steps += cube_steps() - before;
            l.model = Some(m);
            if round >= warmup {
                l.times.push(seconds);
            }
        }
        if round >= warmup {
            bws.push(bandwidth(&inner, n));
        }
    }
    println!(
        "median of {samples} interleaved steps after {warmup}; tensor/kernel and x bound: medians \
         over the rounds (the bound: the kernel's minimal bytes at the bandwidth probed in that \
         round); kernel steps: tensors stepped by the GPU kernel"
    );
    println!(
        "{:<12} {:>10} {:>10} {:>14} {:>9} {:>13}",
        "optimizer", "kernel ms", "tensor ms", "tensor/kernel", "x bound", "kernel steps"
    );
    let steps = (warmup + samples) * grads.grads.len();
    let mut lines = Vec::new();
    for pair in live.chunks(2) {
        let [kernel, tensor] = pair else {
            unreachable!("cases come in pairs")
        };
        let ratio = median(
            tensor
                .times
                .iter()
                .zip(&kernel.times)
                .map(|(t, k)| t / k)
                .collect(),
        );
        let bound = median(
            kernel
                .times
                .iter()
                .zip(&bws)
                .map(|(t, bw)| t / (kernel.bytes * n as f64 / bw))
                .collect(),
        );
        let (k_ms, t_ms) = (
            median(kernel.times.clone()) * 1e3,
            median(tensor.times.clone()) * 1e3,
        );
        println!(
            "{:<12} {k_ms:>10.2} {t_ms:>10.2} {ratio:>14.2} {bound:>9.2} {:>12.0}%",
            kernel.name,
            100.0 * kernel.kernel_steps as f64 / steps as f64
        );
        assert_eq!(tensor.kernel_steps, 0, "the tensor path took the kernel");
        lines.push(format!(
            "optim_step_device {name} {} {k_ms:.3} {t_ms:.3} {ratio:.3} {bound:.3}",
            kernel.name
        ));
    }
    if args.flag("--launches") {
        println!("kernel launches per step (CubeCL's profiler, steps 2-3 of a child process)");
        println!("{:<12} {:>10} {:>10}", "optimizer", "kernel", "tensor");
        for (case, _, _) in cases() {
            let count = |variant: &str| {
                let per = |steps: usize| launches(name, case, variant, steps);
                (per(3) - per(1)) / 2
            };
            let (k, t) = (count("kernel"), count("tensor"));
            println!("{case:<12} {k:>10} {t:>10}");
            lines.push(format!("launches {name} {case} {k} {t}"));
        }
    }
    for line in lines {
        println!("{line}");
    }
}

/// In a child process: `steps` steps of `probe` (`NAME:kernel` or `NAME:tensor`), then waits for
/// the device and for the profiler's log.
fn launch_probe(device: &Device, probe: &str, steps: usize) {
    let (case, variant) = probe.split_once(':').expect("NAME:kernel or NAME:tensor");
    let (_, _, hyper) = cases()
        .into_iter()
        .find(|(name, _, _)| *name == case)
        .expect("a timed optimizer");
    let model = resnet50(device);
    let grads = GradientSet::new(&model, device);
    let mut optimizer = optimizer(case, &hyper, &model);
    let mut model = model;
    for _ in 0..steps {
        let g = grads.fresh(device, false);
        model = step(&mut optimizer, model, g, variant == "kernel");
    }
    sync(&model);
    // The profiler's log is written by a task of its own.
    std::thread::sleep(std::time::Duration::from_secs(1));
}

/// Kernels a child process launched in all for `steps` steps of `case`'s `variant`.
fn launches(name: DeviceName, case: &str, variant: &str, steps: usize) -> i64 {
    let log = std::env::temp_dir().join(format!(
        "optim-step-launches-{}-{case}-{variant}-{steps}.log",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&log);
    let status = Command::new(std::env::current_exe().expect("this bench's path"))
        .args(["--device", &name.to_string()])
        .args(["--launch-probe", &format!("{case}:{variant}")])
        .args(["--probe-steps", &steps.to_string()])
        .env("CUBECL_DEBUG_LOG", &log)
        .env("CUBECL_DEBUG_OPTION", "profile")
        .status()
        .expect("the bench starts itself");
    assert!(
        status.success(),
        "the launch probe of {case} {variant} failed"
    );
    let text = std::fs::read_to_string(&log).expect("the profiler's log");
    let _ = std::fs::remove_file(&log);
    // One line `| <duration> | <kernel>` per launch.
    text.lines().filter(|line| line.starts_with("| ")).count() as i64
}
