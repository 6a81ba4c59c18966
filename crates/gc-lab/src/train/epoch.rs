//! One epoch of training: the batches in the epoch's order, a checked step each, the running
//! loss and accuracy on the progress bar.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Result;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Device;
use gradient_centralization::{check_gradients, check_lr};
use indicatif::ProgressBar;

use super::tensorboard::EventWriter;
use super::{Diverged, RunConfig, STOP, parallel, top_k_correct};
use crate::data::augment::Rng;
use crate::data::loader::{Batches, DropLast, EpochPlan};
use crate::data::{Images, Normalize};
use crate::models::Net;
use flex_kernels::batch_norm::ghost;

/// One epoch of a run.
pub(super) struct Epoch<'a> {
    pub config: &'a RunConfig,
    /// From 0.
    pub index: usize,
    /// The model's input: `[channels, height, width]`.
    pub shape: [usize; 3],
    /// Where it trains: one device, or several data-parallel (the first the main one).
    pub devices: &'a [Device],
    pub bar: &'a ProgressBar,
}

/// How an epoch ended.
pub(super) enum EpochEnd {
    /// Every batch was trained on.
    Finished {
        /// Mean training loss over the images.
        loss: f64,
        /// Training top-1 (%), measured on the fly.
        top1: f64,
        /// The learning rate of the last step.
        lr: f64,
        /// Images trained on.
        seen: usize,
    },
    /// Ctrl-C stopped it (or there was nothing to train on): the epoch does not count.
    Interrupted,
}

impl Epoch<'_> {
    /// Trains `model` on the epoch's batches of `train`, in an order that depends on the seed and
    /// the epoch alone. Stops with an error naming the step when the loss or a gradient is not
    /// finite. Adds each step's loss, accuracy and learning rate to `events`, if given.
    pub fn train(
        &self,
        mut model: Net,
        optimizer: &mut ModuleOptimizer,
        train: &Arc<Images>,
        normalize: &Arc<Normalize>,
        mut events: Option<&mut EventWriter>,
    ) -> Result<(Net, EpochEnd)> {
        let Epoch {
            config,
            index: epoch,
            shape,
            devices,
            bar,
        } = *self;
        let device = &devices[0];
        let mut order: Vec<usize> = (0..train.len()).collect();
        Rng::new(&[config.seed, epoch as u64, 0x5EED]).shuffle(&mut order);
        order.truncate(DropLast::kept(
            config.drop_last.train,
            order.len(),
            config.batch_size,
        ));
        let steps_per_epoch = order.len().div_ceil(config.batch_size);
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
        let loss_fn = CrossEntropyLossConfig::new().init(device);
        let (mut loss_sum, mut correct, mut seen, mut lr) = (0.0f64, 0usize, 0usize, config.lr);
        for (step, batch) in batches.enumerate() {
            if STOP.load(Ordering::Relaxed) {
                return Ok((model.fork(device), EpochEnd::Interrupted));
            }
            let batch = batch?;
            lr = config.schedule.lr(
                config.lr,
                epoch,
                step as f64 / steps_per_epoch as f64,
                config.epochs,
                config.warmup_epochs,
            );
            check_lr(lr)?;
            let at = StepAt {
                label: &config.label,
                seed: config.seed,
                epoch,
                step,
                steps: steps_per_epoch,
                lr,
            };
            let n = batch.labels.len();
            let (loss_value, right) = if devices.len() > 1 {
                let stepped = parallel::step(
                    model,
                    optimizer,
                    batch,
                    devices,
                    shape,
                    config.bn_batch,
                    &at,
                )?;
                model = stepped.model;
                (stepped.loss, stepped.correct)
            } else {
                let (x, y, labels) = batch.into_tensors(shape, device);
                let logits = ghost::with_group(config.bn_batch, || model.forward(x));
                let loss = loss_fn.forward(logits.clone(), y);
                let loss_value = loss.clone().into_scalar::<f32>() as f64;
                if !loss_value.is_finite() {
                    return Err(at.diverged(format!("the loss became {loss_value}")));
                }
                let right = top_k_correct(logits.inner().into_data(), &labels, 1);
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                at.check_gradients(&model, &grads)?;
                model = optimizer.step(lr, model, grads);
                (loss_value, right)
            };
            if let Some(events) = events.as_deref_mut() {
                events.scalars(
                    (epoch * steps_per_epoch + step + 1) as i64,
                    &[
                        ("train/loss", loss_value),
                        ("train/top1", 100.0 * right as f64 / n as f64),
                        ("train/lr", lr),
                    ],
                );
            }
            correct += right;
            loss_sum += loss_value * n as f64;
            seen += n;
            bar.inc(1);
            bar.set_message(format!("loss {:.4}", loss_sum / seen as f64));
        }
        // Evaluation and checkpoints read the model on the main device.
        let model = model.fork(device);
        if seen == 0 {
            return Ok((model, EpochEnd::Interrupted));
        }
        let end = EpochEnd::Finished {
            loss: loss_sum / seen as f64,
            top1: 100.0 * correct as f64 / seen as f64,
            lr,
            seen,
        };
        Ok((model, end))
    }
}

/// Where a training step is, for the messages that stop a run.
pub(super) struct StepAt<'a> {
    pub label: &'a str,
    pub seed: u64,
    pub epoch: usize,
    pub step: usize,
    pub steps: usize,
    pub lr: f64,
}

impl std::fmt::Display for StepAt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} seed {}: at epoch {}, step {} of {} (lr {:e})",
            self.label,
            self.seed,
            self.epoch + 1,
            self.step + 1,
            self.steps,
            self.lr
        )
    }
}

impl StepAt<'_> {
    /// The run diverged here: `what` stopped being finite. A [`Diverged`] error, which
    /// [`run`](super::run) records as the run's result.
    pub fn diverged(&self, what: String) -> anyhow::Error {
        Diverged {
            epoch: self.epoch + 1,
            step: self.step + 1,
            message: format!("{self}: {what}; lower the learning rate or add warmup"),
        }
        .into()
    }

    /// Stop before the optimizer takes a step on a NaN or infinite gradient, naming the
    /// parameter: the loss can be finite while a gradient overflows.
    pub fn check_gradients(&self, model: &Net, grads: &GradientsParams) -> Result<()> {
        check_gradients(model, grads)
            .map_err(|err| self.diverged(format!("{err}; the step was not taken")))
    }
}
