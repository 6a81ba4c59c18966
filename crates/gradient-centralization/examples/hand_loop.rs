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
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use gradient_centralization::prelude::*;

const SIDE: usize = 8;
const CLASSES: usize = 4;
const TRAIN: usize = 1024;
const TEST: usize = 512;
const BATCH: usize = 32;
const EPOCHS: usize = 8;
const LR: f64 = 0.02;

#[derive(Module, Debug)]
struct Cnn {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    act: Relu,
    pool: MaxPool2d,
    head: Linear,
}

impl Cnn {
    fn new(device: &Device) -> Self {
        let conv = |channels| {
            Conv2dConfig::new(channels, [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .init(device)
        };
        Self {
            conv1: conv([1, 8]),
            bn1: BatchNormConfig::new(8).init(device),
            conv2: conv([8, 16]),
            bn2: BatchNormConfig::new(16).init(device),
            act: Relu::new(),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            // Flatten, not global pooling: the answer is *where* the blob is, which a global
            // average would throw away. 16 channels x 2x2 cells after two poolings.
            head: LinearConfig::new(16 * 2 * 2, CLASSES).init(device),
        }
    }

    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = self.pool.forward(
            self.act
                .forward(self.bn1.forward(self.conv1.forward(images))),
        );
        let x = self
            .pool
            .forward(self.act.forward(self.bn2.forward(self.conv2.forward(x))));
        self.head.forward(x.flatten(1, 3))
    }
}

/// A 64-bit LCG (Knuth's MMIX constants): deterministic everywhere, and no `rand` dependency.
struct Lcg(u64);

impl Lcg {
    fn next_u32(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // The low bits of an LCG cycle quickly; the high ones are the usable part.
        (self.0 >> 32) as u32
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u32() as usize) % n
    }

    fn unit(&mut self) -> f32 {
        self.next_u32() as f32 / (u32::MAX as f32 + 1.0)
    }
}

/// `n` images (flattened, row-major) and their quadrant labels 0..4 (TL, TR, BL, BR).
fn make_data(seed: u64, n: usize) -> (Vec<f32>, Vec<i64>) {
    let mut rng = Lcg(seed);
    let mut images = Vec::with_capacity(n * SIDE * SIDE);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let mut image: Vec<f32> = (0..SIDE * SIDE).map(|_| rng.unit()).collect();
        let quadrant = rng.below(CLASSES);
        let decoy = (quadrant + 1 + rng.below(CLASSES - 1)) % CLASSES;
        for (q, brightness) in [(quadrant, 0.8), (decoy, 0.5)] {
            // A 2x2 blob anywhere inside the 4x4 quadrant.
            let top = (q / 2) * 4 + rng.below(3);
            let left = (q % 2) * 4 + rng.below(3);
            for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                image[(top + dy) * SIDE + left + dx] += brightness;
            }
        }
        images.extend(image);
        labels.push(quadrant as i64);
    }
    (images, labels)
}

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

    let hyper = Hyper {
        momentum: Some(0.9),
        weight_decay: Some(5e-4),
        ..Hyper::default()
    };
    let mut runs = [
        Run {
            optimizer: seed::sgd(&model, &hyper)?,
            model: model.clone(),
        },
        Run {
            optimizer: seed::sgd_gc(&model, &hyper)?,
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
