//! Experiment presets: dataset, model, schedule and the seed's per-optimizer learning rates.

use std::path::PathBuf;

use anyhow::{Result, bail};
use gradient_centralization::{Family, Hyperparameters, Preset};

use crate::data::augment::Augment;
use crate::data::cifar::{self, Cifar};
use crate::data::loader::DropLast;
use crate::data::{Splits, fashion, folder};
use crate::models::{Init, ModelName};
use crate::train::schedule::Schedule;

/// A named suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    /// Fashion-MNIST sized for 2 CPU cores: small CNN, a balanced subset, a few epochs.
    Fashion,
    /// Fashion-MNIST, full training and test sets (the set Debian's dataset-fashion-mnist installs).
    FashionFull,
    /// The seed's CIFAR-100 runs (`--data cifar-100-python/` or `cifar-100-binary/`): its CIFAR
    /// ResNet-50 by default (`--model r18` etc.), 200 epochs, batch 128, lr 0.1, momentum 0.9, wd
    /// 5e-4, x0.1 every 60 epochs, random crop (pad 4) and flip, the last partial batch dropped.
    Cifar100,
    /// The same recipe on CIFAR-10 (`--data cifar-10-batches-py/` or `cifar-10-batches-bin/`).
    Cifar10,
    /// The seed's Mini-ImageNet runs (`--data` an ImageFolder tree with train/ and val/):
    /// torchvision's ResNet-50 (`--model r50ws` for Weight Standardization), He-normal convs and
    /// BatchNorm γ ~ U(0, 1), 100 epochs, batch 128, lr 0.1, wd 1e-4, x0.1 every 30;
    /// RandomResizedCrop 224 + flip, test resize 256 + centre crop 224.
    MiniImagenet,
    /// The seed's ImageNet runs (ImageFolder train/ and val/): its ResNet-50 with conv biases
    /// (`--model r101bn`, `r50gn`, `r101gn`), He-normal convs, 100 epochs, batch 256, lr 0.1, wd
    /// 1e-4, x0.1 every 30, arms SGD and SGD_GCC; the same transforms as Mini-ImageNet.
    Imagenet,
    /// The seed's fine-grained runs (CUB-200, Stanford Cars and Dogs, FGVC Aircraft as ImageFolder
    /// trees): torchvision's ResNet-50, 100 epochs, batch 128, lr 0.1, wd 1e-4, x0.1 at epochs 50
    /// and 80; resize 512 + flip + centre crop 448 (no random crop), test resize 512 + centre crop
    /// 448. Caveat: the seed fine-tunes an ImageNet-pretrained ResNet-50; gclab trains from
    /// scratch (torchvision's initialization), so its accuracies are not comparable with the
    /// paper's.
    FineGrained,
}

/// A suite's settings; every field can be overridden on the command line.
#[derive(Debug, Clone)]
pub struct SuiteSettings {
    /// The model.
    pub model: ModelName,
    /// Base learning rate for SGD; other families scale it as the seed does.
    pub sgd_lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Schedule.
    pub schedule: Schedule,
    /// Training images per class (None: all).
    pub train_per_class: Option<usize>,
    /// Test images per class (None: all).
    pub test_per_class: Option<usize>,
    /// Training augmentation.
    pub augment: Augment,
    /// How test images are prepared.
    pub test_augment: Augment,
    /// The arms a comparison runs by default (the seed's commands).
    pub arms: Vec<String>,
    /// How the weights start.
    pub init: Init,
    /// Which passes drop their last partial batch.
    pub drop_last: DropLast,
    /// Samples each batch norm normalizes together in training (`None`: the whole batch).
    pub bn_batch: Option<usize>,
}

impl Suite {
    /// The suite's settings: for the seed's suites, its recipe as its code runs it
    /// (docs/RECIPES.md cites the file and line of each value).
    pub fn settings(self) -> SuiteSettings {
        let arms = |names: &[&str]| names.iter().map(|name| name.to_string()).collect();
        let seed_drop = DropLast {
            train: true,
            test: false,
        };
        match self {
            Suite::Fashion | Suite::FashionFull => SuiteSettings {
                model: ModelName::SMALL_CNN,
                sgd_lr: 0.05,
                momentum: 0.9,
                weight_decay: 5e-4,
                epochs: if self == Suite::Fashion { 3 } else { 10 },
                batch_size: 128,
                schedule: Schedule::Cosine,
                train_per_class: (self == Suite::Fashion).then_some(1000),
                test_per_class: (self == Suite::Fashion).then_some(200),
                augment: Augment::None,
                test_augment: Augment::None,
                arms: arms(&["sgd", "sgd_gc"]),
                init: Init::Torch,
                drop_last: DropLast::default(),
                bn_batch: None,
            },
            Suite::Cifar100 | Suite::Cifar10 => SuiteSettings {
                model: ModelName::Cifar(50),
                sgd_lr: 0.1,
                momentum: 0.9,
                weight_decay: 5e-4,
                epochs: 200,
                batch_size: 128,
                schedule: Schedule::Step {
                    every: 60,
                    gamma: 0.1,
                },
                train_per_class: None,
                test_per_class: None,
                augment: Augment::CropFlip { pad: 4 },
                test_augment: Augment::None,
                arms: arms(&["sgd", "sgd_gc"]),
                init: Init::Torch,
                drop_last: seed_drop,
                // One GPU (`GC_code/CIFAR100/main.py`, line 42): BatchNorm saw the whole batch.
                bn_batch: None,
            },
            Suite::MiniImagenet | Suite::Imagenet | Suite::FineGrained => {
                let fine = self == Suite::FineGrained;
                SuiteSettings {
                    model: ModelName::ImageNet {
                        depth: 50,
                        norm: Default::default(),
                        ws: false,
                        conv_bias: self == Suite::Imagenet,
                    },
                    sgd_lr: 0.1,
                    momentum: 0.9,
                    weight_decay: 1e-4,
                    epochs: 100,
                    batch_size: if self == Suite::Imagenet { 256 } else { 128 },
                    schedule: if fine {
                        Schedule::MultiStep {
                            milestones: vec![50, 80],
                            gamma: 0.1,
                        }
                    } else {
                        Schedule::Step {
                            every: 30,
                            gamma: 0.1,
                        }
                    },
                    train_per_class: None,
                    test_per_class: None,
                    augment: if fine {
                        Augment::ResizeFlipCenterCrop {
                            resize: 512,
                            crop: 448,
                        }
                    } else {
                        Augment::RandomResizedCrop { size: 224 }
                    },
                    test_augment: if fine {
                        Augment::ResizeCenterCrop {
                            resize: 512,
                            crop: 448,
                        }
                    } else {
                        Augment::ResizeCenterCrop {
                            resize: 256,
                            crop: 224,
                        }
                    },
                    arms: if self == Suite::Imagenet {
                        arms(&["sgd", "sgd_gcc"])
                    } else {
                        arms(&["sgd", "sgd_gc"])
                    },
                    init: if self == Suite::MiniImagenet {
                        Init::HeFanOutUniformGamma
                    } else {
                        Init::HeFanOut
                    },
                    drop_last: DropLast {
                        train: true,
                        test: self != Suite::MiniImagenet,
                    },
                    // DataParallel over 4 GPUs: each BatchNorm saw a quarter of the batch.
                    bn_batch: Some(if self == Suite::Imagenet { 64 } else { 32 }),
                }
            }
        }
    }

    /// The model `name` means in this suite: the seed's scripts call different networks `r50`
    /// (the CIFAR ResNet-50 for CIFAR; torchvision's ImageNet ResNet-50 for Mini-ImageNet and the
    /// fine-grained sets), so on the suites of image files `r18` ... `r101` are torchvision's
    /// ImageNet ResNets, never the CIFAR ones (a 3x3 stem without pooling at 224 pixels). The
    /// fine-grained `r50p` is `imagenet-r50` started from `--pretrained` weights (`pretrained`:
    /// given), refused without them. Other names mean what [`ModelName`] parses them as.
    pub fn model(self, name: &str, pretrained: bool) -> Result<ModelName> {
        let files = matches!(
            self,
            Suite::MiniImagenet | Suite::Imagenet | Suite::FineGrained
        );
        let lower = name.trim().to_ascii_lowercase();
        match lower.as_str() {
            "r18" | "r34" | "r50" | "r101" if files => Ok(format!("imagenet-{lower}")
                .parse()
                .map_err(anyhow::Error::msg)?),
            "r50p" if self == Suite::FineGrained && pretrained => {
                Ok("imagenet-r50".parse().map_err(anyhow::Error::msg)?)
            }
            "r50p" if self == Suite::FineGrained => bail!(
                "`r50p` is the seed's ImageNet-pretrained ResNet-50: give torchvision's weights \
                 with --pretrained FILE (resnet50-0676ba61.pth, what the seed's \
                 `pretrained=True` loads), or use `r50` to train from scratch"
            ),
            _ => name.parse().map_err(anyhow::Error::msg),
        }
    }

    /// Load the suite's data from `dir` (or the default places).
    pub fn load(self, dir: Option<&PathBuf>, settings: &SuiteSettings) -> Result<Splits> {
        let mut splits = match self {
            Suite::Fashion | Suite::FashionFull => self.load_fashion(dir)?,
            Suite::Cifar100 | Suite::Cifar10 => {
                let Some(dir) = dir else {
                    bail!(
                        "the {self:?} suite needs --data: the unpacked folder of the python or the \
                         binary version ({})",
                        if self == Suite::Cifar100 {
                            "cifar-100-python/ or cifar-100-binary/"
                        } else {
                            "cifar-10-batches-py/ or cifar-10-batches-bin/"
                        }
                    );
                };
                let kind = if self == Suite::Cifar100 {
                    Cifar::HundredFine
                } else {
                    Cifar::Ten
                };
                cifar::load(dir, kind)?
            }
            Suite::MiniImagenet | Suite::Imagenet | Suite::FineGrained => {
                let name = match self {
                    Suite::MiniImagenet => "Mini-ImageNet",
                    Suite::Imagenet => "ImageNet",
                    _ => "fine-grained set",
                };
                let Some(dir) = dir else {
                    bail!(
                        "the {name} suite needs --data: a folder holding train/<class>/*.jpg and \
                         val/<class>/*.jpg"
                    );
                };
                folder::load(dir, name)?
            }
        };
        if let Some(n) = settings.train_per_class {
            splits.train = splits.train.balanced_subset(n);
        }
        if let Some(n) = settings.test_per_class {
            splits.test = splits.test.balanced_subset(n);
        }
        Ok(splits)
    }

    fn load_fashion(self, dir: Option<&PathBuf>) -> Result<Splits> {
        let found = fashion::locate(dir.map(PathBuf::as_path))?;
        let splits = fashion::load(&found, "Fashion-MNIST")?;
        if self == Suite::FashionFull && splits.train.len() < 60_000 {
            bail!(
                "the full-set suite needs all 60000 training images, {} holds {}; \
                 install Debian's dataset-fashion-mnist (scripts/install-data.sh) or use --suite fashion",
                found.display(),
                splits.train.len()
            );
        }
        Ok(splits)
    }
}

/// The seed's learning-rate convention: SGD's rate for SGD/SGDW, ×0.01 for Adam/AdamW, ×0.1 for
/// Adagrad (its CIFAR-100 commands), ×0.01 for RAdam and Ranger (`algorithm-GC/cifar/main.py`,
/// lines 162 and 205). Lookahead keeps its inner optimizer's rate.
pub fn lr_for(preset: &Preset, sgd_lr: f64) -> f64 {
    match preset.family {
        Family::Sgd | Family::Sgdw => sgd_lr,
        Family::Adam | Family::AdamW | Family::AdamWTorch | Family::RAdam | Family::Ranger => {
            sgd_lr * 0.01
        }
        Family::Adagrad => sgd_lr * 0.1,
    }
}

/// The suite's hyperparameters for `preset`: momentum for SGD, weight decay for all.
pub fn hyper_for(preset: &Preset, settings: &SuiteSettings) -> Hyperparameters {
    let sgd = matches!(preset.family, Family::Sgd | Family::Sgdw);
    Hyperparameters {
        momentum: sgd.then_some(settings.momentum),
        weight_decay: Some(settings.weight_decay),
        ..Hyperparameters::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `r50` is what each suite's seed commands call so (`GC_code/CIFAR100/main.py`, line 81: the
    /// CIFAR ResNet-50; `GC_code/Mini_ImageNet/main.py`, line 155, and
    /// `Fine-grained_classification/main.py`, line 160: torchvision's), and on every suite of
    /// image files the bare depths are ImageNet ResNets; `r50p` (pretrained) is `imagenet-r50`
    /// with `--pretrained` and refused, with the reason, without.
    #[test]
    fn model_names_mean_what_the_suites_seed_commands_mean() {
        let imagenet_r50: ModelName = "imagenet-r50".parse().unwrap();
        assert_eq!(
            Suite::Cifar100.model("r50", false).unwrap(),
            ModelName::Cifar(50)
        );
        assert_eq!(
            Suite::MiniImagenet.model("R50", false).unwrap(),
            imagenet_r50
        );
        assert_eq!(
            Suite::FineGrained.model("r50", false).unwrap(),
            imagenet_r50
        );
        assert_eq!(
            Suite::MiniImagenet
                .model("r50ws", false)
                .unwrap()
                .to_string(),
            "imagenet-r50-ws"
        );
        assert_eq!(
            Suite::Imagenet.model("r101gn", false).unwrap().to_string(),
            "r101gn"
        );
        assert_eq!(
            Suite::Imagenet.model("r101", false).unwrap().to_string(),
            "imagenet-r101"
        );
        assert_eq!(
            Suite::Cifar10.model("r18", false).unwrap(),
            ModelName::Cifar(18)
        );
        let err = Suite::FineGrained
            .model("r50p", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--pretrained FILE"), "{err}");
        assert_eq!(
            Suite::FineGrained.model("r50p", true).unwrap(),
            imagenet_r50
        );
        assert!(Suite::Imagenet.model("r51", false).is_err());
    }

    /// Every suite's default arms are presets the library knows.
    #[test]
    fn every_suites_arms_parse() {
        for suite in <Suite as clap::ValueEnum>::value_variants() {
            for arm in suite.settings().arms {
                assert!(arm.parse::<Preset>().is_ok(), "{suite:?}: {arm}");
            }
        }
    }
}
