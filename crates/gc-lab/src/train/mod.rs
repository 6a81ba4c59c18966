//! One training run: config in, per-epoch metrics and a summary out, written as it goes.

pub mod checkpoint;
pub mod files;
pub mod schedule;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use gradient_centralization::{Hyper, Preset, check_gradients, check_lr};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::data::Splits;
use crate::data::augment::{Augment, Rng};
use crate::data::loader::{Batch, Batches, EpochPlan};
use crate::models::{ModelName, Net};
use files::{append_line, create_dir, write_atomic};
use schedule::Schedule;

/// Everything that defines a run; saved as `config.json` beside its results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The arm's label in tables and plots (e.g. `sgd_gc`).
    pub label: String,
    /// The model.
    pub model: ModelName,
    /// The optimizer, by the library's preset name (`sgd_gc`, `AdamW_GCC`, ...).
    pub optimizer: String,
    /// Its hyperparameters (PyTorch names; unset ones take the seed's defaults).
    pub hyper: Hyper,
    /// Base learning rate.
    pub lr: f64,
    /// Schedule after warmup.
    pub schedule: Schedule,
    /// Epochs of linear warmup.
    pub warmup_epochs: usize,
    /// Epochs in all.
    pub epochs: usize,
    /// Images per batch.
    pub batch_size: usize,
    /// Seed of the model's initialization, the shuffling and the augmentation.
    pub seed: u64,
    /// Training augmentation.
    pub augment: Augment,
    /// How test images are prepared: `none` for datasets of fixed-size images, a resize and
    /// centre crop for image files.
    #[serde(default)]
    pub test_augment: Augment,
    /// Threads preparing batches.
    pub workers: usize,
}

impl RunConfig {
    /// Whether a run with `other` gives the same numbers: equal in everything but the number of
    /// loader threads, which changes no number.
    pub fn same_numbers_as(&self, other: &RunConfig) -> bool {
        let comparable = RunConfig {
            workers: self.workers,
            ..other.clone()
        };
        comparable == *self
    }
}

/// One epoch's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Learning rate at the epoch's last step.
    pub lr: f64,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Training top-1 accuracy (%), measured on the fly.
    pub train_top1: f64,
    /// Test loss.
    pub test_loss: f64,
    /// Test top-1 accuracy (%).
    pub test_top1: f64,
    /// Test top-5 accuracy (%).
    pub test_top5: f64,
    /// Wall-clock seconds of the epoch (training and test).
    pub seconds: f64,
    /// Training images per second.
    pub images_per_second: f64,
}

impl EpochMetrics {
    /// The CSV header matching [`csv_row`](Self::csv_row).
    pub const CSV_HEADER: &'static str =
        "epoch,lr,train_loss,train_top1,test_loss,test_top1,test_top5,seconds,images_per_second";

    /// One CSV row.
    pub fn csv_row(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{:.3},{:.1}",
            self.epoch,
            self.lr,
            self.train_loss,
            self.train_top1,
            self.test_loss,
            self.test_top1,
            self.test_top5,
            self.seconds,
            self.images_per_second
        )
    }
}

/// The outcome of a run; saved as `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The run's config.
    pub config: RunConfig,
    /// The data: name, where it was read from, and the number of images.
    pub data: DataInfo,
    /// Every finished epoch.
    pub epochs: Vec<EpochMetrics>,
    /// Test top-1 after the last finished epoch.
    pub final_test_top1: f64,
    /// Best test top-1 and its epoch.
    pub best_test_top1: f64,
    /// Epoch of the best test top-1.
    pub best_epoch: usize,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
    /// Whether the run stopped early on Ctrl-C.
    pub interrupted: bool,
}

/// Which data a run saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataInfo {
    /// The dataset's name.
    pub name: String,
    /// The folder it was read from.
    pub source: PathBuf,
    /// Training images.
    pub train_images: usize,
    /// Test images.
    pub test_images: usize,
}

/// Where a training step is, for the messages that stop a run.
struct StepAt<'a> {
    label: &'a str,
    epoch: usize,
    step: usize,
    steps: usize,
    lr: f64,
}

impl std::fmt::Display for StepAt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: at epoch {}, step {} of {} (lr {:e})",
            self.label,
            self.epoch + 1,
            self.step + 1,
            self.steps,
            self.lr
        )
    }
}

impl StepAt<'_> {
    /// Stop before the optimizer takes a step on a NaN or infinite gradient, naming the
    /// parameter: the loss can be finite while a gradient overflows.
    fn check_gradients(&self, model: &Net, grads: &GradientsParams) -> Result<()> {
        check_gradients(model, grads)
            .map_err(|err| anyhow!("{self}: {err}; the step was not taken"))
    }
}

/// Set by Ctrl-C: the loop finishes its batch, saves what it has and stops.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// Train `config` on `splits`, writing into `out_dir`: `config.json` and `plan.txt` first,
/// `metrics.csv` and `metrics.jsonl` after every epoch, `summary.json` at the end.
///
/// The initial weights depend on `config.seed` alone ([`Net::seeded`]); shuffling and augmentation
/// on (seed, epoch, batch): the same config gives the same numbers.
///
/// After every epoch the model and optimizer are checkpointed. With `resume`, a run folder holding a
/// checkpoint continues from it (its `config.json` must match `config`) and ends with the same
/// numbers as a run that was never interrupted; without a checkpoint it starts afresh.
pub fn run(
    config: &RunConfig,
    splits: &Splits,
    out_dir: &Path,
    bar: &ProgressBar,
    resume: bool,
) -> Result<Summary> {
    let started = Instant::now();
    create_dir(out_dir)?;
    let resumed = if resume {
        checkpoint::find(out_dir)
    } else {
        None
    };
    match &resumed {
        Some(_) => check_same_config(config, &out_dir.join("config.json"))?,
        None => {
            for stale in ["metrics.csv", "metrics.jsonl", "summary.json"] {
                let _ = std::fs::remove_file(out_dir.join(stale));
            }
            for stale in ["checkpoint", "checkpoint.old", "checkpoint.tmp"] {
                let _ = std::fs::remove_dir_all(out_dir.join(stale));
            }
            write_atomic(
                &out_dir.join("config.json"),
                serde_json::to_string_pretty(config)?.as_bytes(),
            )?;
        }
    }

    let device = Device::flex().autodiff();
    let train = Arc::new(splits.train.clone());
    let test = Arc::new(splits.test.clone());
    let normalize = Arc::new(splits.normalize.clone());
    let shape = train
        .shape(config.augment)
        .map_err(|e| anyhow!("training images: {e}"))?;
    let test_shape = test
        .shape(config.test_augment)
        .map_err(|e| anyhow!("test images: {e}"))?;
    if shape != test_shape {
        bail!(
            "training inputs would be {shape:?} but test inputs {test_shape:?}; make the test \
             transform's crop the training size"
        );
    }
    let [channels, size, _] = shape;
    let mut model = Net::seeded(
        config.model,
        channels,
        size,
        train.classes(),
        config.seed,
        &device,
    );
    if let Some((dir, _)) = &resumed {
        // The optimizer finds parameters by id, or by path where loading replaced the id, so it
        // may be built before or after this.
        model = checkpoint::load_model(dir, model)?;
    }

    let preset: Preset = config.optimizer.parse()?;
    let gc = preset.gc_config();
    write_atomic(
        &out_dir.join("plan.txt"),
        format!("{}\n", gc.plan(&model)?).as_bytes(),
    )?;
    let mut optimizer = preset.init_with(&model, &config.hyper, &gc)?;
    let loss_fn = CrossEntropyLossConfig::new().init(&device);

    let steps_per_epoch = train.len().div_ceil(config.batch_size);
    let mut epochs = Vec::new();
    let mut interrupted = false;
    let first_epoch = match &resumed {
        Some((dir, state)) => {
            optimizer = checkpoint::load_optimizer(dir, optimizer)?;
            epochs = saved_epochs(out_dir, state.epochs_done)?;
            state.epochs_done
        }
        None => {
            append_line(&out_dir.join("metrics.csv"), EpochMetrics::CSV_HEADER)?;
            0
        }
    };

    for epoch in first_epoch..config.epochs {
        let epoch_started = Instant::now();
        let mut order: Vec<usize> = (0..train.len()).collect();
        Rng::new(&[config.seed, epoch as u64, 0x5EED]).shuffle(&mut order);
        let batches = Batches::start(
            train.clone(),
            normalize.clone(),
            EpochPlan {
                order,
                batch_size: config.batch_size,
                augment: config.augment,
                keys: [config.seed, epoch as u64],
            },
            config.workers,
        );
        bar.set_length(steps_per_epoch as u64);
        bar.set_position(0);
        bar.set_prefix(format!(
            "{} epoch {}/{}",
            config.label,
            epoch + 1,
            config.epochs
        ));
        let (mut loss_sum, mut correct, mut seen, mut lr) = (0.0f64, 0usize, 0usize, config.lr);
        for (step, batch) in batches.enumerate() {
            if STOP.load(Ordering::Relaxed) {
                interrupted = true;
                break;
            }
            let Batch { inputs, labels } = batch?;
            lr = config.schedule.lr(
                config.lr,
                epoch,
                step as f64 / steps_per_epoch as f64,
                config.epochs,
                config.warmup_epochs,
            );
            check_lr(lr)?;
            let n = labels.len();
            let x = Tensor::<4>::from_data(
                TensorData::new(inputs, [n, channels, size, shape[2]]),
                &device,
            );
            let y = Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [n]), &device);
            let logits = model.forward(x);
            let loss = loss_fn.forward(logits.clone(), y);
            let loss_value = loss.clone().into_scalar::<f32>() as f64;
            let at = StepAt {
                label: &config.label,
                epoch,
                step,
                steps: steps_per_epoch,
                lr,
            };
            if !loss_value.is_finite() {
                bail!("{at}: the loss became {loss_value}; lower the learning rate or add warmup");
            }
            correct += top_k_correct(logits.inner().into_data(), &labels, 1);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            at.check_gradients(&model, &grads)?;
            model = optimizer.step(lr, model, grads);
            loss_sum += loss_value * n as f64;
            seen += n;
            bar.inc(1);
            bar.set_message(format!("loss {:.4}", loss_sum / seen as f64));
        }
        if interrupted || seen == 0 {
            interrupted = true;
            break;
        }
        let train_seconds = epoch_started.elapsed().as_secs_f64();
        let (test_loss, test_top1, test_top5) =
            evaluate(&model, &test, &normalize, config, &device)?;
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            lr,
            train_loss: loss_sum / seen as f64,
            train_top1: 100.0 * correct as f64 / seen as f64,
            test_loss,
            test_top1,
            test_top5,
            seconds: epoch_started.elapsed().as_secs_f64(),
            images_per_second: seen as f64 / train_seconds,
        };
        append_line(&out_dir.join("metrics.csv"), &metrics.csv_row())?;
        append_line(
            &out_dir.join("metrics.jsonl"),
            &serde_json::to_string(&metrics)?,
        )?;
        checkpoint::save(out_dir, &model, &optimizer, epoch + 1)?;
        // `suspend` prints whether or not a terminal shows the bar (logs get the lines too).
        bar.suspend(|| {
            println!(
                "{:<12} seed {} epoch {:>3}  train loss {:.4}  test loss {:.4}  test top-1 {:6.2}%  {:6.0} img/s",
                config.label,
                config.seed,
                metrics.epoch,
                metrics.train_loss,
                test_loss,
                test_top1,
                metrics.images_per_second
            )
        });
        epochs.push(metrics);
    }

    let (best_epoch, best_test_top1) =
        epochs
            .iter()
            .map(|m| (m.epoch, m.test_top1))
            .fold((0, f64::NAN), |best, m| {
                if best.1.is_nan() || m.1 > best.1 {
                    m
                } else {
                    best
                }
            });
    let summary = Summary {
        config: config.clone(),
        data: DataInfo {
            name: splits.name.clone(),
            source: splits.source.clone(),
            train_images: train.len(),
            test_images: test.len(),
        },
        final_test_top1: epochs.last().map_or(f64::NAN, |m| m.test_top1),
        best_test_top1,
        best_epoch,
        epochs,
        seconds: started.elapsed().as_secs_f64(),
        interrupted,
    };
    write_atomic(
        &out_dir.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )
    .context("writing the run's summary")?;
    Ok(summary)
}

/// A run folder may only be resumed with the config it was started with.
fn check_same_config(config: &RunConfig, path: &Path) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let saved: RunConfig = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a run config", path.display()))?;
    if !config.same_numbers_as(&saved) {
        bail!(
            "cannot resume {}: it was started with another config ({}); give another --out to start \
             a new run",
            path.display(),
            serde_json::to_string(&saved)?
        );
    }
    Ok(())
}

/// The metrics of the first `done` epochs, from `metrics.jsonl`; both metric files are rewritten to
/// hold exactly those (an interrupted epoch may have been logged after the last checkpoint).
fn saved_epochs(out_dir: &Path, done: usize) -> Result<Vec<EpochMetrics>> {
    let path = out_dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let epochs: Vec<EpochMetrics> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is corrupt", path.display()))?;
    if epochs.len() < done {
        bail!(
            "{} holds {} epochs but the checkpoint is after epoch {done}",
            path.display(),
            epochs.len()
        );
    }
    let epochs: Vec<EpochMetrics> = epochs.into_iter().take(done).collect();
    let mut jsonl = String::new();
    let mut csv = format!("{}\n", EpochMetrics::CSV_HEADER);
    for m in &epochs {
        jsonl.push_str(&serde_json::to_string(m)?);
        jsonl.push('\n');
        csv.push_str(&m.csv_row());
        csv.push('\n');
    }
    write_atomic(&path, jsonl.as_bytes())?;
    write_atomic(&out_dir.join("metrics.csv"), csv.as_bytes())?;
    Ok(epochs)
}

/// Test loss, top-1 and top-5 (%), without autodiff and with BatchNorm's running statistics.
fn evaluate(
    model: &Net,
    test: &Arc<crate::data::Images>,
    normalize: &Arc<crate::data::Normalize>,
    config: &RunConfig,
    device: &Device,
) -> Result<(f64, f64, f64)> {
    let [channels, height, width] = test
        .shape(config.test_augment)
        .map_err(|e| anyhow!("test images: {e}"))?;
    let model = model.valid();
    let device = device.clone().inner();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let plan = EpochPlan {
        order: (0..test.len()).collect(),
        batch_size: config.batch_size.max(256),
        augment: config.test_augment,
        keys: [0, 0],
    };
    let (mut loss_sum, mut top1, mut top5) = (0.0f64, 0usize, 0usize);
    for batch in Batches::start(test.clone(), normalize.clone(), plan, config.workers) {
        let Batch { inputs, labels } = batch?;
        let n = labels.len();
        let x = Tensor::<4>::from_data(
            TensorData::new(inputs, [n, channels, height, width]),
            &device,
        );
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [n]), &device);
        let logits = model.forward(x);
        loss_sum += loss_fn.forward(logits.clone(), y).into_scalar::<f32>() as f64 * n as f64;
        let data = logits.into_data();
        top1 += top_k_correct(data.clone(), &labels, 1);
        top5 += top_k_correct(data, &labels, 5);
    }
    let n = test.len().max(1) as f64;
    Ok((
        loss_sum / n,
        100.0 * top1 as f64 / n,
        100.0 * top5 as f64 / n,
    ))
}

/// How many rows of `logits` (`[n, classes]`) rank their label among the top `k`.
pub fn top_k_correct(logits: TensorData, labels: &[i64], k: usize) -> usize {
    let classes = logits.shape()[1];
    let values: Vec<f32> = logits.convert::<f32>().try_to_vec().expect("float logits");
    values
        .chunks_exact(classes)
        .zip(labels)
        .filter(|(row, label)| {
            let target = row[**label as usize];
            // Rank = how many classes score strictly higher; ties count in the label's favour.
            row.iter().filter(|&&v| v > target).count() < k
        })
        .count()
}

/// A progress bar in the lab's style: prefix, bar, position, throughput, ETA, message.
pub fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>22} [{bar:30}] {pos:>5}/{len:5} {per_sec:>12} eta {eta:>4} {msg}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
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
            model: ModelName::SmallCnn,
            optimizer: "SGD_GC".into(),
            hyper: Hyper {
                momentum: Some(0.9),
                ..Hyper::default()
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
        }
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
            false,
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
            false,
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
        let summary = run(
            &config(0.05),
            &splits(),
            &dir,
            &ProgressBar::hidden(),
            false,
        )
        .unwrap();
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
        let again = run(
            &config(0.05),
            &splits(),
            &dir,
            &ProgressBar::hidden(),
            false,
        )
        .unwrap();
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
        let straight = run(
            &cfg,
            &splits(),
            &straight_dir,
            &ProgressBar::hidden(),
            false,
        )
        .unwrap();

        let dir = crate::test_dir("run-resumed");
        let first = RunConfig {
            epochs: 3,
            ..cfg.clone()
        };
        // Run one epoch, then pretend the process died: drop the summary, keep the checkpoint.
        let mut one = first.clone();
        one.epochs = 1;
        run(&one, &splits(), &dir, &ProgressBar::hidden(), false).unwrap();
        write_atomic(
            &dir.join("config.json"),
            serde_json::to_string_pretty(&first).unwrap().as_bytes(),
        )
        .unwrap();
        std::fs::remove_file(dir.join("summary.json")).unwrap();
        let resumed = run(&first, &splits(), &dir, &ProgressBar::hidden(), true).unwrap();

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
        let device = Device::flex();
        let fresh = || Net::new(ModelName::SmallCnn, 1, 8, 2, &device);
        let a = checkpoint::load_model(&straight_dir.join("checkpoint"), fresh()).unwrap();
        let b = checkpoint::load_model(&dir.join("checkpoint"), fresh()).unwrap();
        let x = Tensor::<4>::from_data(
            TensorData::new(
                splits()
                    .test
                    .memory()
                    .unwrap()
                    .pixels
                    .iter()
                    .map(|&p| p as f32 / 255.0)
                    .collect::<Vec<_>>(),
                [16, 1, 8, 8],
            ),
            &device,
        );
        let (ya, yb) = (
            a.valid().forward(x.clone()).into_data(),
            b.valid().forward(x).into_data(),
        );
        assert_eq!(
            ya.try_to_vec::<f32>().unwrap(),
            yb.try_to_vec::<f32>().unwrap()
        );

        // A different config is refused.
        let mut other = first.clone();
        other.lr = 0.1;
        let err = run(&other, &splits(), &dir, &ProgressBar::hidden(), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("another config"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
        std::fs::remove_dir_all(straight_dir).unwrap();
    }

    #[test]
    fn a_diverging_loss_stops_the_run_naming_epoch_and_step() {
        let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
        let dir = crate::test_dir("run-nan");
        let err = run(
            &config(1e30),
            &splits(),
            &dir,
            &ProgressBar::hidden(),
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("at epoch 1, step") && err.contains("lower the learning rate"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_non_finite_gradient_stops_the_step_naming_parameter_epoch_and_step() {
        let device = Device::flex().autodiff();
        let model = Net::seeded(ModelName::SmallCnn, 1, 28, 10, 7, &device);
        let x = Tensor::<4>::ones([2, 1, 28, 28], &device);
        let mut grads = GradientsParams::from_grads(model.forward(x).sum().backward(), &model);
        let at = StepAt {
            label: "sgd_gc seed 1",
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
        let err = at.check_gradients(&model, &grads).unwrap_err().to_string();
        assert!(
            err.starts_with("sgd_gc seed 1: at epoch 3, step 41 of 94 (lr 1e-1)")
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
}
