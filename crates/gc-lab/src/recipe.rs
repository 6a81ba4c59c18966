//! `gclab recipe SUITE`: a suite's recipe as a comparison resolves it, line by line; a committed
//! golden file holds every suite's, so that no recipe changes without a visible diff.

use std::fmt::Write;

use gradient_centralization::Preset;

use crate::data::augment::Augment;
use crate::data::cifar::Cifar;
use crate::data::folder::imagenet_normalize;
use crate::models::resnet::NormKind;
use crate::models::{Init, ModelName};
use crate::suites::{Suite, SuiteSettings, lr_for};
use crate::train::schedule::Schedule;

/// The recipe of `suite` as `gclab compare --suite SUITE` runs it without overrides.
pub fn describe(suite: Suite) -> anyhow::Result<String> {
    let settings = suite.settings();
    let mut out = String::new();
    let mut line = |key: &str, value: String| {
        writeln!(out, "{key:<14} {value}").expect("writing to a String");
    };
    line("suite", suite_name(suite));
    line("data", data(suite));
    line("train", augment(settings.augment));
    line("test", augment(settings.test_augment));
    line("normalize", normalize(suite));
    line("model", model(settings.model));
    line("init", init(settings.init));
    let arms: Vec<Preset> = settings
        .arms
        .iter()
        .map(|name| name.parse())
        .collect::<Result<_, _>>()?;
    line(
        "arms",
        arms.iter()
            .map(|arm| format!("{arm} (lr {})", short(lr_for(arm, settings.sgd_lr))))
            .collect::<Vec<_>>()
            .join(", "),
    );
    line(
        "lr by family",
        format!(
            "SGD, SGDW {}; Adam, AdamW, RAdam, Ranger x0.01 = {}; Adagrad x0.1 = {}",
            short(settings.sgd_lr),
            short(lr_for(&Preset::ADAM, settings.sgd_lr)),
            short(lr_for(&Preset::ADAGRAD, settings.sgd_lr))
        ),
    );
    line("momentum", momentum(&settings));
    line(
        "weight decay",
        format!("{} (every parameter)", settings.weight_decay),
    );
    line("schedule", schedule(&settings.schedule));
    line("batch", settings.batch_size.to_string());
    line(
        "bn batch",
        match settings.bn_batch {
            None => "the whole batch".to_string(),
            Some(n) => format!("{n} (the batch in groups that normalize apart, as on 4 GPUs)"),
        },
    );
    line(
        "drop last",
        format!(
            "train {}, test {}",
            yes(settings.drop_last.train),
            yes(settings.drop_last.test)
        ),
    );
    line("epochs", settings.epochs.to_string());
    line("subset", subset(&settings));
    if suite == Suite::FineGrained {
        line(
            "differs",
            "the seed fine-tunes ImageNet-pretrained weights (its r50p); gclab does with \
             --pretrained FILE (torchvision's resnet50), and trains from scratch without"
                .into(),
        );
    }
    Ok(out)
}

/// Every suite's recipe, in the order of `Suite`'s values, each after a `== name` line.
pub fn describe_all() -> anyhow::Result<String> {
    let mut out = String::new();
    for suite in <Suite as clap::ValueEnum>::value_variants() {
        writeln!(out, "== {}", suite_name(*suite))?;
        out.push_str(&describe(*suite)?);
        out.push('\n');
    }
    Ok(out)
}

fn suite_name(suite: Suite) -> String {
    clap::ValueEnum::to_possible_value(&suite)
        .expect("every suite has a name")
        .get_name()
        .to_string()
}

/// `x` to 12 significant digits, without the last digit's rounding noise (0.1 · 0.1 prints 0.01).
fn short(x: f64) -> String {
    format!("{x:.11e}")
        .parse::<f64>()
        .map_or_else(|_| x.to_string(), |x| x.to_string())
}

fn yes(flag: bool) -> &'static str {
    if flag { "yes" } else { "no" }
}

fn data(suite: Suite) -> String {
    match suite {
        Suite::Fashion => "Fashion-MNIST, 1000 training and 200 test images per class".into(),
        Suite::FashionFull => "Fashion-MNIST, all 60000 training and 10000 test images".into(),
        Suite::Cifar100 => "CIFAR-100 (fine labels), python or binary version".into(),
        Suite::Cifar10 => "CIFAR-10, python or binary version".into(),
        Suite::MiniImagenet | Suite::Imagenet | Suite::FineGrained => {
            "an ImageFolder tree: train/<class>/ and val/<class>/".into()
        }
    }
}

fn augment(augment: Augment) -> String {
    match augment {
        Augment::None => "as is".into(),
        Augment::CropFlip { pad } => {
            format!(
                "random crop of the original size from the image zero-padded by {pad}, flip p=1/2"
            )
        }
        Augment::RandomResizedCrop { size } => format!(
            "random resized crop {size} (area 0.08-1, aspect 3/4-4/3, bilinear), flip p=1/2"
        ),
        Augment::ResizeRandomCrop { resize, crop } => {
            format!("resize shorter side to {resize}, random crop {crop}, flip p=1/2")
        }
        Augment::ResizeFlipCenterCrop { resize, crop } => {
            format!("resize shorter side to {resize}, flip p=1/2, centre crop {crop}")
        }
        Augment::ResizeCenterCrop { resize, crop } => {
            format!("resize shorter side to {resize}, centre crop {crop}")
        }
    }
}

fn normalize(suite: Suite) -> String {
    let n = match suite {
        Suite::Fashion | Suite::FashionFull => {
            return "the training images' channel mean and standard deviation".into();
        }
        Suite::Cifar100 => Cifar::HundredFine.normalize(),
        Suite::Cifar10 => Cifar::Ten.normalize(),
        Suite::MiniImagenet | Suite::Imagenet | Suite::FineGrained => imagenet_normalize(),
    };
    let list = |v: &[f32]| v.iter().map(f32::to_string).collect::<Vec<_>>().join(" ");
    format!("mean {}, std {}", list(&n.mean), list(&n.std))
}

fn model(model: ModelName) -> String {
    let what = match model {
        ModelName::SmallCnn { norm } => format!(
            "two conv and two linear layers, {}",
            match norm {
                Some(NormKind::Batch) => "BatchNorm",
                Some(NormKind::Group) => "GroupNorm with two channels per group",
                None => "no normalization (conv biases)",
            }
        ),
        ModelName::ResNet20 { norm } => format!(
            "He et al.'s CIFAR ResNet-20, {}",
            match norm {
                NormKind::Batch => "BatchNorm",
                NormKind::Group => "GroupNorm with two channels per group",
            }
        ),
        ModelName::Cifar(depth) => {
            format!("the seed's CIFAR ResNet-{depth}: 3x3 stem, no max-pool")
        }
        ModelName::ImageNet {
            depth,
            norm,
            ws,
            conv_bias,
        } => format!(
            "ImageNet ResNet-{depth}: 7x7 stem, max-pool, {}{}{}",
            match norm {
                NormKind::Batch => "BatchNorm",
                NormKind::Group => "GroupNorm(32)",
            },
            if ws { ", Weight Standardization" } else { "" },
            if conv_bias {
                ", a bias on every convolution (the seed's myresnet.py)"
            } else {
                ", no conv biases (torchvision's layout)"
            }
        ),
        ModelName::Vgg11Bn => "the seed's CIFAR VGG-11 with BatchNorm".to_string(),
        ModelName::ResNeXt29 => "the seed's CIFAR ResNeXt-29 4x64d".to_string(),
        ModelName::DenseNet121 => "the seed's CIFAR DenseNet-121".to_string(),
    };
    format!("{model} ({what})")
}

fn init(init: Init) -> String {
    match init {
        Init::Torch => "torch: conv and linear U(+-1/sqrt(fan_in)), norms gamma 1, beta 0".into(),
        Init::HeFanOut => {
            "he-fan-out: conv weights N(0, 2/(k*k*out)), norms gamma 1, beta 0, linear and conv \
             biases U(+-1/sqrt(fan_in))"
                .into()
        }
        Init::HeFanOutUniformGamma => {
            "he-fan-out-uniform-gamma: conv weights N(0, 2/(k*k*out)), norm gamma U(0, 1), beta 0, \
             linear U(+-1/sqrt(fan_in))"
                .into()
        }
    }
}

fn momentum(settings: &SuiteSettings) -> String {
    format!(
        "{} (SGD family); betas as PyTorch's (Adam family, RAdam (0.9, 0.999); Ranger (0.95, 0.999))",
        settings.momentum
    )
}

fn schedule(schedule: &Schedule) -> String {
    match schedule {
        Schedule::Constant => "constant".into(),
        Schedule::Cosine => "cosine to 0 over the run".into(),
        Schedule::Step { every, gamma } => format!("x{gamma} every {every} epochs"),
        Schedule::MultiStep { milestones, gamma } => format!(
            "x{gamma} at epochs {}",
            milestones
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn subset(settings: &SuiteSettings) -> String {
    match (settings.train_per_class, settings.test_per_class) {
        (None, None) => "every image".into(),
        (train, test) => format!(
            "{} training, {} test images per class",
            train.map_or("all".into(), |n| n.to_string()),
            test.map_or("all".into(), |n| n.to_string())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The printed recipes are the committed golden file, byte for byte. After an intended
    /// change, rewrite it with `GCLAB_BLESS=1` and review the diff (docs/RECIPES.md says what each
    /// line follows in the seed).
    #[test]
    fn every_recipe_is_the_golden_one() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/golden/recipes.txt");
        let printed = describe_all().unwrap();
        if std::env::var_os("GCLAB_BLESS").is_some() {
            std::fs::write(path, &printed).unwrap();
        }
        let golden = std::fs::read_to_string(path).unwrap_or_default();
        if printed != golden {
            let first = printed
                .lines()
                .zip(golden.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(printed.lines().count().min(golden.lines().count()));
            panic!(
                "the recipes differ from {path} from line {}:\n  printed: {:?}\n  golden:  {:?}\n\
                 if the change is intended, run the test with GCLAB_BLESS=1 and commit the file",
                first + 1,
                printed.lines().nth(first),
                golden.lines().nth(first)
            );
        }
    }
}
