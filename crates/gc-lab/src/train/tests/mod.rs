//! Runs on tiny generated data: a run folder, resuming, stopping on NaN, top-k; data parallelism
//! in `parallel.rs`, TensorBoard event files in `tensorboard.rs`.

mod parallel;
mod tensorboard;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};

use super::epoch::StepAt;
use super::*;
use crate::data::augment::Rng;
use crate::data::{ImageSet, Images, Normalize};
use gradient_centralization::Scope;

/// 8x8 images: class 0 bright on the left half, class 1 on the right, with a little noise.
fn halves(n: usize, seed: u64) -> ImageSet {
    let mut rng = Rng::new(&[seed]);
    let mut pixels = Vec::with_capacity(n * 64);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let label = (i % 2) as u32;
        for _ in 0..8 {
            for x in 0..8 {
                let bright = (x < 4) == (label == 0);
                pixels.push(if bright { 200 } else { 20 } + rng.below(30) as u8);
            }
        }
        labels.push(label);
    }
    ImageSet {
        channels: 1,
        height: 8,
        width: 8,
        pixels,
        labels,
        classes: 2,
    }
}

fn splits() -> Splits {
    Splits {
        name: "halves".into(),
        source: "generated".into(),
        train: Images::Memory(halves(64, 1)),
        test: Images::Memory(halves(16, 2)),
        normalize: Normalize {
            mean: vec![0.4],
            std: vec![0.35],
        },
    }
}

fn config(lr: f64) -> RunConfig {
    RunConfig {
        label: "sgd_gc".into(),
        model: ModelName::SMALL_CNN,
        optimizer: "SGD_GC".into(),
        hyper: Hyperparameters {
            momentum: Some(0.9),
            ..Hyperparameters::default()
        },
        lr,
        schedule: Schedule::Constant,
        warmup_epochs: 0,
        epochs: 2,
        batch_size: 16,
        seed: 3,
        augment: Augment::None,
        test_augment: Augment::None,
        workers: 2,
        init: Init::Torch,
        drop_last: DropLast::default(),
        bn_batch: None,
        device: test_device().into(),
        pretrained: None,
    }
}

/// The device of the tests: flex, or another with `GC_TEST_DEVICE` (`wgpu`: the CPU's Vulkan
/// adapter, as the library's suite; .ci/run runs the device tests there too).
fn test_device() -> crate::device::DeviceName {
    match std::env::var("GC_TEST_DEVICE").as_deref() {
        Err(_) | Ok("flex") => crate::device::DeviceName::Flex,
        Ok("wgpu") => "vulkan:cpu".parse().unwrap(),
        Ok(other) => panic!("GC_TEST_DEVICE={other}: expected flex or wgpu"),
    }
}

/// `run` on the test images ([`splits`]) into `dir`, without a progress bar.
fn run_on_splits(cfg: &RunConfig, dir: &std::path::Path, resume: bool) -> Result<Summary> {
    let options = RunOptions {
        resume,
        tensorboard: None,
    };
    run(cfg, &splits(), dir, &ProgressBar::hidden(), &options)
}

/// Runs `cfg` for one epoch into `dir`, then, as if the process had died there (the summary
/// gone, the checkpoint kept), resumes it to `cfg.epochs`.
fn resume_after_first_epoch(cfg: &RunConfig, dir: &std::path::Path) -> Summary {
    let one = RunConfig {
        epochs: 1,
        ..cfg.clone()
    };
    run_on_splits(&one, dir, false).unwrap();
    write_atomic(
        &dir.join("config.json"),
        serde_json::to_string_pretty(cfg).unwrap().as_bytes(),
    )
    .unwrap();
    std::fs::remove_file(dir.join("summary.json")).unwrap();
    run_on_splits(cfg, dir, true).unwrap()
}

/// The test images' logits of the model a run folder checkpointed, on flex in inference mode.
fn checkpointed_logits(run_dir: &std::path::Path, model: ModelName) -> Vec<f32> {
    let device = Device::flex();
    let net = checkpoint::load_model(
        &run_dir.join("checkpoint"),
        Net::new(model, 1, 8, 2, &device),
    )
    .unwrap();
    let pixels = splits().test.memory().unwrap().pixels.clone();
    let x = Tensor::<4>::from_data(
        TensorData::new(
            pixels.iter().map(|&p| p as f32 / 255.0).collect::<Vec<_>>(),
            [16, 1, 8, 8],
        ),
        &device,
    );
    net.valid().forward(x).into_data().try_to_vec().unwrap()
}

/// An ImageFolder tree of PNG and JPEG files of several sizes: bright-left images are class
/// `a`, bright-right ones class `b`; the run decodes, crops and resizes them batch by batch.
#[test]
fn a_run_trains_on_an_image_folder() {
    let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = crate::test_dir("run-folder");
    let data = dir.join("data");
    for (split, n) in [("train", 12), ("val", 4)] {
        for (class, left) in [("a", true), ("b", false)] {
            let folder = data.join(split).join(class);
            std::fs::create_dir_all(&folder).unwrap();
            for i in 0..n {
                let (w, h) = (16 + 2 * i, 12 + i);
                let image = image::RgbImage::from_fn(w, h, |x, _| {
                    let bright = (x < w / 2) == left;
                    image::Rgb([if bright { 220 } else { 30 }; 3])
                });
                let ext = if i % 2 == 0 { "png" } else { "jpg" };
                image.save(folder.join(format!("{i}.{ext}"))).unwrap();
            }
        }
    }
    let splits = crate::data::folder::load(&data, "halves").unwrap();
    let mut config = config(0.05);
    config.augment = Augment::ResizeRandomCrop { resize: 9, crop: 8 };
    config.test_augment = Augment::ResizeCenterCrop { resize: 9, crop: 8 };
    config.epochs = 1;
    config.batch_size = 8;
    let summary = run(
        &config,
        &splits,
        &dir.join("run"),
        &ProgressBar::hidden(),
        &RunOptions::default(),
    )
    .unwrap();
    assert_eq!(summary.epochs.len(), 1);
    assert!(summary.epochs[0].train_loss.is_finite(), "{summary:?}");
    // A transform that does not resize cannot read files of any size.
    config.augment = Augment::None;
    let err = run(
        &config,
        &splits,
        &dir.join("run2"),
        &ProgressBar::hidden(),
        &RunOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("need a resizing transform"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_run_writes_its_folder_and_learns_an_easy_task() {
    let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = crate::test_dir("run-ok");
    let summary = run_on_splits(&config(0.05), &dir, false).unwrap();
    assert_eq!(summary.epochs.len(), 2);
    assert!(summary.final_test_top1 > 90.0, "{summary:?}");
    for file in [
        "config.json",
        "plan.txt",
        "metrics.csv",
        "metrics.jsonl",
        "summary.json",
    ] {
        assert!(dir.join(file).is_file(), "{file}");
    }
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3);
    // The same seed gives the same numbers.
    let again = run_on_splits(&config(0.05), &dir, false).unwrap();
    assert_eq!(again.epochs[1].train_loss, summary.epochs[1].train_loss);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Stop after epoch 1 (as Ctrl-C or a crash would), resume, and end with the numbers of a run
/// that was never stopped: same metrics, same final weights.
#[test]
fn a_resumed_run_ends_with_the_numbers_of_an_uninterrupted_one() {
    let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let mut cfg = config(0.05);
    cfg.epochs = 3;
    let straight_dir = crate::test_dir("run-straight");
    let straight = run_on_splits(&cfg, &straight_dir, false).unwrap();

    let dir = crate::test_dir("run-resumed");
    let first = RunConfig {
        epochs: 3,
        ..cfg.clone()
    };
    let resumed = resume_after_first_epoch(&first, &dir);

    assert_eq!(resumed.epochs.len(), 3);
    for (a, b) in straight.epochs.iter().zip(&resumed.epochs) {
        assert_eq!(
            (a.train_loss, a.test_loss, a.test_top1),
            (b.train_loss, b.test_loss, b.test_top1)
        );
    }
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    // The final weights agree: the same outputs on the same input, to the last bit.
    assert_eq!(
        checkpointed_logits(&straight_dir, ModelName::SMALL_CNN),
        checkpointed_logits(&dir, ModelName::SMALL_CNN)
    );

    // A different config is refused.
    let mut other = first.clone();
    other.lr = 0.1;
    let err = run_on_splits(&other, &dir, true).unwrap_err().to_string();
    assert!(err.contains("another config"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(straight_dir).unwrap();
}

/// A run whose loss stops being finite ends there, and its summary (returned and saved) says
/// where and why: a result, not an error.
#[test]
fn a_diverging_run_ends_with_a_summary_naming_epoch_and_step() {
    let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = crate::test_dir("run-nan");
    let summary = run_on_splits(&config(1e30), &dir, false).unwrap();
    let diverged = summary.diverged.clone().expect("the run diverged");
    assert_eq!(diverged.epoch, 1);
    let message = &diverged.message;
    assert!(
        message.contains(&format!(
            "sgd_gc seed 3: at epoch 1, step {}",
            diverged.step
        )) && message.contains("lower the learning rate"),
        "{message}"
    );
    assert!(summary.epochs.is_empty() && !summary.interrupted);
    let saved: Summary =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    // Without an epoch the accuracies are NaN, saved as null: they read back (they did not).
    assert_eq!(saved.diverged, summary.diverged);
    assert!(saved.final_test_top1.is_nan() && saved.best_test_top1.is_nan());
    std::fs::remove_dir_all(dir).unwrap();
}

/// A run given `--pretrained` loads it before its first step (the import itself is tested in
/// `models::pretrained`): a model that takes no torchvision file, or a file that does not fit
/// it, stops the run before any epoch, saying so.
#[test]
fn a_pretrained_file_is_loaded_when_the_run_starts() {
    let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = crate::test_dir("run-pretrained");
    let cfg = RunConfig {
        pretrained: Some(PathBuf::from("tests/fixtures/pretrained/tiny-r18.pth")),
        ..config(0.1)
    };
    let err = run_on_splits(&cfg, &dir, false).unwrap_err().to_string();
    assert!(err.contains("small-cnn does not take one"), "{err}");
    assert!(!dir.join("metrics.jsonl").exists(), "no epoch ran");
    // A torchvision ResNet reads the file: the tiny one does not fit ImageNet ResNet-18's widths.
    let cfg = RunConfig {
        model: "imagenet-r18".parse().unwrap(),
        ..cfg
    };
    let err = run_on_splits(&cfg, &dir, false).unwrap_err().to_string();
    assert!(
        err.contains("tiny-r18.pth does not fit imagenet-r18"),
        "{err}"
    );
    assert!(!dir.join("metrics.jsonl").exists(), "no epoch ran");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_non_finite_gradient_stops_the_step_naming_parameter_epoch_and_step() {
    let device = Device::flex().autodiff();
    let model = Net::seeded(ModelName::SMALL_CNN, Init::Torch, 1, 28, 10, 7, &device);
    let x = Tensor::<4>::ones([2, 1, 28, 28], &device);
    let mut grads = GradientsParams::from_grads(model.forward(x).sum().backward(), &model);
    let at = StepAt {
        label: "sgd_gc",
        seed: 1,
        epoch: 2,
        step: 40,
        steps: 94,
        lr: 0.1,
    };
    assert!(at.check_gradients(&model, &grads).is_ok());
    // Put a NaN into the gradient of one parameter in the middle of the model.
    let plan = gradient_centralization::GcPlan::new(&model, Scope::None);
    let entry = plan
        .entries()
        .iter()
        .find(|entry| entry.kind == gradient_centralization::LayerKind::Linear)
        .expect("the small CNN has a linear layer");
    let mut values = vec![1.0f32; entry.shape.iter().product()];
    values[3] = f32::NAN;
    values[5] = f32::INFINITY;
    grads.register::<2>(
        entry.id,
        Tensor::from_data(
            TensorData::new(values, entry.shape.clone()),
            &device.clone().inner(),
        ),
    );
    let err = at.check_gradients(&model, &grads).unwrap_err();
    // A divergence, which the run records as its result.
    let diverged = err.downcast_ref::<Diverged>().expect("a Diverged error");
    assert_eq!((diverged.epoch, diverged.step), (3, 41));
    let err = err.to_string();
    assert!(
        err.starts_with("sgd_gc seed 1: at epoch 3, step 41 of 94 (lr 1e-1)")
            && err.ends_with("the step was not taken; lower the learning rate or add warmup")
            && err.contains(&format!(
                "gradient of `{}` is not finite (2 NaN/Inf",
                entry.path
            )),
        "{err}"
    );
}

#[test]
fn top_k_counts_ties_for_the_label() {
    let logits = TensorData::new(vec![0.1f32, 0.9, 0.5, 0.5, 0.2, 0.3], [2, 3]);
    assert_eq!(top_k_correct(logits.clone(), &[1, 0], 1), 2);
    assert_eq!(top_k_correct(logits.clone(), &[0, 2], 1), 0);
    assert_eq!(top_k_correct(logits, &[2, 2], 2), 2);
}

/// With the seed's `drop_last`, 64 training images in batches of 12 train 60 a epoch (5 whole
/// batches) and 16 test images score 12; without it all of them; fewer training or test images
/// than a batch is an error that names the way out.
#[test]
fn dropping_the_last_batch_trains_and_scores_whole_batches() {
    let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = crate::test_dir("run-drop-last");
    let mut cfg = config(0.05);
    cfg.epochs = 1;
    cfg.batch_size = 12;
    let keep = run_on_splits(&cfg, &dir, false).unwrap();
    assert_eq!((keep.data.trained_per_epoch, keep.data.scored), (64, 16));
    cfg.drop_last = DropLast {
        train: true,
        test: true,
    };
    let dropped = run_on_splits(&cfg, &dir, false).unwrap();
    assert_eq!(
        (dropped.data.trained_per_epoch, dropped.data.scored),
        (60, 12)
    );
    for (batch, what) in [(65, "training"), (20, "test")] {
        cfg.batch_size = batch;
        let err = run_on_splits(&cfg, &dir, false).unwrap_err().to_string();
        assert!(
            err.contains(what) && err.contains("--keep-last-batch"),
            "{err}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Ghost batch norm in a ResNet-20: groups as large as the batch give the numbers of no groups,
/// bit for bit; groups of 4 in batches of 16 train differently.
#[test]
fn bn_batch_splits_the_batch_norm_statistics() {
    let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = crate::test_dir("run-bn-batch");
    let mut cfg = config(0.05);
    cfg.model = ModelName::RESNET20;
    cfg.epochs = 1;
    let mut losses = Vec::new();
    for bn_batch in [None, Some(16), Some(4)] {
        cfg.bn_batch = bn_batch;
        let summary = run_on_splits(&cfg, &dir, false).unwrap();
        losses.push(summary.epochs[0].train_loss);
    }
    assert_eq!(losses[0], losses[1]);
    assert_ne!(losses[0], losses[2]);
    std::fs::remove_dir_all(dir).unwrap();
}
