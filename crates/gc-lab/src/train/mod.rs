//! One training run: config in, per-epoch metrics and a summary out, written as it goes.

pub mod checkpoint;
mod epoch;
mod evaluate;
pub mod files;
mod folder;
mod parallel;
pub mod schedule;
mod summary;
pub mod tensorboard;

pub use evaluate::top_k_correct;
pub use summary::{DataInfo, Diverged, EpochMetrics, Summary};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use burn::tensor::Device;
use gradient_centralization::{Hyperparameters, Preset};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::data::Splits;
use crate::data::augment::Augment;
use crate::data::loader::DropLast;
use crate::device::Devices;
use crate::models::{Init, ModelName, Net, pretrained};
use epoch::{Epoch, EpochEnd};
use files::write_atomic;
use schedule::Schedule;
use tensorboard::EventWriter;

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
    pub hyper: Hyperparameters,
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
    /// How the weights start (burn's defaults when a saved config does not say).
    #[serde(default)]
    pub init: Init,
    /// Which passes drop their last, partial batch (neither when a saved config does not say).
    #[serde(default)]
    pub drop_last: DropLast,
    /// Samples each batch norm normalizes together in training ("ghost" batch norm, as on several
    /// devices each with its share of the batch); `None`: the whole batch.
    #[serde(default)]
    pub bn_batch: Option<usize>,
    /// Where it trains (flex when a saved config does not say): one device, or several that
    /// train data-parallel. A checkpoint resumes on the devices that wrote it.
    #[serde(default)]
    pub device: Devices,
    /// A torchvision ResNet state dict the model starts from (`--pretrained`; see
    /// [`crate::models::pretrained`]), its head kept when the classes differ. Absent from a
    /// saved config that does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrained: Option<PathBuf>,
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

/// How a run goes about its work, beyond the numbers its [`RunConfig`] fixes.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Continue from the run folder's checkpoint (see [`run`]).
    pub resume: bool,
    /// Also write the run's scalars as TensorBoard event files into this folder: per step
    /// `train/loss`, `train/top1` (the batch's, in %) and `train/lr`, at the step counted over
    /// the whole run from 1; per epoch `epoch/*` (`metrics.csv`'s columns but the epoch's
    /// seconds) at the epoch's number. Each epoch's events reach the file just before its
    /// checkpoint; a fresh run removes the folder's earlier event files, a resumed one adds a
    /// file.
    pub tensorboard: Option<PathBuf>,
}

/// Set by Ctrl-C: the loop finishes its batch, saves what it has and stops.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// Makes the first Ctrl-C set [`STOP`] (the runs save what finished and stop) and a second one
/// exit at once (status 130).
pub fn stop_on_ctrl_c() {
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            eprintln!("\ngclab: second Ctrl-C, exiting now");
            std::process::exit(130);
        }
        eprintln!(
            "\ngclab: Ctrl-C: finishing the current batch, saving results (Ctrl-C again to quit now)"
        );
    });
}

/// Train `config` on `splits`, writing into `out_dir`: `config.json` and `plan.txt` first,
/// `metrics.csv` and `metrics.jsonl` after every epoch, `summary.json` at the end.
///
/// The initial weights depend on `config.seed` alone ([`Net::seeded`]); shuffling and augmentation
/// on (seed, epoch, batch): the same config gives the same numbers.
///
/// After every epoch the model and optimizer are checkpointed. With `resume`, a run folder holding a
/// checkpoint continues from it (its `config.json` must match `config`) and ends with the same
/// numbers as a run that was never interrupted; without a checkpoint it starts afresh. With
/// `options.tensorboard`, a resumed run starts a new event file there, from its first epoch
/// not yet done.
///
/// A run whose loss or gradient stops being finite ends there and returns its summary with
/// [`Summary::diverged`] set (the epochs before it kept): a learning-rate sweep's result, not an
/// error.
pub fn run(
    config: &RunConfig,
    splits: &Splits,
    out_dir: &Path,
    bar: &ProgressBar,
    options: &RunOptions,
) -> Result<Summary> {
    let started = Instant::now();
    let resumed = folder::prepare(config, out_dir, options.resume)?;

    let devices: Vec<Device> = config
        .device
        .open()?
        .into_iter()
        .map(Device::autodiff)
        .collect();
    let device = devices[0].clone();
    let train = Arc::new(splits.train.clone());
    let test = Arc::new(splits.test.clone());
    let normalize = Arc::new(splits.normalize.clone());
    let shape = train
        .shape(config.augment)
        .map_err(|e| anyhow!("training images: {e}"))?;
    let test_shape = test
        .shape(config.test_augment)
        .map_err(|e| anyhow!("test images: {e}"))?;
    if config.drop_last.train && train.len() < config.batch_size {
        bail!(
            "the {} training images make no whole batch of {}, and this recipe drops the last \
             partial batch as the seed does; lower --batch-size or pass --keep-last-batch",
            train.len(),
            config.batch_size
        );
    }
    if config.drop_last.test && test.len() < config.batch_size {
        bail!(
            "the {} test images make no whole batch of {}, and this recipe scores whole batches \
             only, as the seed does; lower --batch-size or pass --keep-last-batch",
            test.len(),
            config.batch_size
        );
    }
    if shape != test_shape {
        bail!(
            "training inputs would be {shape:?} but test inputs {test_shape:?}; make the test \
             transform's crop the training size"
        );
    }
    let [channels, size, _] = shape;
    let mut model = Net::seeded(
        config.model,
        config.init,
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
    } else if let Some(file) = &config.pretrained {
        let classes = train.classes();
        let (loaded, imported) = pretrained::load(model, config.model, classes, file)?;
        model = loaded;
        bar.suspend(|| {
            println!(
                "{} seed {}: starts from {}: {imported}",
                config.label,
                config.seed,
                file.display()
            )
        });
    }

    let preset: Preset = config.optimizer.parse()?;
    let gc = preset.gc_config();
    write_atomic(
        &out_dir.join("plan.txt"),
        format!("{}\n", gc.plan(&model)?).as_bytes(),
    )?;
    let mut optimizer = preset.init_with(&model, &config.hyper, &gc)?;

    let (first_epoch, mut epochs) = match &resumed {
        Some((dir, state)) => {
            optimizer = checkpoint::load_optimizer(dir, optimizer)?;
            let epochs = folder::saved_epochs(out_dir, state.epochs_done)?;
            (state.epochs_done, epochs)
        }
        None => (0, Vec::new()),
    };

    let mut events = match options.tensorboard.as_deref() {
        Some(dir) => {
            if resumed.is_none() {
                // A fresh run replaces an earlier one's events, as it does its run folder.
                tensorboard::remove_event_files(dir)?;
            }
            Some(EventWriter::create(dir)?)
        }
        None => None,
    };
    let mut interrupted = false;
    let mut diverged = None;
    let (mut trained_per_epoch, mut scored) = (0, 0);
    for index in first_epoch..config.epochs {
        let epoch = Epoch {
            config,
            index,
            shape,
            devices: &devices,
            bar,
        };
        let epoch_started = Instant::now();
        let trained = epoch.train(model, &mut optimizer, &train, &normalize, events.as_mut());
        let (trained, end) = match trained.map_err(|err| err.downcast::<Diverged>()) {
            Ok(trained) => trained,
            Err(Ok(at)) => {
                bar.suspend(|| println!("{at}; recorded as diverged"));
                // The steps up to the divergence: the curve people look at.
                if let Some(events) = events.as_mut() {
                    events.commit()?;
                }
                diverged = Some(at);
                break;
            }
            Err(Err(err)) => return Err(err),
        };
        model = trained;
        let train_seconds = epoch_started.elapsed().as_secs_f64();
        let EpochEnd::Finished {
            loss,
            top1,
            lr,
            seen,
        } = end
        else {
            interrupted = true;
            break;
        };
        let (test_loss, test_top1, test_top5, test_scored) =
            evaluate::evaluate(&model, &test, &normalize, config, &device)?;
        (trained_per_epoch, scored) = (seen, test_scored);
        let metrics = EpochMetrics {
            epoch: index + 1,
            lr,
            train_loss: loss,
            train_top1: top1,
            test_loss,
            test_top1,
            test_top5,
            seconds: epoch_started.elapsed().as_secs_f64(),
            images_per_second: seen as f64 / train_seconds,
        };
        folder::append_epoch(out_dir, &metrics)?;
        // The events before the checkpoint: a process killed between the two trains this
        // epoch again on resuming and writes its events twice (the same values), rather than
        // never.
        if let Some(events) = events.as_mut() {
            events.scalars(
                metrics.epoch as i64,
                &[
                    ("epoch/lr", metrics.lr),
                    ("epoch/train_loss", metrics.train_loss),
                    ("epoch/train_top1", metrics.train_top1),
                    ("epoch/test_loss", metrics.test_loss),
                    ("epoch/test_top1", metrics.test_top1),
                    ("epoch/test_top5", metrics.test_top5),
                    ("epoch/images_per_second", metrics.images_per_second),
                ],
            );
            events.commit()?;
        }
        checkpoint::save(out_dir, &model, &optimizer, index + 1)?;
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

    let data = DataInfo {
        name: splits.name.clone(),
        source: splits.source.clone(),
        train_images: train.len(),
        test_images: test.len(),
        trained_per_epoch,
        scored,
    };
    let seconds = started.elapsed().as_secs_f64();
    let summary = Summary::new(config, data, epochs, seconds, interrupted, diverged);
    folder::finish(out_dir, &summary)?;
    Ok(summary)
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
mod tests;
