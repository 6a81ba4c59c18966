//! A small CNN sized for CPU runs on 28x28 images.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::tensor::{Device, Tensor};
use flex_kernels::{batch_norm, conv};

/// conv3x3(16)-BN-ReLU-pool, conv3x3(32)-BN-ReLU-pool, linear(64)-ReLU, linear(classes).
#[derive(Module, Debug)]
pub struct SmallCnn {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    pool: MaxPool2d,
    fc1: Linear,
    fc2: Linear,
    act: Relu,
}

impl SmallCnn {
    /// For `channels`×`size`×`size` inputs (size divisible by 4).
    pub fn new(channels: usize, size: usize, classes: usize, device: &Device) -> Self {
        let conv = |i, o| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false)
                .init(device)
        };
        let side = size / 4;
        SmallCnn {
            conv1: conv(channels, 16),
            bn1: BatchNormConfig::new(16).init(device),
            conv2: conv(16, 32),
            bn2: BatchNormConfig::new(32).init(device),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            fc1: LinearConfig::new(32 * side * side, 64).init(device),
            fc2: LinearConfig::new(64, classes).init(device),
            act: Relu::new(),
        }
    }

    /// Logits `[n, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.pool.forward(batch_norm::forward_relu(
            &self.bn1,
            conv::forward(&self.conv1, x),
        ));
        let x = self.pool.forward(batch_norm::forward_relu(
            &self.bn2,
            conv::forward(&self.conv2, x),
        ));
        let x = self.act.forward(self.fc1.forward(x.flatten(1, 3)));
        self.fc2.forward(x)
    }
}
