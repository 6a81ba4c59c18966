//! One optimizer step over the parameters of a torchvision-layout ResNet-50 (161 tensors, 25.6M
//! parameters, burn layout), through burn's `ModuleOptimizer` as training uses it.
//!
//! Every figure is relative to numbers measured in the same run: our plain SGD (ratio to plain) and
//! a memory-bandwidth probe (ratio to the time the optimizer's minimal memory traffic needs at the
//! probed bandwidth). Run with `cargo bench --bench optim_step`; `-- --quick` takes fewer samples,
//! `-- --samples N` takes N, `-- --only NAME[,NAME..]` times those optimizers beside plain SGD,
//! `-- --backward-layout` hands convolution gradients over as burn's backward pass does (strided
//! views), `-- --default-malloc` leaves glibc's allocator as it comes (see `flex_kernels::malloc`). The
//! `*_sse2` cases run the same steps on kernels limited to the baseline x86-64 instruction set, to
//! show what AVX2 brings.
//!
//! `-- --device NAME` (`wgpu:cpu`, `vulkan`, `cuda:N`, ...; built with the lab's `wgpu` or `cuda`
//! feature) times the steps on that device instead, the library's GPU kernel against the tensor
//! definition, and `-- --launches` adds the kernel launches per step (`optim_step/device.rs`).
//!
//! A hand-rolled harness rather than criterion or divan: the ratios need every measurement of the
//! run at once, and the machine-readable lines have a fixed format. (Over 400 lines: the cases,
//! the interleaved rounds and the report read together; the shared helpers are in
//! `bench-support`.)

use std::hint::black_box;
use std::time::Instant;

use bench_support::{Args, Which, median, param_value, rotation, time};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig as BurnSgdConfig};
use burn::tensor::{Device, Distribution, Tensor};
use gc_lab::models::{ModelName, Net};
use gradient_centralization::optim::diagnostics::{fused_seconds, without_avx2};
use gradient_centralization::{Centralize, GcPlan, Hyperparameters, Preset, Scope};

#[path = "optim_step/device.rs"]
mod device;

/// The SGD family's hyperparameters in every case: momentum 0.9, L2 5e-4.
fn sgd_hyper() -> Hyperparameters {
    Hyperparameters {
        momentum: Some(0.9),
        weight_decay: Some(5e-4),
        ..Hyperparameters::default()
    }
}

/// The Adam family's: L2 5e-4, the seed's defaults otherwise.
fn adam_hyper() -> Hyperparameters {
    Hyperparameters {
        weight_decay: Some(5e-4),
        ..Hyperparameters::default()
    }
}

/// The torchvision-layout ResNet-50 whose parameters are stepped, on `device`.
fn resnet50(device: &Device) -> Net {
    Net::new(
        "imagenet-r50".parse::<ModelName>().expect("a model name"),
        3,
        224,
        1000,
        device,
    )
}

/// Gradients for every parameter, kept to hand out fresh `GradientsParams` each step.
struct GradientSet {
    grads: Vec<(burn::module::ParamId, usize, burn::tensor::TensorData)>,
}

struct Collect<'a> {
    out: &'a mut Vec<(burn::module::ParamId, usize, burn::tensor::TensorData)>,
    device: Device,
}

impl ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let shape = param.lazy_shape();
        // BatchNorm's running statistics have no gradient.
        if !param.val().is_require_grad() {
            return;
        }
        let g = Tensor::<D>::random(
            shape,
            Distribution::Normal(0.0, 1e-2),
            &self.device.clone().inner(),
        );
        self.out.push((param.id, D, g.into_data()));
    }
}

impl GradientSet {
    fn new(model: &Net, device: &Device) -> Self {
        let mut grads = Vec::new();
        model.visit(&mut Collect {
            out: &mut grads,
            device: device.clone(),
        });
        Self { grads }
    }

    fn params(&self) -> usize {
        self.grads.iter().map(|(_, _, d)| d.num_elements()).sum()
    }

    /// Fresh, uniquely owned gradients. With `swapped`, convolution weight gradients come as
    /// burn 0.22.1's backward pass hands them over: views of `[in, out, kh, kw]` buffers with the
    /// first two axes swapped.
    fn fresh(&self, device: &Device, swapped: bool) -> GradientsParams {
        let device = device.clone().inner();
        let mut params = GradientsParams::new();
        for (id, rank, data) in &self.grads {
            match rank {
                1 => params.register(*id, Tensor::<1>::from_data(data.clone(), &device)),
                2 => params.register(*id, Tensor::<2>::from_data(data.clone(), &device)),
                4 if swapped => {
                    let [o, i, h, w] = [0, 1, 2, 3].map(|k| data.shape()[k]);
                    let values = data.as_slice::<f32>().expect("f32 gradients").to_vec();
                    let stored = burn::tensor::TensorData::new(values, [i, o, h, w]);
                    let grad = Tensor::<4>::from_data(stored, &device).swap_dims(0, 1);
                    params.register(*id, grad)
                }
                4 => params.register(*id, Tensor::<4>::from_data(data.clone(), &device)),
                other => panic!("unexpected rank {other}"),
            }
        }
        params
    }
}

/// Waits for the step to have happened: reads one value of the last parameter the optimizer
/// wrote.
fn sync(model: &Net) {
    black_box(param_value(model, Which::Last));
}

/// Copy bandwidth in bytes/s (read + write counted), the best of several copies of `n` floats,
/// split over `threads` threads (the optimizers use every core too).
fn bandwidth(n: usize, threads: usize) -> f64 {
    let src = vec![1.0f32; n];
    let mut dst = vec![0.0f32; n];
    let part = n.div_ceil(threads);
    let (_, best) = time(2, 9, || {
        std::thread::scope(|scope| {
            for (d, s) in dst.chunks_mut(part).zip(src.chunks(part)) {
                scope.spawn(move || d.copy_from_slice(black_box(s)));
            }
        });
        black_box(&mut dst);
    });
    (2 * 4 * n) as f64 / best
}

struct Case {
    name: &'static str,
    /// Run the fused kernels compiled for the baseline instruction set (no AVX2).
    baseline_isa: bool,
    /// Minimal bytes moved per parameter by a fused f32 implementation.
    bytes: f64,
    optimizer: Box<dyn Fn(&Net) -> ModuleOptimizer>,
}

fn preset(name: &'static str, bytes: f64, hyper: Hyperparameters) -> Case {
    Case {
        name,
        baseline_isa: false,
        bytes,
        optimizer: Box::new(move |model| {
            name.parse::<Preset>().unwrap().init(model, &hyper).unwrap()
        }),
    }
}

/// The preset `name` without `_sse2`, its kernels limited to the baseline instruction set.
fn baseline_isa(name: &'static str, bytes: f64, hyper: Hyperparameters) -> Case {
    let preset = name.strip_suffix("_sse2").expect("a name ending in _sse2");
    Case {
        baseline_isa: true,
        ..self::preset(preset, bytes, hyper)
    }
    .named(name)
}

impl Case {
    fn named(self, name: &'static str) -> Case {
        Case { name, ..self }
    }
}

fn main() {
    let args = Args::from_env();
    let quick = args.flag("--quick");
    // `--only NAME[,NAME..]`: time those optimizers (and plain SGD, the baseline), e.g. under a
    // profiler.
    let only = args.value("--only").map(str::to_string);
    // `--backward-layout`: convolution weight gradients laid out as burn's backward pass gives
    // them (first two axes swapped) instead of densely.
    let swapped = args.flag("--backward-layout");
    let malloc = flex_kernels::malloc::for_bench(args.all());
    let (warmup, mut samples) = if quick { (1, 3) } else { (2, 15) };
    // `--samples N`: more rounds where the machine is noisy.
    if let Some(n) = args.parsed::<usize>("--samples") {
        assert!(n > 0, "--samples takes a positive whole number");
        samples = n;
    }
    let name = args
        .value("--device")
        .map(|name| name.parse::<gc_lab::device::DeviceName>())
        .transpose()
        .unwrap_or_else(|err| panic!("--device: {err}"))
        .unwrap_or_default();
    if name != gc_lab::device::DeviceName::Flex {
        return device::main(&args, name, warmup, samples);
    }
    let device = Device::flex().autodiff();
    device.seed(0);
    let model = resnet50(&device);
    let grads = GradientSet::new(&model, &device);
    let n = grads.params();
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let bw = bandwidth(n, threads);

    let (sgd, adam) = (sgd_hyper(), adam_hyper());
    let cases = vec![
        preset("sgd", 20.0, sgd),
        Case {
            name: "burn_sgd",
            baseline_isa: false,
            bytes: 20.0,
            optimizer: Box::new(|_| {
                BurnSgdConfig::new()
                    .with_momentum(Some(MomentumConfig::new().with_dampening(0.0)))
                    .with_weight_decay(Some(WeightDecayConfig::new(5e-4)))
                    .init()
            }),
        },
        preset("sgd_gc", 24.0, sgd),
        preset("sgd_gcc", 24.0, sgd),
        preset("sgdw_gcc", 24.0, sgd),
        preset("adam", 28.0, adam),
        preset("adam_gc", 32.0, adam),
        preset("adamw_gcc", 32.0, adam),
        preset("adagrad_gcc", 24.0, Hyperparameters::default()),
        // What the AVX2 kernels bring: the same steps limited to the baseline instruction set.
        baseline_isa("sgd_sse2", 20.0, sgd),
        baseline_isa("sgd_gc_sse2", 24.0, sgd),
        baseline_isa("adam_gc_sse2", 32.0, adam),
        Case {
            // GC alone: the wrapper around an optimizer that returns the weights untouched would
            // still pay burn's bookkeeping; time GC on the tensors directly instead (below).
            name: "gc_only",
            baseline_isa: false,
            bytes: 12.0,
            optimizer: Box::new(|_| unreachable!()),
        },
    ];

    println!(
        "ResNet-50 (torchvision layout): {} parameter tensors, {n} parameters; copy bandwidth {:.1} GB/s \
         ({threads} threads); convolution gradients {}; malloc {malloc}",
        grads.grads.len(),
        bw / 1e9,
        if swapped {
            "as burn's backward gives them (swapped axes)"
        } else {
            "dense"
        }
    );
    // Interleaved: each round takes one step of every optimizer, so that a slow moment of the
    // machine (other tenants, frequency) weighs on all of them alike; each round starts one
    // optimizer later than the one before, so that no optimizer always follows the same one
    // (what the step before leaves in the caches and the allocator differs).
    struct Live<'a> {
        case: &'a Case,
        optimizer: Option<ModuleOptimizer>,
        model: Option<Net>,
        times: Vec<f64>,
        fused: usize,
        /// Per timed step: seconds in the kernels' passes by GC's layout (none, rows, columns).
        passes: Vec<[f64; 3]>,
    }
    if let Some(only) = &only {
        for name in only.split(',') {
            assert!(
                cases.iter().any(|c| c.name == name),
                "--only: no optimizer named {name:?}; the names are: {}",
                cases.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
            );
        }
    }
    let mut live: Vec<Live> = cases
        .iter()
        .filter(|c| {
            only.as_deref()
                .is_none_or(|o| c.name == "sgd" || o.split(',').any(|o| c.name == o))
        })
        .map(|case| Live {
            case,
            optimizer: (case.name != "gc_only").then(|| (case.optimizer)(&model)),
            model: (case.name != "gc_only").then(|| model.clone()),
            times: Vec::new(),
            fused: 0,
            passes: Vec::new(),
        })
        .collect();
    let mut gc_pass = gc_only(&model, &grads, &device);
    let mut bw = bw;
    let mut bws = Vec::new();
    for round in 0..warmup + samples {
        for k in rotation(round, live.len()) {
            let l = &mut live[k];
            let seconds = match (&mut l.optimizer, l.model.take()) {
                (Some(optimizer), Some(m)) => {
                    // Uniquely owned gradients, as a backward pass hands them over; made before
                    // the clock starts.
                    let g = grads.fresh(&device, swapped);
                    let before = gradient_centralization::optim::diagnostics::fused_steps();
                    let spent = fused_seconds();
                    let start = Instant::now();
                    let m = if l.case.baseline_isa {
                        without_avx2(|| optimizer.step(0.01, m, g))
                    } else {
                        optimizer.step(0.01, m, g)
                    };
                    sync(&m);
                    let seconds = start.elapsed().as_secs_f64();
                    l.fused += gradient_centralization::optim::diagnostics::fused_steps() - before;
                    if round >= warmup {
                        let now = fused_seconds();
                        l.passes.push(std::array::from_fn(|k| now[k] - spent[k]));
                    }
                    l.model = Some(m);
                    seconds
                }
                _ => {
                    let start = Instant::now();
                    gc_pass();
                    start.elapsed().as_secs_f64()
                }
            };
            if round >= warmup {
                l.times.push(seconds);
            }
        }
        // The bandwidth of this round, for the bound of this round's steps.
        let round_bw = bandwidth(n, threads);
        bw = bw.max(round_bw);
        if round >= warmup {
            bws.push(round_bw);
        }
    }
    println!(
        "best copy bandwidth over the run {:.1} GB/s; median of {samples} interleaved steps after \
         {warmup}; x plain, x bound: medians over the rounds of the step's time over plain SGD's \
         and over the bound at the bandwidth probed in that round",
        bw / 1e9
    );
    println!(
        "{:<12} {:>10} {:>11} {:>9} {:>9} {:>9} {:>7}",
        "optimizer", "ms/step", "ns/param", "B/param", "x plain", "x bound", "fused"
    );
    assert_eq!(live[0].case.name, "sgd", "plain SGD comes first");
    let plain: Vec<f64> = live[0].times.clone();
    let mut lines = Vec::new();
    let mut breakdown = Vec::new();
    for l in live {
        if !l.passes.is_empty() {
            let ms = |k: usize| median(l.passes.iter().map(|p| p[k]).collect()) * 1e3;
            breakdown.push((l.case.name, [ms(0), ms(1), ms(2)]));
        }
        let ratio_plain = median(l.times.iter().zip(&plain).map(|(t, p)| t / p).collect());
        let ratio_bound = median(
            l.times
                .iter()
                .zip(&bws)
                .map(|(t, bw)| t / (l.case.bytes * n as f64 / bw))
                .collect(),
        );
        let seconds = median(l.times);
        let ns = seconds * 1e9 / n as f64;
        let steps = (warmup + samples) * grads.grads.len();
        println!(
            "{:<12} {:>10.2} {:>11.3} {:>9.0} {:>9.2} {:>9.2} {:>7}",
            l.case.name,
            seconds * 1e3,
            ns,
            l.case.bytes,
            ratio_plain,
            ratio_bound,
            if l.optimizer.is_some() {
                format!("{:.0}%", 100.0 * l.fused as f64 / steps as f64)
            } else {
                "-".into()
            }
        );
        lines.push(format!(
            "optim_step {} {ns:.4} {ratio_plain:.3} {ratio_bound:.3}",
            l.case.name
        ));
    }
    println!(
        "time in the fused passes by GC's layout (medians, ms; the rest of a step is burn's \
         bookkeeping and buffer preparation)"
    );
    println!(
        "{:<12} {:>9} {:>9} {:>9}",
        "optimizer", "no GC", "rows", "columns"
    );
    for (name, [none, rows, cols]) in breakdown {
        println!("{name:<12} {none:>9.2} {rows:>9.2} {cols:>9.2}");
    }
    for line in lines {
        println!("{line}");
    }
}

/// One pass of GC over every gradient the SGD_GC plan centralizes (out of place), as a closure.
fn gc_only(model: &Net, grads: &GradientSet, device: &Device) -> impl FnMut() {
    let plan = GcPlan::new(model, Scope::ConvLinear);
    let inner = device.clone().inner();
    let work: Vec<(Centralize, Tensor<4>, Option<Tensor<2>>)> = grads
        .grads
        .iter()
        .filter_map(|(id, rank, data)| {
            let entry = plan.entries().iter().find(|entry| entry.id == *id)?;
            let op = entry.decision.centralize()?;
            match rank {
                4 => Some((op, Tensor::<4>::from_data(data.clone(), &inner), None)),
                2 => Some((
                    op,
                    Tensor::<4>::zeros([1, 1, 1, 1], &inner),
                    Some(Tensor::<2>::from_data(data.clone(), &inner)),
                )),
                _ => None,
            }
        })
        .collect();
    move || {
        let mut last = 0.0;
        for (op, t4, t2) in &work {
            last = match t2 {
                Some(t2) => op
                    .apply(t2.clone())
                    .slice([0..1, 0..1])
                    .into_scalar::<f32>(),
                None => op
                    .apply(t4.clone())
                    .slice([0..1, 0..1, 0..1, 0..1])
                    .into_scalar::<f32>(),
            };
        }
        black_box(last);
    }
}
