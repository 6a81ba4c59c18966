//! A small CNN sized for CPU runs on 28x28 images, with BatchNorm (the default job's), GroupNorm
//! or no normalization after each convolution.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, GroupNorm, Linear, LinearConfig, PaddingConfig2d, Relu,
};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use flex_kernels::pool::max_pool2d;
use flex_kernels::{batch_norm, conv};

use super::resnet::{NormKind, group_norm};

/// conv3x3(16)-norm-ReLU-pool, conv3x3(32)-norm-ReLU-pool, linear(64)-ReLU, linear(classes).
/// The norm is a BatchNorm (`bn1`, `bn2`), a GroupNorm (`gn1`, `gn2`, two channels per group)
/// or none; without one, each convolution has a bias.
#[derive(Module, Debug)]
pub struct SmallCnn {
    conv1: Conv2d,
    bn1: Option<BatchNorm>,
    gn1: Option<GroupNorm>,
    conv2: Conv2d,
    bn2: Option<BatchNorm>,
    gn2: Option<GroupNorm>,
    pool: MaxPool2d,
    fc1: Linear,
    fc2: Linear,
    act: Relu,
}

impl SmallCnn {
    /// For `channels`×`size`×`size` inputs (size divisible by 4), normalized by `norm` (`None`:
    /// not normalized).
    pub fn new(
        channels: usize,
        size: usize,
        classes: usize,
        norm: Option<NormKind>,
        device: &Device,
    ) -> Self {
        let conv = |i, o| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(norm.is_none())
                .init(device)
        };
        let bn = |c| (norm == Some(NormKind::Batch)).then(|| BatchNormConfig::new(c).init(device));
        let gn = |c| (norm == Some(NormKind::Group)).then(|| group_norm(c, device));
        let side = size / 4;
        SmallCnn {
            conv1: conv(channels, 16),
            bn1: bn(16),
            gn1: gn(16),
            conv2: conv(16, 32),
            bn2: bn(32),
            gn2: gn(32),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            fc1: LinearConfig::new(32 * side * side, 64).init(device),
            fc2: LinearConfig::new(64, classes).init(device),
            act: Relu::new(),
        }
    }

    /// Logits `[n, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = conv::forward(&self.conv1, x);
        let x = max_pool2d(&self.pool, norm_relu(&self.bn1, &self.gn1, x));
        let x = conv::forward(&self.conv2, x);
        let x = max_pool2d(&self.pool, norm_relu(&self.bn2, &self.gn2, x));
        let x = self.act.forward(self.fc1.forward(x.flatten(1, 3)));
        self.fc2.forward(x)
    }
}

/// `relu(norm(x))` with whichever norm the layer has; a batch norm's as one operation.
fn norm_relu(bn: &Option<BatchNorm>, gn: &Option<GroupNorm>, x: Tensor<4>) -> Tensor<4> {
    match (bn, gn) {
        (Some(bn), _) => batch_norm::forward_relu(bn, x),
        (None, Some(gn)) => relu(gn.forward(x)),
        (None, None) => relu(x),
    }
}
