//! One data-parallel training step: the batch in one share per device, a replica of the model on
//! each (burn's `Module::fork`), their forward and backward passes side by side (the first
//! device's on this thread, the others' each on a thread of its own), and one optimizer step on
//! the gradients burn sums across the devices (`MultiGradientsParams`,
//! `ModuleOptimizer::step_multi`, the engine of burn-train's multi-device strategy). GC, inside
//! the optimizer's step, centralizes that sum once.
//!
//! Each share's loss is weighted by its part of the batch, so the sum is the gradient of the whole
//! batch's mean loss, as on one device (burn-train sums the shares' mean losses' gradients
//! instead: a larger step for more devices). Batch norm normalizes each share on its own, as on
//! several GPUs and as ghost batch norm does with groups of one share; the running statistics
//! follow the first device's share alone (`ghost::without_running` on the other replicas), as
//! PyTorch's `DataParallel` keeps them. So N devices with batch N·B give the numbers of one device
//! with batch N·B and batch norm groups of B, to rounding.

use anyhow::Result;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, MultiGradientsParams};
use burn::tensor::Device;
use flex_kernels::batch_norm::ghost;

use super::epoch::StepAt;
use super::top_k_correct;
use crate::data::loader::Batch;
use crate::models::Net;

/// What one replica's pass gives.
struct Pass {
    grads: GradientsParams,
    /// The share's mean loss.
    loss: f64,
    correct: usize,
    images: usize,
}

/// What the step gives back.
pub(super) struct Stepped {
    pub model: Net,
    /// The batch's mean loss.
    pub loss: f64,
    /// Images whose top-1 prediction was right.
    pub correct: usize,
}

/// The forward and backward pass of `replica` on `share`, its loss weighted by `weight`.
fn pass(
    replica: &Net,
    share: Batch,
    weight: f64,
    shape: [usize; 3],
    device: &Device,
    bn_batch: Option<usize>,
) -> Pass {
    let (x, y, labels) = share.into_tensors(shape, device);
    let logits = ghost::with_group(bn_batch, || replica.forward(x));
    let loss = CrossEntropyLossConfig::new()
        .init(device)
        .forward(logits.clone(), y);
    let value = loss.clone().into_scalar::<f32>() as f64;
    let correct = top_k_correct(logits.inner().into_data(), &labels, 1);
    let grads = GradientsParams::from_grads(loss.mul_scalar(weight).backward(), replica);
    Pass {
        grads,
        loss: value,
        correct,
        images: labels.len(),
    }
}

/// Trains `model` on `batch` across `devices` (at least two) and takes one optimizer step at
/// `at.lr`. Stops, before the step, when a share's loss or gradient is not finite.
#[allow(clippy::too_many_arguments)]
pub(super) fn step(
    model: Net,
    optimizer: &mut ModuleOptimizer,
    batch: Batch,
    devices: &[Device],
    shape: [usize; 3],
    bn_batch: Option<usize>,
    at: &StepAt,
) -> Result<Stepped> {
    let images = batch.labels.len();
    let shares = batch.split(devices.len());
    let weight = |share: &Batch| share.labels.len() as f64 / images as f64;
    // The optimizer left each parameter on the device that summed its gradient.
    let model = model.fork(&devices[0]);
    let mut shares = shares.into_iter();
    let first = shares.next().expect("a batch has at least one image");
    let passes: Vec<Pass> = std::thread::scope(|scope| {
        let others: Vec<_> = shares
            .zip(&devices[1..])
            .map(|(share, device)| {
                let replica = model.clone().fork(device);
                let weight = weight(&share);
                scope.spawn(move || {
                    ghost::without_running(|| {
                        pass(&replica, share, weight, shape, device, bn_batch)
                    })
                })
            })
            .collect();
        let weight = weight(&first);
        let mut passes = vec![pass(&model, first, weight, shape, &devices[0], bn_batch)];
        for other in others {
            passes.push(
                other
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
        }
        passes
    });
    let mut loss = 0.0;
    let mut correct = 0;
    for (pass, device) in passes.iter().zip(devices) {
        if !pass.loss.is_finite() {
            return Err(at.diverged(format!("the loss on {device:?} became {}", pass.loss)));
        }
        at.check_gradients(&model, &pass.grads)?;
        loss += pass.loss * pass.images as f64 / images as f64;
        correct += pass.correct;
    }
    let grads = MultiGradientsParams {
        grads: passes
            .into_iter()
            .zip(devices)
            .map(|(pass, device)| (pass.grads, device.clone()))
            .collect(),
    };
    Ok(Stepped {
        model: optimizer.step_multi(at.lr, model, grads),
        loss,
        correct,
    })
}
