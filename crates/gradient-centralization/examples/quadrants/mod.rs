//! What the examples share: the task (which quadrant of an 8x8 image holds the bright 2x2 blob, with
//! noise and a dimmer decoy blob elsewhere, from a fixed-seed LCG) and the small CNN that learns it.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::tensor::{Device, Tensor};

/// Images are `SIDE`×`SIDE`, one channel.
pub const SIDE: usize = 8;
/// Four quadrants: top-left, top-right, bottom-left, bottom-right.
pub const CLASSES: usize = 4;

#[derive(Module, Debug)]
pub struct Cnn {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    act: Relu,
    pool: MaxPool2d,
    head: Linear,
}

impl Cnn {
    pub fn new(device: &Device) -> Self {
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

    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
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
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next_u32(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // The low bits of an LCG cycle quickly; the high ones are the usable part.
        (self.0 >> 32) as u32
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u32() as usize) % n
    }

    pub fn unit(&mut self) -> f32 {
        self.next_u32() as f32 / (u32::MAX as f32 + 1.0)
    }
}

/// `n` images (flattened, row-major) and their quadrant labels 0..4 (TL, TR, BL, BR).
pub fn make_data(seed: u64, n: usize) -> (Vec<f32>, Vec<i64>) {
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
