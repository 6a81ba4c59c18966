//! ResNets: the CIFAR variants (3x3 stem, as the seed's CIFAR-100 code) and the ImageNet ones
//! (7x7 stem and max-pool, torchvision's layout with the stride on the 3x3 convolution), with
//! BatchNorm or GroupNorm (32 groups, as the seed's, where a layer has 64 channels or more) and
//! optionally Weight Standardization on every convolution (the seed's GroupNorm and Weight
//! Standardization experiments).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, GroupNorm, GroupNormConfig, Linear, LinearConfig, PaddingConfig2d,
    Relu,
};
use burn::tensor::{Device, Tensor};
use flex_kernels::{batch_norm, conv};

pub(crate) fn conv(i: usize, o: usize, k: usize, stride: usize, device: &Device) -> Conv2d {
    conv_with_bias(i, o, k, stride, false, device)
}

/// A `k`x`k` convolution padded to keep the size (at stride 1), with or without a bias.
pub(crate) fn conv_with_bias(
    i: usize,
    o: usize,
    k: usize,
    stride: usize,
    bias: bool,
    device: &Device,
) -> Conv2d {
    let p = k / 2;
    Conv2dConfig::new([i, o], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_bias(bias)
        .init(device)
}

pub(crate) fn bn(c: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(c).init(device)
}

/// Which normalization follows each convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NormKind {
    /// BatchNorm.
    #[default]
    Batch,
    /// GroupNorm (eps 1e-5, affine) with min(32, c/2) groups: the seed's 32 from 64 channels on,
    /// two channels per group in narrower layers.
    Group,
}

/// A GroupNorm of `c` channels (eps 1e-5, affine) with min(32, c/2) groups: the seed's 32
/// (`myresnetgn.py`) in every layer of 64 channels or more, which is every layer of its ImageNet
/// ResNets; groups of two channels in narrower ones (ResNet-20's 16 and 32 channels, the small
/// CNN's), which 32 groups cannot divide.
pub(crate) fn group_norm(c: usize, device: &Device) -> GroupNorm {
    GroupNormConfig::new((c / 2).clamp(1, 32), c).init(device)
}

/// A BatchNorm or a GroupNorm.
#[derive(Module, Debug)]
pub enum Norm {
    /// BatchNorm.
    Batch(BatchNorm),
    /// GroupNorm.
    Group(GroupNorm),
}

impl Norm {
    pub(crate) fn new(kind: NormKind, c: usize, device: &Device) -> Self {
        match kind {
            NormKind::Batch => Norm::Batch(bn(c, device)),
            NormKind::Group => Norm::Group(group_norm(c, device)),
        }
    }

    pub(crate) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Norm::Batch(n) => batch_norm::forward(n, x),
            Norm::Group(n) => n.forward(x),
        }
    }

    /// `relu(self.forward(x))`; a batch norm's as one operation (see
    /// [`batch_norm::forward_relu`]).
    pub(crate) fn forward_relu(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Norm::Batch(n) => batch_norm::forward_relu(n, x),
            Norm::Group(n) => burn::tensor::activation::relu(n.forward(x)),
        }
    }

    /// `relu(self.forward(x) + residual)`, a residual block's end; a batch norm's as one
    /// operation (see [`batch_norm::forward_add_relu`]).
    pub(crate) fn forward_add_relu(&self, x: Tensor<4>, residual: Tensor<4>) -> Tensor<4> {
        match self {
            Norm::Batch(n) => batch_norm::forward_add_relu(n, x, residual),
            Norm::Group(n) => burn::tensor::activation::relu(n.forward(x) + residual),
        }
    }
}

/// `conv` applied to `x`, with its weight standardized first when `ws` is set (Weight
/// Standardization, Qiao et al., as the seed's `resnet_ws.py`): per output channel,
/// `(w − mean) / (std + 1e-5)` over the fan-in, `std` with Bessel's correction.
pub(crate) fn apply(conv: &Conv2d, x: Tensor<4>, ws: bool) -> Tensor<4> {
    if !ws {
        return conv::forward(conv, x);
    }
    let weight = conv.weight.val();
    let [o, i, kh, kw] = weight.dims();
    let fan_in = i * kh * kw;
    let flat = weight.reshape([o, fan_in]);
    let centered = flat.clone() - flat.mean_dim(1);
    let variance = centered.clone().powi_scalar(2).sum_dim(1) / (fan_in.max(2) - 1) as f64;
    let standardized = (centered / (variance.sqrt() + 1e-5)).reshape([o, i, kh, kw]);
    let options = conv::options(conv, x.dims());
    conv::conv2d(
        x,
        standardized,
        conv.bias.as_ref().map(|b| b.val()),
        options,
    )
}

/// A 1x1 projection on the shortcut when the shape changes.
#[derive(Module, Debug)]
pub struct Downsample {
    conv: Conv2d,
    bn: Norm,
}

impl Downsample {
    fn new(spec: &ResNetSpec, i: usize, o: usize, stride: usize, device: &Device) -> Option<Self> {
        (stride != 1 || i != o).then(|| Downsample {
            conv: conv_with_bias(i, o, 1, stride, spec.conv_bias, device),
            bn: Norm::new(spec.norm, o, device),
        })
    }

    fn forward(&self, x: Tensor<4>, ws: bool) -> Tensor<4> {
        self.bn.forward(apply(&self.conv, x, ws))
    }
}

/// Two 3x3 convolutions (ResNet-18/34, ResNet-20).
#[derive(Module, Debug)]
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: Norm,
    conv2: Conv2d,
    bn2: Norm,
    downsample: Option<Downsample>,
    /// The block's last ReLU, which runs inside the last norm's `forward_add_relu`: a field for
    /// the record's layout (checkpoints written before it moved there load unchanged).
    act: Relu,
    #[module(skip)]
    ws: bool,
}

/// 1x1 reduce, 3x3 (with the stride), 1x1 expand by 4 (ResNet-50/101).
#[derive(Module, Debug)]
pub struct Bottleneck {
    conv1: Conv2d,
    bn1: Norm,
    conv2: Conv2d,
    bn2: Norm,
    conv3: Conv2d,
    bn3: Norm,
    downsample: Option<Downsample>,
    /// The block's last ReLU, which runs inside the last norm's `forward_add_relu`: a field for
    /// the record's layout (checkpoints written before it moved there load unchanged).
    act: Relu,
    #[module(skip)]
    ws: bool,
}

/// A residual block.
// burn's Module derive needs the blocks inline; a block is moved once per optimizer step, where a
// few kilobytes of copy are nothing next to the convolutions.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Block {
    /// Two 3x3 convolutions.
    Basic(BasicBlock),
    /// The bottleneck.
    Bottleneck(Bottleneck),
}

impl Block {
    fn new(spec: &ResNetSpec, i: usize, width: usize, stride: usize, device: &Device) -> Self {
        let norm = |c| Norm::new(spec.norm, c, device);
        let conv = |i, o, k, stride| conv_with_bias(i, o, k, stride, spec.conv_bias, device);
        match spec.block {
            BlockKind::Basic => Block::Basic(BasicBlock {
                conv1: conv(i, width, 3, stride),
                bn1: norm(width),
                conv2: conv(width, width, 3, 1),
                bn2: norm(width),
                downsample: Downsample::new(spec, i, width, stride, device),
                act: Relu::new(),
                ws: spec.weight_standardization,
            }),
            BlockKind::Bottleneck => Block::Bottleneck(Bottleneck {
                conv1: conv(i, width, 1, 1),
                bn1: norm(width),
                conv2: conv(width, width, 3, stride),
                bn2: norm(width),
                conv3: conv(width, width * 4, 1, 1),
                bn3: norm(width * 4),
                downsample: Downsample::new(spec, i, width * 4, stride, device),
                act: Relu::new(),
                ws: spec.weight_standardization,
            }),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Block::Basic(b) => {
                let shortcut = match &b.downsample {
                    Some(d) => d.forward(x.clone(), b.ws),
                    None => x.clone(),
                };
                let y = b.bn1.forward_relu(apply(&b.conv1, x, b.ws));
                b.bn2.forward_add_relu(apply(&b.conv2, y, b.ws), shortcut)
            }
            Block::Bottleneck(b) => {
                let shortcut = match &b.downsample {
                    Some(d) => d.forward(x.clone(), b.ws),
                    None => x.clone(),
                };
                let y = b.bn1.forward_relu(apply(&b.conv1, x, b.ws));
                let y = b.bn2.forward_relu(apply(&b.conv2, y, b.ws));
                b.bn3.forward_add_relu(apply(&b.conv3, y, b.ws), shortcut)
            }
        }
    }
}

/// Which block a ResNet uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// [`BasicBlock`].
    Basic,
    /// [`Bottleneck`].
    Bottleneck,
}

/// The stem: CIFAR's single 3x3 convolution, or ImageNet's 7x7/2 convolution and 3x3/2 max-pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stem {
    /// 3x3, stride 1, no pooling.
    Cifar,
    /// 7x7, stride 2, then max-pool 3x3/2.
    ImageNet,
}

/// A ResNet's shape.
#[derive(Debug, Clone)]
pub struct ResNetSpec {
    /// The stem.
    pub stem: Stem,
    /// The block.
    pub block: BlockKind,
    /// Blocks per stage.
    pub depths: Vec<usize>,
    /// Width of each stage (before the bottleneck's expansion).
    pub widths: Vec<usize>,
    /// The normalization.
    pub norm: NormKind,
    /// Weight Standardization on every convolution.
    pub weight_standardization: bool,
    /// A bias on every convolution (the seed's ImageNet `myresnet.py` and `myresnetgn.py`).
    pub conv_bias: bool,
}

impl ResNetSpec {
    /// He et al.'s CIFAR ResNet-20: 3 stages of 3 basic blocks, widths 16/32/64 (projection
    /// shortcuts, so slightly more parameters than the paper's identity-padding variant).
    pub fn cifar_resnet20() -> Self {
        Self {
            stem: Stem::Cifar,
            block: BlockKind::Basic,
            depths: vec![3, 3, 3],
            widths: vec![16, 32, 64],
            norm: NormKind::Batch,
            weight_standardization: false,
            conv_bias: false,
        }
    }

    /// A ResNet-18/34/50/101 with the given stem.
    pub fn standard(depth: usize, stem: Stem) -> Option<Self> {
        let (block, depths) = match depth {
            18 => (BlockKind::Basic, vec![2, 2, 2, 2]),
            34 => (BlockKind::Basic, vec![3, 4, 6, 3]),
            50 => (BlockKind::Bottleneck, vec![3, 4, 6, 3]),
            101 => (BlockKind::Bottleneck, vec![3, 4, 23, 3]),
            _ => return None,
        };
        Some(Self {
            stem,
            block,
            depths,
            widths: vec![64, 128, 256, 512],
            norm: NormKind::Batch,
            weight_standardization: false,
            conv_bias: false,
        })
    }
}

/// A ResNet classifier.
#[derive(Module, Debug)]
pub struct ResNet {
    conv1: Conv2d,
    bn1: Norm,
    maxpool: Option<MaxPool2d>,
    stages: Vec<Vec<Block>>,
    avgpool: AdaptiveAvgPool2d,
    fc: Linear,
    act: Relu,
    #[module(skip)]
    ws: bool,
}

impl ResNet {
    /// Build `spec` for `channels`-channel inputs and `classes` classes.
    pub fn new(spec: &ResNetSpec, channels: usize, classes: usize, device: &Device) -> Self {
        let stem_width = spec.widths[0];
        let (conv1, maxpool) = match spec.stem {
            Stem::Cifar => (
                conv_with_bias(channels, stem_width, 3, 1, spec.conv_bias, device),
                None,
            ),
            Stem::ImageNet => (
                conv_with_bias(channels, stem_width, 7, 2, spec.conv_bias, device),
                Some(
                    MaxPool2dConfig::new([3, 3])
                        .with_strides([2, 2])
                        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                        .init(),
                ),
            ),
        };
        let expansion = match spec.block {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        };
        let mut channels_in = stem_width;
        let stages = spec
            .depths
            .iter()
            .zip(&spec.widths)
            .enumerate()
            .map(|(s, (&depth, &width))| {
                (0..depth)
                    .map(|b| {
                        let stride = if s > 0 && b == 0 { 2 } else { 1 };
                        let block = Block::new(spec, channels_in, width, stride, device);
                        channels_in = width * expansion;
                        block
                    })
                    .collect()
            })
            .collect();
        ResNet {
            conv1,
            bn1: Norm::new(spec.norm, stem_width, device),
            maxpool,
            stages,
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(channels_in, classes).init(device),
            act: Relu::new(),
            ws: spec.weight_standardization,
        }
    }

    /// Logits `[n, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = self.bn1.forward_relu(apply(&self.conv1, x, self.ws));
        if let Some(pool) = &self.maxpool {
            x = flex_kernels::pool::max_pool2d(pool, x);
        }
        for stage in &self.stages {
            for block in stage {
                x = block.forward(x);
            }
        }
        self.fc.forward(self.avgpool.forward(x).flatten(1, 3))
    }
}
