//! ResNeXt-29 (4x64d) for 32x32 inputs, as the seed's CIFAR-100 `resnext.py`: a 1x1 stem, three
//! stages of three bottlenecks whose 3x3 convolution has 4 groups (group width 256, 512, 1024;
//! block outputs twice that), the stride on the grouped convolution, projection shortcuts where
//! the shape changes, global average pooling and a linear classifier.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig};
use burn::nn::{BatchNorm, Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::tensor::{Device, Tensor};

use super::resnet::{bn, conv};
use flex_kernels::{batch_norm, conv};

/// The 1x1 projection of a shortcut.
#[derive(Module, Debug)]
pub struct Projection {
    conv: Conv2d,
    bn: BatchNorm,
}

/// 1x1 reduce to the group width, grouped 3x3, 1x1 expand by 2.
#[derive(Module, Debug)]
pub struct ResNeXtBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Conv2d,
    bn3: BatchNorm,
    shortcut: Option<Projection>,
    /// The block's last ReLU, which runs inside `bn3`'s `forward_add_relu`: a field for the
    /// record's layout (checkpoints written before it moved there load unchanged).
    act: Relu,
}

impl ResNeXtBlock {
    fn new(i: usize, cardinality: usize, width: usize, stride: usize, device: &Device) -> Self {
        let group_width = cardinality * width;
        let out = 2 * group_width;
        ResNeXtBlock {
            conv1: conv(i, group_width, 1, 1, device),
            bn1: bn(group_width, device),
            conv2: Conv2dConfig::new([group_width, group_width], [3, 3])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_groups(cardinality)
                .with_bias(false)
                .init(device),
            bn2: bn(group_width, device),
            conv3: conv(group_width, out, 1, 1, device),
            bn3: bn(out, device),
            shortcut: (stride != 1 || i != out).then(|| Projection {
                conv: conv(i, out, 1, stride, device),
                bn: bn(out, device),
            }),
            act: Relu::new(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let shortcut = match &self.shortcut {
            Some(p) => batch_norm::forward(&p.bn, conv::forward(&p.conv, x.clone())),
            None => x.clone(),
        };
        let y = batch_norm::forward_relu(&self.bn1, conv::forward(&self.conv1, x));
        let y = batch_norm::forward_relu(&self.bn2, conv::forward(&self.conv2, y));
        batch_norm::forward_add_relu(&self.bn3, conv::forward(&self.conv3, y), shortcut)
    }
}

/// ResNeXt-29.
#[derive(Module, Debug)]
pub struct ResNeXt {
    conv1: Conv2d,
    bn1: BatchNorm,
    stages: Vec<Vec<ResNeXtBlock>>,
    avgpool: AdaptiveAvgPool2d,
    fc: Linear,
    act: Relu,
}

impl ResNeXt {
    /// ResNeXt-29 with `cardinality` groups of `width` channels in the first stage (4x64d: 4, 64).
    pub fn resnext29(
        cardinality: usize,
        width: usize,
        channels: usize,
        classes: usize,
        device: &Device,
    ) -> Self {
        let mut c = 64;
        let mut width = width;
        let stages = (0..3)
            .map(|s| {
                let stage = (0..3)
                    .map(|b| {
                        let stride = if s > 0 && b == 0 { 2 } else { 1 };
                        let block = ResNeXtBlock::new(c, cardinality, width, stride, device);
                        c = 2 * cardinality * width;
                        block
                    })
                    .collect();
                width *= 2;
                stage
            })
            .collect();
        ResNeXt {
            conv1: conv(channels, 64, 1, 1, device),
            bn1: bn(64, device),
            stages,
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(c, classes).init(device),
            act: Relu::new(),
        }
    }

    /// Logits `[n, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = batch_norm::forward_relu(&self.bn1, conv::forward(&self.conv1, x));
        for stage in &self.stages {
            for block in stage {
                x = block.forward(x);
            }
        }
        self.fc.forward(self.avgpool.forward(x).flatten(1, 3))
    }
}
