//! Experiment presets: dataset, model, schedule and the seed's per-optimizer learning rates.

use std::path::PathBuf;

use anyhow::{Result, bail};
use gradient_centralization::{Family, Hyperparameters, Preset};

use crate::data::augment::Augment;
use crate::data::cifar::{self, Cifar};
use crate::data::{Splits, fashion, folder};
use crate::models::ModelName;
use crate::train::schedule::Schedule;

/// A named suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    /// Fashion-MNIST sized for 2 CPU cores: small CNN, a balanced subset, a few epochs.
    Fashion,
    /// Fashion-MNIST, full training and test sets (the set Debian's dataset-fashion-mnist installs).
    FashionFull,
    /// The seed's CIFAR-100 runs (`--data cifar-100-python/` or `cifar-100-binary/`): ResNet-18 by default
    /// (`--model r50` etc.), 200 epochs, batch 128, lr 0.1, momentum 0.9, wd 5e-4, x0.1 every 60
    /// epochs, random crop (pad 4) and flip.
    Cifar100,
    /// The same recipe on CIFAR-10 (`--data cifar-10-batches-py/` or `cifar-10-batches-bin/`).
    Cifar10,
    /// The seed's Mini-ImageNet runs (`--data` an ImageFolder tree with train/ and val/):
    /// ImageNet ResNet-50 (`--model imagenet-r50-ws` for Weight Standardization), 100 epochs,
    /// batch 128, lr 0.1, wd 1e-4, x0.1 every 30; RandomResizedCrop 224 + flip, test resize 256 +
    /// centre crop 224.
    MiniImagenet,
    /// The seed's ImageNet runs (ImageFolder train/ and val/): ResNet-50 (`--model
    /// imagenet-r101`, `imagenet-r50-gn` ...), 100 epochs, batch 256, lr 0.1, wd 1e-4, x0.1 every
    /// 30; the same transforms as Mini-ImageNet.
    Imagenet,
    /// The seed's fine-grained runs (CUB-200, Stanford Cars and Dogs, FGVC Aircraft as ImageFolder
    /// trees): ResNet-50, 100 epochs, batch 128, lr 0.1, wd 1e-4, x0.1 at epochs 50 and 80;
    /// resize 512 + random crop 448 + flip, test resize 512 + centre crop 448. Caveat: the paper
    /// fine-tunes an ImageNet-pretrained ResNet-50; gclab trains from scratch, so its accuracies
    /// are not comparable with the paper's.
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
}

impl Suite {
    /// The suite's settings.
    pub fn settings(self) -> SuiteSettings {
        match self {
            Suite::Fashion => SuiteSettings {
                model: ModelName::SmallCnn,
                sgd_lr: 0.05,
                momentum: 0.9,
                weight_decay: 5e-4,
                epochs: 3,
                batch_size: 128,
                schedule: Schedule::Cosine,
                train_per_class: Some(1000),
                test_per_class: Some(200),
                augment: Augment::None,
                test_augment: Augment::None,
            },
            Suite::FashionFull => SuiteSettings {
                model: ModelName::SmallCnn,
                sgd_lr: 0.05,
                momentum: 0.9,
                weight_decay: 5e-4,
                epochs: 10,
                batch_size: 128,
                schedule: Schedule::Cosine,
                train_per_class: None,
                test_per_class: None,
                augment: Augment::None,
                test_augment: Augment::None,
            },
            Suite::Cifar100 | Suite::Cifar10 => SuiteSettings {
                model: ModelName::Cifar(18),
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
                        Augment::ResizeRandomCrop {
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
                }
            }
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
