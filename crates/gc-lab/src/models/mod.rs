//! The models the lab trains, by name.

pub mod resnet;
pub mod small;

use std::fmt;
use std::str::FromStr;

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use resnet::{ResNet, ResNetSpec, Stem};
use small::SmallCnn;

/// A model the lab can build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum ModelName {
    /// [`SmallCnn`]: two conv layers and two linear layers, for CPU runs on 28x28 images.
    SmallCnn,
    /// He et al.'s CIFAR ResNet-20.
    ResNet20,
    /// The seed's CIFAR ResNet-18/34/50/101 (3x3 stem, no max-pool).
    Cifar(usize),
    /// torchvision's ImageNet ResNet-18/34/50/101 (7x7 stem and max-pool).
    ImageNet(usize),
}

impl ModelName {
    /// Every name, for help texts.
    pub const ALL: &'static [&'static str] = &[
        "small-cnn",
        "resnet20",
        "r18",
        "r34",
        "r50",
        "r101",
        "imagenet-r18",
        "imagenet-r34",
        "imagenet-r50",
        "imagenet-r101",
    ];
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelName::SmallCnn => write!(f, "small-cnn"),
            ModelName::ResNet20 => write!(f, "resnet20"),
            ModelName::Cifar(depth) => write!(f, "r{depth}"),
            ModelName::ImageNet(depth) => write!(f, "imagenet-r{depth}"),
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
        let parsed = match lower.as_str() {
            "small-cnn" | "small_cnn" | "cnn" => Some(ModelName::SmallCnn),
            "resnet20" | "r20" => Some(ModelName::ResNet20),
            other => {
                if let Some(rest) = other.strip_prefix("imagenet-r") {
                    depth(rest).map(ModelName::ImageNet)
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
}

/// The backend's generator is global to the process: seeding it and drawing the initial weights
/// must not interleave with another model's initialization.
static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Net {
    /// [`Net::new`] with the backend's generator seeded with `seed` first, so the initial weights
    /// depend on `seed` alone, even with other models being built on other threads.
    pub fn seeded(
        name: ModelName,
        channels: usize,
        size: usize,
        classes: usize,
        seed: u64,
        device: &Device,
    ) -> Self {
        let _turn = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        device.seed(seed);
        Self::build(name, channels, size, classes, device)
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
            ModelName::SmallCnn => Net::Small(SmallCnn::new(channels, size, classes, device)),
            ModelName::ResNet20 => Net::ResNet(ResNet::new(
                &ResNetSpec::cifar_resnet20(),
                channels,
                classes,
                device,
            )),
            ModelName::Cifar(depth) | ModelName::ImageNet(depth) => {
                let stem = if matches!(name, ModelName::Cifar(_)) {
                    Stem::Cifar
                } else {
                    Stem::ImageNet
                };
                let spec = ResNetSpec::standard(depth, stem).expect("depth checked when parsing");
                Net::ResNet(ResNet::new(&spec, channels, classes, device))
            }
        }
    }

    /// Logits `[n, classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Net::Small(m) => m.forward(x),
            Net::ResNet(m) => m.forward(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradient_centralization::{GcPlan, Scope};

    fn trainable(net: &Net) -> (usize, usize) {
        let plan = GcPlan::new(net, Scope::ConvLinear);
        let count = plan
            .entries()
            .iter()
            .map(|e| e.shape.iter().product::<usize>())
            .sum();
        (plan.entries().len(), count)
    }

    /// Published counts: torchvision's `resnet18()` and `resnet50()` (1000 classes) have 11,689,512
    /// and 25,557,032 parameters (`sum(p.numel() for p in model.parameters())`; torchvision's docs
    /// list 11.7M and 25.6M); 62 and 161 parameter tensors.
    #[test]
    fn imagenet_resnets_have_torchvisions_parameter_counts() {
        let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
        let device = Device::flex();
        let r18 = Net::new(ModelName::ImageNet(18), 3, 224, 1000, &device);
        assert_eq!(trainable(&r18), (62, 11_689_512));
        let r50 = Net::new(ModelName::ImageNet(50), 3, 224, 1000, &device);
        assert_eq!(trainable(&r50), (161, 25_557_032));
    }

    #[test]
    fn forward_and_backward_on_a_tiny_batch() {
        let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
        let device = Device::flex().autodiff();
        for (name, channels, size) in [
            (ModelName::SmallCnn, 1, 28),
            (ModelName::ResNet20, 3, 32),
            (ModelName::Cifar(18), 3, 32),
            (ModelName::Cifar(50), 3, 32),
            (ModelName::ImageNet(18), 3, 64),
        ] {
            let net = Net::new(name, channels, size, 10, &device);
            let x = Tensor::<4>::ones([2, channels, size, size], &device);
            let logits = net.forward(x);
            assert_eq!(logits.dims(), [2, 10], "{name}");
            let grads = logits.sum().backward();
            let params = burn::optim::GradientsParams::from_grads(grads, &net);
            assert!(!params.is_empty(), "{name}");
        }
    }

    #[test]
    fn names_parse_and_print() {
        for name in ModelName::ALL {
            assert_eq!(name.parse::<ModelName>().unwrap().to_string(), *name);
        }
        assert_eq!(
            "ResNet50".parse::<ModelName>().unwrap(),
            ModelName::Cifar(50)
        );
        assert!(
            "r19"
                .parse::<ModelName>()
                .unwrap_err()
                .contains("known: small-cnn")
        );
    }
}
