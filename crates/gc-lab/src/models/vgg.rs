//! VGG-11 with BatchNorm for 32x32 inputs, as the seed's CIFAR-100 `vgg.py`: eight 3x3
//! convolutions (with bias) each followed by BatchNorm and ReLU, five 2x2 max-pools, and one
//! linear classifier on the 512 remaining features.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::tensor::{Device, Tensor};

use super::resnet::bn;
use flex_kernels::{batch_norm, conv};

/// VGG-11's layers: widths, with 0 for a max-pool.
const VGG11: [usize; 13] = [64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0];

/// A convolution, its BatchNorm, and whether a max-pool follows.
#[derive(Module, Debug)]
pub struct VggLayer {
    conv: Conv2d,
    bn: BatchNorm,
    #[module(skip)]
    pool_after: bool,
}

/// VGG-11-BN.
#[derive(Module, Debug)]
pub struct Vgg {
    features: Vec<VggLayer>,
    pool: MaxPool2d,
    classifier: Linear,
    act: Relu,
}

impl Vgg {
    /// VGG-11-BN for `channels`-channel 32x32 inputs (the five pools leave 1x1).
    pub fn vgg11_bn(channels: usize, classes: usize, device: &Device) -> Self {
        let mut features: Vec<VggLayer> = Vec::new();
        let mut c = channels;
        for &width in &VGG11 {
            if width == 0 {
                features
                    .last_mut()
                    .expect("a pool follows a convolution")
                    .pool_after = true;
                continue;
            }
            features.push(VggLayer {
                conv: Conv2dConfig::new([c, width], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init(device),
                bn: bn(width, device),
                pool_after: false,
            });
            c = width;
        }
        Vgg {
            features,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            classifier: LinearConfig::new(c, classes).init(device),
            act: Relu::new(),
        }
    }

    /// Logits `[n, classes]`; the input must be 32x32 so that the features end 1x1.
    pub fn forward(&self, mut x: Tensor<4>) -> Tensor<2> {
        for layer in &self.features {
            x = batch_norm::forward_relu(&layer.bn, conv::forward(&layer.conv, x));
            if layer.pool_after {
                x = flex_kernels::pool::max_pool2d(&self.pool, x);
            }
        }
        self.classifier.forward(x.flatten(1, 3))
    }
}
