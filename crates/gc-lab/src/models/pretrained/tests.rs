//! The import against PyTorch: small ResNets in torchvision's naming, written with their logits by
//! `crates/gc-lab/reference/make_pretrained.py` (torchvision's own blocks, every parameter and
//! running statistic random), loaded here into the lab's ResNets of the same shape.

use std::path::PathBuf;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

use super::*;
use crate::models::resnet::{ResNet, ResNetSpec, Stem};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pretrained")
        .join(name)
}

/// The generator's widths (4, 8, 16, 32 for torchvision's 64 .. 512) at `depth`.
fn tiny(depth: usize, classes: usize, device: &Device) -> Net {
    let spec = ResNetSpec {
        widths: vec![4, 8, 16, 32],
        ..ResNetSpec::standard(depth, Stem::ImageNet).unwrap()
    };
    Net::ResNet(ResNet::new(&spec, 3, classes, device))
}

fn name(depth: usize) -> ModelName {
    format!("imagenet-r{depth}").parse().unwrap()
}

fn record() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("tiny-logits.json")).unwrap()).unwrap()
}

fn floats(value: &serde_json::Value) -> Vec<f32> {
    let values = value.as_array().unwrap();
    values.iter().map(|v| v.as_f64().unwrap() as f32).collect()
}

/// The loaded model gives PyTorch's logits (eval mode: the running statistics) to rounding: the
/// names, the Linear transpose, and BatchNorm's γ, β and statistics all land where they belong.
/// PyTorch's logits are up to about 90 in size (random weights), hence a relative tolerance.
#[test]
fn a_loaded_model_gives_the_files_logits() {
    let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex();
    let record = record();
    let shape: Vec<usize> = serde_json::from_value(record["input_shape"].clone()).unwrap();
    // The ResNet-18 also as the seed saves its checkpoints, under `module.` (DataParallel).
    for (file, depth) in [
        ("tiny-r18.pth", 18),
        ("tiny-r18-module.pth", 18),
        ("tiny-r50.pth", 50),
    ] {
        let file = fixture(file);
        let (net, imported) = load(tiny(depth, 5, &device), name(depth), 5, &file).unwrap();
        assert_eq!(imported.head_kept, None);
        // Parameters and running statistics: ResNet-18 62 + 2·20 batch norms, ResNet-50 161 +
        // 2·53 (torchvision's counts of tensors; one num_batches_tracked per batch norm is left).
        let loaded = if depth == 18 {
            62 + 2 * 20
        } else {
            161 + 2 * 53
        };
        assert_eq!(imported.loaded, loaded, "r{depth}");
        let x = Tensor::<4>::from_data(
            TensorData::new(floats(&record["input"]), shape.clone()),
            &device,
        );
        let got: Vec<f32> = net.forward(x).into_data().try_to_vec().unwrap();
        let want = floats(&record[format!("logits_r{depth}")]);
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                "r{depth} logit {i}: {g} vs PyTorch's {w}"
            );
        }
    }
}

fn head(net: &Net) -> Vec<f32> {
    let mut weights = Vec::new();
    struct Find<'a>(&'a str, &'a mut Vec<f32>, Vec<String>);
    impl burn::module::ModuleVisitor for Find<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.2.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.2.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            if self.2.join(".").ends_with(self.0) {
                *self.1 = param.val().into_data().try_to_vec().unwrap();
            }
        }
    }
    net.visit(&mut Find("fc.weight", &mut weights, Vec::new()));
    weights
}

/// Other classes than the file's: everything but the head loads, the head keeps its
/// initialization, and the import says so.
#[test]
fn a_head_for_other_classes_keeps_its_initialization_and_says_so() {
    let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex();
    let net = tiny(50, 7, &device);
    let before = head(&net);
    let (net, imported) = load(net, name(50), 7, &fixture("tiny-r50.pth")).unwrap();
    assert_eq!(imported.loaded, 161 + 2 * 53 - 2);
    let why = imported.head_kept.clone().unwrap();
    assert_eq!(why, "the file's head has 5 classes, the data 7");
    assert_eq!(head(&net), before, "the head is the model's own");
    assert!(
        imported
            .to_string()
            .contains("fc.weight and fc.bias keep their initialization")
    );
}

/// A file of another architecture is refused, naming what does not fit on both sides.
#[test]
fn a_file_that_does_not_fit_is_refused_with_the_names() {
    let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex();
    let err = load(tiny(50, 5, &device), name(50), 5, &fixture("tiny-r18.pth"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tiny-r18.pth does not fit imagenet-r50"),
        "{err}"
    );
    assert!(
        err.contains("not in the file: ") && err.contains("conv3.weight"),
        "{err}"
    );
    assert!(
        err.contains("stages.0.0.conv1.weight"),
        "shapes differ: {err}"
    );
    let err = load(tiny(18, 5, &device), name(18), 5, &fixture("tiny-r50.pth"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("in the file, not in imagenet-r18: ") && err.contains("conv3.weight"),
        "{err}"
    );
}

#[test]
fn only_torchvisions_resnets_take_a_file_and_it_must_exist() {
    let device = Device::flex();
    let ws = "imagenet-r18-ws".parse().unwrap();
    let err = load(tiny(18, 5, &device), ws, 5, &fixture("tiny-r18.pth")).unwrap_err();
    assert!(
        err.to_string()
            .contains("imagenet-r18-ws does not take one"),
        "{err}"
    );
    let small = Net::new(ModelName::SMALL_CNN, 1, 28, 10, &device);
    let err = load(small, ModelName::SMALL_CNN, 10, &fixture("tiny-r18.pth")).unwrap_err();
    assert!(
        err.to_string().contains("small-cnn does not take one"),
        "{err}"
    );
    let err = load(tiny(18, 5, &device), name(18), 5, &fixture("absent.pth")).unwrap_err();
    assert!(
        err.to_string().contains("absent.pth: no such file"),
        "{err}"
    );
    let err = load(
        tiny(18, 5, &device),
        name(18),
        5,
        &fixture("tiny-logits.json"),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("not a PyTorch state dict"),
        "{err}"
    );
}
