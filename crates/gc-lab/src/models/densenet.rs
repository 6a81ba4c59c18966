//! DenseNet-121 for 32x32 inputs, as the seed's CIFAR-100 `densenet.py`: a 3x3 stem of 64
//! channels, dense blocks of 6, 12, 24 and 16 bottleneck layers (BN-ReLU-1x1 to 128, BN-ReLU-3x3
//! to 32 new channels, put in front of the layer's input), transitions that halve the channels
//! (BN-ReLU-1x1) and the resolution (2x2 average pool), then BN-ReLU, global average pooling and
//! a linear classifier on 1024 features.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, AvgPool2d, AvgPool2dConfig};
use burn::nn::{BatchNorm, Linear, LinearConfig, Relu};
use burn::tensor::{Device, Tensor};

use super::resnet::{bn, conv};
use flex_kernels::{batch_norm, conv};

/// One bottleneck layer of a dense block.
#[derive(Module, Debug)]
pub struct DenseLayer {
    bn1: BatchNorm,
    conv1: Conv2d,
    bn2: BatchNorm,
    conv2: Conv2d,
}

/// Halves channels and resolution between dense blocks.
#[derive(Module, Debug)]
pub struct Transition {
    bn: BatchNorm,
    conv: Conv2d,
}

/// DenseNet.
#[derive(Module, Debug)]
pub struct DenseNet {
    conv1: Conv2d,
    blocks: Vec<Vec<DenseLayer>>,
    transitions: Vec<Transition>,
    bn: BatchNorm,
    pool: AvgPool2d,
    avgpool: AdaptiveAvgPool2d,
    fc: Linear,
    act: Relu,
}

impl DenseNet {
    /// DenseNet-121: growth rate 32, blocks of 6, 12, 24, 16 layers, reduction 0.5.
    pub fn densenet121(channels: usize, classes: usize, device: &Device) -> Self {
        let growth = 32;
        let mut c = 2 * growth;
        let conv1 = conv(channels, c, 3, 1, device);
        let mut blocks = Vec::new();
        let mut transitions = Vec::new();
        let layers = [6, 12, 24, 16];
        for (b, &n) in layers.iter().enumerate() {
            let block = (0..n)
                .map(|_| {
                    let layer = DenseLayer {
                        bn1: bn(c, device),
                        conv1: conv(c, 4 * growth, 1, 1, device),
                        bn2: bn(4 * growth, device),
                        conv2: conv(4 * growth, growth, 3, 1, device),
                    };
                    c += growth;
                    layer
                })
                .collect();
            blocks.push(block);
            if b + 1 < layers.len() {
                transitions.push(Transition {
                    bn: bn(c, device),
                    conv: conv(c, c / 2, 1, 1, device),
                });
                c /= 2;
            }
        }
        DenseNet {
            conv1,
            blocks,
            transitions,
            bn: bn(c, device),
            pool: AvgPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(c, classes).init(device),
            act: Relu::new(),
        }
    }

    /// Logits `[n, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = conv::forward(&self.conv1, x);
        for (b, block) in self.blocks.iter().enumerate() {
            for layer in block {
                let y = layer
                    .conv1
                    .forward(batch_norm::forward_relu(&layer.bn1, x.clone()));
                let y = conv::forward(&layer.conv2, batch_norm::forward_relu(&layer.bn2, y));
                x = Tensor::cat(vec![y, x], 1);
            }
            if let Some(t) = self.transitions.get(b) {
                x = self
                    .pool
                    .forward(conv::forward(&t.conv, batch_norm::forward_relu(&t.bn, x)));
            }
        }
        let x = self.avgpool.forward(batch_norm::forward_relu(&self.bn, x));
        self.fc.forward(x.flatten(1, 3))
    }
}
