//! What a run records: one line of numbers per epoch, and the summary at its end.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::RunConfig;

/// One epoch's numbers. A number that is not finite (a test pass on a model about to
/// diverge) is saved as `null` and reads back as NaN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Learning rate at the epoch's last step.
    #[serde(deserialize_with = "nan_if_null")]
    pub lr: f64,
    /// Mean training loss over the epoch's batches.
    #[serde(deserialize_with = "nan_if_null")]
    pub train_loss: f64,
    /// Training top-1 accuracy (%), measured on the fly.
    #[serde(deserialize_with = "nan_if_null")]
    pub train_top1: f64,
    /// Test loss.
    #[serde(deserialize_with = "nan_if_null")]
    pub test_loss: f64,
    /// Test top-1 accuracy (%).
    #[serde(deserialize_with = "nan_if_null")]
    pub test_top1: f64,
    /// Test top-5 accuracy (%).
    #[serde(deserialize_with = "nan_if_null")]
    pub test_top5: f64,
    /// Wall-clock seconds of the epoch (training and test).
    #[serde(deserialize_with = "nan_if_null")]
    pub seconds: f64,
    /// Training images per second.
    #[serde(deserialize_with = "nan_if_null")]
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
    /// Test top-1 after the last finished epoch (NaN without one: saved as `null`).
    #[serde(deserialize_with = "nan_if_null")]
    pub final_test_top1: f64,
    /// Best test top-1 and its epoch (NaN without an epoch, as above).
    #[serde(deserialize_with = "nan_if_null")]
    pub best_test_top1: f64,
    /// Epoch of the best test top-1.
    pub best_epoch: usize,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
    /// Whether the run stopped early on Ctrl-C.
    pub interrupted: bool,
    /// Where and why the run diverged, when it did: a result (a rate too high to train with),
    /// kept as such; `epochs` are the ones finished before.
    #[serde(default)]
    pub diverged: Option<Diverged>,
}

/// A run's loss or one of its gradients stopped being finite: the run ends there, and its
/// summary says so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diverged {
    /// The epoch, from 1.
    pub epoch: usize,
    /// The step within the epoch, from 1.
    pub step: usize,
    /// What was not finite, with the run's label, epoch, step and rate.
    pub message: String,
}

impl std::fmt::Display for Diverged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diverged {}

/// A number JSON holds as `null` when it is NaN (serde_json writes NaN so): NaN again.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
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
    /// Images each epoch trained on: all of them, or the whole batches' worth when the recipe
    /// drops the last partial batch (0 when a saved summary does not say, or without an epoch).
    #[serde(default)]
    pub trained_per_epoch: usize,
    /// Test images each evaluation scored (0 as above).
    #[serde(default)]
    pub scored: usize,
}

impl Summary {
    /// The summary of a run of `config` on `data` that finished `epochs` in `seconds`: the best
    /// epoch is the first with the highest test top-1.
    pub fn new(
        config: &RunConfig,
        data: DataInfo,
        epochs: Vec<EpochMetrics>,
        seconds: f64,
        interrupted: bool,
        diverged: Option<Diverged>,
    ) -> Summary {
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
        Summary {
            config: config.clone(),
            data,
            final_test_top1: epochs.last().map_or(f64::NAN, |m| m.test_top1),
            best_test_top1,
            best_epoch,
            epochs,
            seconds,
            interrupted,
            diverged,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test pass on a model about to diverge can give a NaN or infinite loss: serde_json saves
    /// it as null, and the line must read back (it did not: the run's metrics.jsonl and summary
    /// became unreadable, and a resumed comparison trained the run again each time).
    #[test]
    fn non_finite_metrics_read_back_as_nan() {
        let metrics = EpochMetrics {
            epoch: 1,
            lr: 0.1,
            train_loss: 2.3,
            train_top1: 10.0,
            test_loss: f64::INFINITY,
            test_top1: 10.0,
            test_top5: 50.0,
            seconds: 1.0,
            images_per_second: f64::NAN,
        };
        let line = serde_json::to_string(&metrics).unwrap();
        assert!(line.contains("\"test_loss\":null"), "{line}");
        let back: EpochMetrics = serde_json::from_str(&line).unwrap();
        assert!(back.test_loss.is_nan() && back.images_per_second.is_nan());
        assert_eq!(back.train_loss, 2.3);
    }
}
