//! The test pass: loss, top-1 and top-5 with the model in inference mode.

use std::sync::Arc;

use anyhow::{Result, anyhow};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, TensorData};

use super::RunConfig;
use crate::data::loader::{Batches, DropLast, EpochPlan};
use crate::data::{Images, Normalize};
use crate::models::Net;

/// Test loss, top-1 and top-5 (%) and the number of images scored, without autodiff and with
/// BatchNorm's running statistics.
pub fn evaluate(
    model: &Net,
    test: &Arc<Images>,
    normalize: &Arc<Normalize>,
    config: &RunConfig,
    device: &Device,
) -> Result<(f64, f64, f64, usize)> {
    let shape = test
        .shape(config.test_augment)
        .map_err(|e| anyhow!("test images: {e}"))?;
    let model = model.valid();
    let device = device.clone().inner();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    // The seed's test loaders batch by the training batch; with drop_last the images after the
    // last whole batch of that size are never scored.
    let scored = DropLast::kept(config.drop_last.test, test.len(), config.batch_size);
    let plan = EpochPlan {
        order: (0..scored).collect(),
        batch_size: config.batch_size.max(256),
        augment: config.test_augment,
        keys: [0, 0],
    };
    let (mut loss_sum, mut top1, mut top5) = (0.0f64, 0usize, 0usize);
    for batch in Batches::start(test.clone(), normalize.clone(), plan, config.workers) {
        let (x, y, labels) = batch?.into_tensors(shape, &device);
        let n = labels.len();
        let logits = model.forward(x);
        loss_sum += loss_fn.forward(logits.clone(), y).into_scalar::<f32>() as f64 * n as f64;
        let data = logits.into_data();
        top1 += top_k_correct(data.clone(), &labels, 1);
        top5 += top_k_correct(data, &labels, 5);
    }
    let n = scored.max(1) as f64;
    Ok((
        loss_sum / n,
        100.0 * top1 as f64 / n,
        100.0 * top5 as f64 / n,
        scored,
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
