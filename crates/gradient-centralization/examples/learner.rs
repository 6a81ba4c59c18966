//! Train a small CNN with burn-train's `Learner` and the seed's SGD_GC.
//!
//!     cargo run --release -p gradient-centralization --example learner
//!
//! GC needs nothing from burn-train: `paper::sgd_gc` returns a plain burn `ModuleOptimizer`, which is
//! exactly what `Learner::new` takes. Checkpointing is switched on to show that the optimizer's
//! per-group state is saved like any other burn optimizer's.
//!
//! Same task as the `hand_loop` example: which quadrant of an 8x8 image holds the bright 2x2 blob
//! (with noise and a dimmer decoy blob elsewhere), generated from a fixed-seed LCG.

use std::path::{Path, PathBuf};

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::InMemDataset;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Int, Tensor, TensorData};
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::renderer::CliMetricsRenderer;
use burn::train::{
    ClassificationOutput, InferenceStep, Learner, LearnerSummary, MetricSummary,
    SupervisedTraining, TrainOutput, TrainStep,
};
use gradient_centralization::prelude::*;

mod quadrants;
use quadrants::{Cnn, SIDE, make_data};

const TRAIN: usize = 1024;
const VALID: usize = 512;
const BATCH: usize = 64;
const EPOCHS: usize = 3;
const LR: f64 = 0.02;

impl Cnn {
    fn classify(&self, batch: QuadrantBatch) -> ClassificationOutput {
        let logits = self.forward(batch.images);
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.targets.clone());
        ClassificationOutput::new(loss, logits, batch.targets)
    }
}

// burn-train drives the model through these two traits: `TrainStep` on the autodiff device (it
// returns the gradients the Learner hands to our optimizer), `InferenceStep` on the model after
// `valid()`, i.e. without autodiff and with BatchNorm's running statistics.
impl TrainStep for Cnn {
    type Input = QuadrantBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: QuadrantBatch) -> TrainOutput<ClassificationOutput> {
        let item = self.classify(batch);
        TrainOutput::new(self, item.loss.backward(), item)
    }
}

impl InferenceStep for Cnn {
    type Input = QuadrantBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: QuadrantBatch) -> ClassificationOutput {
        self.classify(batch)
    }
}

#[derive(Clone, Debug)]
struct QuadrantItem {
    image: Vec<f32>,
    /// 0..4: top-left, top-right, bottom-left, bottom-right.
    label: i64,
}

fn make_items(seed: u64, n: usize) -> Vec<QuadrantItem> {
    let (images, labels) = make_data(seed, n);
    images
        .chunks_exact(SIDE * SIDE)
        .zip(labels)
        .map(|(image, label)| QuadrantItem {
            image: image.to_vec(),
            label,
        })
        .collect()
}

#[derive(Clone, Debug)]
pub struct QuadrantBatch {
    images: Tensor<4>,
    targets: Tensor<1, Int>,
}

struct QuadrantBatcher;

impl Batcher<QuadrantItem, QuadrantBatch> for QuadrantBatcher {
    fn batch(&self, items: Vec<QuadrantItem>, device: &Device) -> QuadrantBatch {
        let n = items.len();
        let labels: Vec<i64> = items.iter().map(|item| item.label).collect();
        let images: Vec<f32> = items.into_iter().flat_map(|item| item.image).collect();
        QuadrantBatch {
            images: Tensor::from_data(TensorData::new(images, [n, 1, SIDE, SIDE]), device),
            targets: Tensor::from_data(TensorData::new(labels, [n]), device),
        }
    }
}

/// `metric`'s mean over `epoch`; NaN if burn-train logged none.
fn value(metrics: &[MetricSummary], metric: &str, epoch: usize) -> f64 {
    metrics
        .iter()
        .filter(|summary| summary.name == metric)
        .flat_map(|summary| &summary.entries)
        .find(|entry| entry.step == epoch)
        .map_or(f64::NAN, |entry| entry.value)
}

/// Every file under `dir`, relative to it, for the report of what burn-train wrote.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(relative) = path.strip_prefix(dir) {
                files.push(relative.to_path_buf());
            }
        }
    }
    files.sort();
    files
}

/// Removes the artifact directory even when training panics, so nothing is left behind.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // burn-train writes its metric logs (and here checkpoints) into this directory; the process id
    // keeps two concurrent runs apart.
    let artifacts = TempDir(std::env::temp_dir().join(format!(
        "gradient-centralization-learner-example-{}",
        std::process::id()
    )));
    let dir = artifacts.0.clone();

    let device = Device::flex().autodiff();
    device.seed(7);
    let model = Cnn::new(&device);

    let hyper = Hyperparameters {
        momentum: Some(0.9),
        weight_decay: Some(5e-4),
        ..Hyperparameters::default()
    };
    let plan = GcPlan::new(&model, Scope::ConvLinear);
    println!(
        "SGD_GC centralizes {} of {} parameters (conv and linear weights); lr {LR}",
        plan.centralized().count(),
        plan.entries().len()
    );
    let optimizer = paper::sgd_gc(&model, &hyper)?;
    // A bare f64 is burn's constant learning-rate scheduler.
    let learner = Learner::new(model, optimizer, LR);

    let train = DataLoaderBuilder::new(QuadrantBatcher)
        .batch_size(BATCH)
        .shuffle(42)
        .build(InMemDataset::new(make_items(1, TRAIN)));
    let valid = DataLoaderBuilder::new(QuadrantBatcher)
        .batch_size(BATCH)
        .build(InMemDataset::new(make_items(2, VALID)));

    let result = SupervisedTraining::new(&dir, train, valid)
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        // Explicit, so the output is the same in a terminal and in a pipe (with burn's `tui`
        // feature the default renderer would take over a terminal).
        .renderer(Box::new(CliMetricsRenderer::new()))
        // The default installs a global tracing subscriber writing to `dir/experiment.log`;
        // an example should not take over the application's logging.
        .with_application_logger(None)
        .with_default_checkpointers()
        .num_epochs(EPOCHS)
        .launch(learner);
    if let Some(error) = result.error {
        return Err(format!("training failed: {error}").into());
    }

    // The CLI renderer prints progress only; the metric values are in burn-train's logs, which
    // `LearnerSummary` reads back as one mean per epoch.
    let summary = LearnerSummary::new(&dir, &["Loss", "Accuracy"])?;
    let (train, valid) = (&summary.metrics.train, &summary.metrics.valid);
    println!("\nSGD_GC under burn-train's Learner (momentum 0.9, weight decay 5e-4, lr {LR}):");
    println!("  epoch | train loss  train acc | valid loss  valid acc");
    for epoch in 1..=summary.epochs {
        println!(
            "  {epoch:>5} |   {:.4}     {:>6.1}%  |   {:.4}     {:>6.1}%",
            value(train, "Loss", epoch),
            value(train, "Accuracy", epoch),
            value(valid, "Loss", epoch),
            value(valid, "Accuracy", epoch),
        );
    }

    let files = files_under(&dir);
    let (checkpoints, logs): (Vec<_>, Vec<_>) = files
        .iter()
        .partition(|file| file.starts_with("checkpoint"));
    println!(
        "\nburn-train wrote {} metric logs and these checkpoints (the temp directory is removed now):",
        logs.len()
    );
    for file in checkpoints {
        let bytes = std::fs::metadata(dir.join(file)).map_or(0, |meta| meta.len());
        println!("  {:<26} {bytes:>6} bytes", file.display());
    }
    Ok(())
}
