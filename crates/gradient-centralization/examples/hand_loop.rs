//! Train a small CNN with a hand-written burn loop, once with plain SGD and once with the seed's
//! SGD_GC, from the same initial weights and on the same batches.
//!
//!     cargo run --release -p gradient-centralization --example hand_loop
//!
//! The task: which quadrant of an 8x8 single-channel image holds the bright 2x2 blob? Every image
//! also has background noise and a dimmer decoy blob in another quadrant, so the network has to
//! compare brightness rather than just find "something". The data come from a fixed-seed LCG, so
//! nothing is downloaded and every run sees the same images.

use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use gradient_centralization::prelude::*;

mod quadrants;
use quadrants::{Cnn, Lcg, SIDE, make_data};

const TRAIN: usize = 1024;
const TEST: usize = 512;
const BATCH: usize = 32;
const EPOCHS: usize = 8;
const LR: f64 = 0.02;

struct Dataset {
    images: Vec<f32>,
    labels: Vec<i64>,
}

impl Dataset {
    fn new(seed: u64, n: usize) -> Self {
        let (images, labels) = make_data(seed, n);
        Self { images, labels }
    }

    fn len(&self) -> usize {
        self.labels.len()
    }

    fn batch(&self, indices: &[usize], device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
        let pixels = SIDE * SIDE;
        let images: Vec<f32> = indices
            .iter()
            .flat_map(|&i| self.images[i * pixels..(i + 1) * pixels].iter().copied())
            .collect();
        let labels: Vec<i64> = indices.iter().map(|&i| self.labels[i]).collect();
        (
            Tensor::from_data(
                TensorData::new(images, [indices.len(), 1, SIDE, SIDE]),
                device,
            ),
            Tensor::from_data(TensorData::new(labels, [indices.len()]), device),
        )
    }
}

/// Fisher-Yates with the LCG, so both optimizers see the same batches in the same order.
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = Lcg(seed);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    order
}

fn correct(logits: Tensor<2>, labels: Tensor<1, Int>) -> usize {
    let predicted: Tensor<1, Int> = logits.argmax(1).squeeze_dim(1);
    predicted.equal(labels).int().sum().into_scalar::<i64>() as usize
}

struct Run {
    model: Cnn,
    optimizer: ModuleOptimizer,
}

struct Epoch {
    loss: f64,
    train_acc: f64,
    test_acc: f64,
}

impl Run {
    fn epoch(
        &mut self,
        epoch: usize,
        loss_fn: &CrossEntropyLoss,
        data: (&Dataset, &Dataset),
        device: &Device,
    ) -> Epoch {
        let (train, test) = data;
        let (mut loss_sum, mut hits) = (0.0, 0);
        for indices in shuffled(train.len(), 1000 + epoch as u64).chunks(BATCH) {
            let (images, labels) = train.batch(indices, device);
            let logits = self.model.forward(images);
            let loss = loss_fn.forward(logits.clone(), labels.clone());
            loss_sum += loss.clone().into_scalar::<f32>() as f64 * indices.len() as f64;
            hits += correct(logits, labels);
            let grads = GradientsParams::from_grads(loss.backward(), &self.model);
            self.model = self.optimizer.step(LR, self.model.clone(), grads);
        }

        // `valid()` drops autodiff and switches BatchNorm to its running statistics.
        let model = self.model.valid();
        let inference = device.clone().inner();
        let all: Vec<usize> = (0..test.len()).collect();
        let test_hits: usize = all
            .chunks(256)
            .map(|indices| {
                let (images, labels) = test.batch(indices, &inference);
                correct(model.forward(images), labels)
            })
            .sum();

        Epoch {
            loss: loss_sum / train.len() as f64,
            train_acc: hits as f64 / train.len() as f64,
            test_acc: test_hits as f64 / test.len() as f64,
        }
    }
}

fn main() -> Result<(), GcError> {
    let device = Device::flex().autodiff();
    device.seed(7);
    let train = Dataset::new(1, TRAIN);
    let test = Dataset::new(2, TEST);

    // One initialization for both runs: `clone` shares the parameter tensors.
    let model = Cnn::new(&device);

    println!("GC plan for SGD_GC (Scope::ConvLinear):");
    println!("{}", GcPlan::new(&model, Scope::ConvLinear));

    let hyper = Hyperparameters {
        momentum: Some(0.9),
        weight_decay: Some(5e-4),
        ..Hyperparameters::default()
    };
    let mut runs = [
        Run {
            optimizer: paper::sgd(&model, &hyper)?,
            model: model.clone(),
        },
        Run {
            optimizer: paper::sgd_gc(&model, &hyper)?,
            model,
        },
    ];

    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    println!(
        "{TRAIN} train / {TEST} test images, batch {BATCH}, lr {LR}, momentum 0.9, weight decay 5e-4"
    );
    println!();
    println!("        |            SGD             |           SGD_GC");
    println!("  epoch |  loss  train acc  test acc |  loss  train acc  test acc");
    let start = Instant::now();
    for epoch in 1..=EPOCHS {
        let [sgd, gc] = runs
            .each_mut()
            .map(|run| run.epoch(epoch, &loss_fn, (&train, &test), &device));
        println!(
            "  {epoch:>5} | {:.4}   {:>6.1}%   {:>6.1}%  | {:.4}   {:>6.1}%   {:>6.1}%",
            sgd.loss,
            100.0 * sgd.train_acc,
            100.0 * sgd.test_acc,
            gc.loss,
            100.0 * gc.train_acc,
            100.0 * gc.test_acc,
        );
    }
    println!(
        "\n{} epochs x 2 optimizers in {:.1} s",
        EPOCHS,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
