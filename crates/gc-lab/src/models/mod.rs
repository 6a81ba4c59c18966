//! The models the lab trains, by name.

pub mod densenet;
pub mod init;
pub mod pretrained;
pub mod resnet;
pub mod resnext;
pub mod small;
pub mod vgg;

use std::fmt;
use std::str::FromStr;

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use densenet::DenseNet;
pub use init::Init;
use resnet::{NormKind, ResNet, ResNetSpec, Stem};
use resnext::ResNeXt;
use small::SmallCnn;
use vgg::Vgg;

/// A model the lab can build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum ModelName {
    /// [`SmallCnn`]: two conv layers and two linear layers, for CPU runs on 28x28 images, with
    /// BatchNorm (`small-cnn`), GroupNorm (`small-cnn-gn`) or no normalization
    /// (`small-cnn-nonorm`, `None`).
    SmallCnn {
        /// The normalization after each convolution.
        norm: Option<NormKind>,
    },
    /// He et al.'s CIFAR ResNet-20, with BatchNorm (`resnet20`) or GroupNorm (`resnet20-gn`).
    ResNet20 {
        /// The normalization after each convolution.
        norm: NormKind,
    },
    /// The seed's CIFAR ResNet-18/34/50/101 (3x3 stem, no max-pool).
    Cifar(usize),
    /// torchvision's ImageNet ResNet-18/34/50/101 (7x7 stem and max-pool), with BatchNorm or
    /// GroupNorm(32), and optionally Weight Standardization on every convolution; with a bias on
    /// every convolution, the seed's ImageNet ResNets (`r50bn`, `r50gn`, `r101bn`, `r101gn`).
    ImageNet {
        /// 18, 34, 50 or 101.
        depth: usize,
        /// The normalization.
        norm: NormKind,
        /// Weight Standardization.
        ws: bool,
        /// A bias on every convolution.
        conv_bias: bool,
    },
    /// The seed's CIFAR VGG-11 with BatchNorm (32x32 inputs).
    Vgg11Bn,
    /// The seed's CIFAR ResNeXt-29 4x64d (32x32 inputs).
    ResNeXt29,
    /// The seed's CIFAR DenseNet-121 (32x32 inputs).
    DenseNet121,
}

impl ModelName {
    /// The default job's small CNN, with BatchNorm.
    pub const SMALL_CNN: ModelName = ModelName::SmallCnn {
        norm: Some(NormKind::Batch),
    };
    /// ResNet-20 with BatchNorm.
    pub const RESNET20: ModelName = ModelName::ResNet20 {
        norm: NormKind::Batch,
    };

    /// Every name, for help texts.
    pub const ALL: &'static [&'static str] = &[
        "small-cnn",
        "small-cnn-gn",
        "small-cnn-nonorm",
        "resnet20",
        "resnet20-gn",
        "r18",
        "r34",
        "r50",
        "r101",
        "vgg11-bn",
        "resnext29-4x64d",
        "densenet121",
        "imagenet-r18",
        "imagenet-r34",
        "imagenet-r50",
        "imagenet-r101",
        "imagenet-r50-gn",
        "imagenet-r50-ws",
        "imagenet-r50-gn-ws",
        "imagenet-r101-gn",
        "imagenet-r101-ws",
        "imagenet-r101-gn-ws",
        "r50bn",
        "r50gn",
        "r101bn",
        "r101gn",
    ];

    /// The side of the square images the model is built for by default.
    pub fn default_size(self) -> usize {
        match self {
            ModelName::SmallCnn { .. } => 28,
            ModelName::ImageNet { .. } => 224,
            _ => 32,
        }
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelName::SmallCnn { norm } => match norm {
                Some(NormKind::Batch) => write!(f, "small-cnn"),
                Some(NormKind::Group) => write!(f, "small-cnn-gn"),
                None => write!(f, "small-cnn-nonorm"),
            },
            ModelName::ResNet20 { norm } => match norm {
                NormKind::Batch => write!(f, "resnet20"),
                NormKind::Group => write!(f, "resnet20-gn"),
            },
            ModelName::Cifar(depth) => write!(f, "r{depth}"),
            // The seed's names for its ImageNet ResNets, which have a bias on every convolution.
            ModelName::ImageNet {
                depth,
                norm,
                ws: false,
                conv_bias: true,
            } => match norm {
                NormKind::Batch => write!(f, "r{depth}bn"),
                NormKind::Group => write!(f, "r{depth}gn"),
            },
            ModelName::ImageNet {
                depth,
                norm,
                ws,
                conv_bias,
            } => {
                write!(f, "imagenet-r{depth}")?;
                if norm == &NormKind::Group {
                    write!(f, "-gn")?;
                }
                if *ws {
                    write!(f, "-ws")?;
                }
                if *conv_bias {
                    write!(f, "-bias")?;
                }
                Ok(())
            }
            ModelName::Vgg11Bn => write!(f, "vgg11-bn"),
            ModelName::ResNeXt29 => write!(f, "resnext29-4x64d"),
            ModelName::DenseNet121 => write!(f, "densenet121"),
        }
    }
}

impl FromStr for ModelName {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        let lower = name.trim().to_ascii_lowercase();
        let depth = |s: &str| {
            s.parse::<usize>()
                .ok()
                .filter(|d| [18, 34, 50, 101].contains(d))
        };
        let imagenet = |rest: &str| {
            let (rest, conv_bias) = match rest.strip_suffix("-bias") {
                Some(r) => (r, true),
                None => (rest, false),
            };
            let (rest, ws) = match rest.strip_suffix("-ws") {
                Some(r) => (r, true),
                None => (rest, false),
            };
            let (rest, norm) = match rest.strip_suffix("-gn") {
                Some(r) => (r, NormKind::Group),
                None => (rest, NormKind::Batch),
            };
            depth(rest).map(|depth| ModelName::ImageNet {
                depth,
                norm,
                ws,
                conv_bias,
            })
        };
        let parsed = match lower.as_str() {
            "small-cnn" | "small_cnn" | "cnn" => Some(ModelName::SMALL_CNN),
            "small-cnn-gn" => Some(ModelName::SmallCnn {
                norm: Some(NormKind::Group),
            }),
            "small-cnn-nonorm" => Some(ModelName::SmallCnn { norm: None }),
            "resnet20" | "r20" => Some(ModelName::RESNET20),
            "resnet20-gn" | "r20-gn" => Some(ModelName::ResNet20 {
                norm: NormKind::Group,
            }),
            // The seed's CIFAR-100 `--model` values, and its ImageNet `r50bn` / `r50gn`.
            "vgg11-bn" | "vgg11_bn" | "vgg11" | "v11" => Some(ModelName::Vgg11Bn),
            "resnext29-4x64d" | "resnext29_4x64d" | "resnext29" | "rx29" => {
                Some(ModelName::ResNeXt29)
            }
            "densenet121" | "densenet-121" | "d121" => Some(ModelName::DenseNet121),
            // The seed's Mini-ImageNet Weight Standardization model (`resnet_ws.py`).
            "r50ws" => imagenet("50-ws"),
            other => {
                // The seed's ImageNet ResNets (`r50bn`, `r101gn`, ...) have a bias on every
                // convolution (`myresnet.py`); the names extend to every depth.
                let seed = other
                    .strip_prefix('r')
                    .and_then(|rest| {
                        rest.strip_suffix("bn")
                            .map(|d| (d, ""))
                            .or_else(|| rest.strip_suffix("gn").map(|d| (d, "-gn")))
                    })
                    .and_then(|(d, gn)| imagenet(&format!("{d}{gn}-bias")));
                if seed.is_some() {
                    seed
                } else if let Some(rest) = other.strip_prefix("imagenet-r") {
                    imagenet(rest)
                } else if let Some(rest) = other.strip_prefix("resnet") {
                    depth(rest).map(ModelName::Cifar)
                } else {
                    other
                        .strip_prefix('r')
                        .and_then(depth)
                        .map(ModelName::Cifar)
                }
            }
        };
        parsed.ok_or_else(|| {
            format!(
                "unknown model `{name}`; known: {}",
                ModelName::ALL.join(", ")
            )
        })
    }
}

impl From<ModelName> for String {
    fn from(name: ModelName) -> String {
        name.to_string()
    }
}

impl TryFrom<String> for ModelName {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        name.parse()
    }
}

/// Any model of the lab.
// As for resnet::Block: the derive needs the models inline, and a move per step costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Net {
    /// A small CNN.
    Small(SmallCnn),
    /// A ResNet.
    ResNet(ResNet),
    /// VGG.
    Vgg(Vgg),
    /// ResNeXt.
    ResNeXt(ResNeXt),
    /// DenseNet.
    DenseNet(DenseNet),
}

/// The backend's generator is global to the process: seeding it and drawing the initial weights
/// must not interleave with another model's initialization.
static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Net {
    /// [`Net::new`] with the backend's generator seeded with `seed` first and `init` drawn over
    /// burn's defaults, so the initial weights depend on `seed` alone, even with other models being
    /// built on other threads.
    pub fn seeded(
        name: ModelName,
        init: Init,
        channels: usize,
        size: usize,
        classes: usize,
        seed: u64,
        device: &Device,
    ) -> Self {
        let _turn = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        device.seed(seed);
        let net = init.apply(Self::build(name, channels, size, classes, device));
        // burn draws a parameter's default value when it is first read: read every one now,
        // under the lock, in the order of the module walk (the order a GC plan reads them in).
        struct Draw;
        impl burn::module::ModuleVisitor for Draw {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
                let _ = param.val();
            }
        }
        net.visit(&mut Draw);
        net
    }

    /// Build `name` for `channels`×`size`×`size` inputs and `classes` classes.
    pub fn new(
        name: ModelName,
        channels: usize,
        size: usize,
        classes: usize,
        device: &Device,
    ) -> Self {
        let _turn = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Self::build(name, channels, size, classes, device)
    }

    fn build(
        name: ModelName,
        channels: usize,
        size: usize,
        classes: usize,
        device: &Device,
    ) -> Self {
        match name {
            ModelName::SmallCnn { norm } => {
                Net::Small(SmallCnn::new(channels, size, classes, norm, device))
            }
            ModelName::ResNet20 { norm } => {
                let spec = ResNetSpec {
                    norm,
                    ..ResNetSpec::cifar_resnet20()
                };
                Net::ResNet(ResNet::new(&spec, channels, classes, device))
            }
            ModelName::Cifar(depth) => {
                let spec = ResNetSpec::standard(depth, Stem::Cifar).expect("depth checked");
                Net::ResNet(ResNet::new(&spec, channels, classes, device))
            }
            ModelName::ImageNet {
                depth,
                norm,
                ws,
                conv_bias,
            } => {
                let mut spec = ResNetSpec::standard(depth, Stem::ImageNet).expect("depth checked");
                spec.norm = norm;
                spec.weight_standardization = ws;
                spec.conv_bias = conv_bias;
                Net::ResNet(ResNet::new(&spec, channels, classes, device))
            }
            ModelName::Vgg11Bn => Net::Vgg(Vgg::vgg11_bn(channels, classes, device)),
            ModelName::ResNeXt29 => {
                Net::ResNeXt(ResNeXt::resnext29(4, 64, channels, classes, device))
            }
            ModelName::DenseNet121 => {
                Net::DenseNet(DenseNet::densenet121(channels, classes, device))
            }
        }
    }

    /// Logits `[n, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Net::Small(m) => m.forward(x),
            Net::ResNet(m) => m.forward(x),
            Net::Vgg(m) => m.forward(x),
            Net::ResNeXt(m) => m.forward(x),
            Net::DenseNet(m) => m.forward(x),
        }
    }
}

#[cfg(test)]
mod tests;
