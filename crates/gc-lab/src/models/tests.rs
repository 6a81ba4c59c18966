//! Every model: shapes, parameter counts against torchvision's, the GC plan, determinism.

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

/// Published counts: torchvision's `resnet18()`, `resnet34()`, `resnet50()` and `resnet101()`
/// (1000 classes) have 11,689,512, 21,797,672, 25,557,032 and 44,549,160 parameters (`sum(p.numel() for p in model.parameters())`; torchvision's docs
/// list 11.7M and 25.6M); 62 and 161 parameter tensors. GroupNorm has BatchNorm's parameters.
#[test]
fn imagenet_resnets_have_torchvisions_parameter_counts() {
    let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex();
    let count =
        |name: &str, classes| trainable(&Net::new(name.parse().unwrap(), 3, 224, classes, &device));
    assert_eq!(count("imagenet-r18", 1000), (62, 11_689_512));
    assert_eq!(count("imagenet-r34", 1000).1, 21_797_672);
    assert_eq!(count("imagenet-r50", 1000), (161, 25_557_032));
    assert_eq!(count("imagenet-r101", 1000).1, 44_549_160);
    assert_eq!(count("imagenet-r50-gn", 1000), (161, 25_557_032));
    // Mini-ImageNet's 100 classes: `reference/param_counts.py` (the seed's resnet_ws.py).
    assert_eq!(count("imagenet-r50-ws", 100), (161, 23_712_932));
    // The seed's ImageNet ResNets (`GC_code/ImageNet/myresnet.py`, `myresnetgn.py`): a bias on
    // every convolution, 26,560 more weights in ResNet-50, 52,672 in ResNet-101 (the seed's classes
    // instantiated in PyTorch count 25,583,592 and 44,601,832; `reference/param_counts.py` derives
    // both).
    assert_eq!(count("r50bn", 1000), (214, 25_583_592));
    assert_eq!(count("r50gn", 1000), (214, 25_583_592));
    assert_eq!(count("r101bn", 1000).1, 44_601_832);
    assert_eq!(count("r101gn", 1000).1, 44_601_832);
}

/// The seed's CIFAR-100 models at 100 classes, counted from their definitions by
/// `crates/gc-lab/reference/param_counts.py` (which also reproduces torchvision's published
/// counts for resnet18/50, densenet121 and vgg11_bn, as a check of its method).
#[test]
fn cifar_models_have_the_seeds_parameter_counts() {
    let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex();
    for (name, expected) in [
        ("r18", 11_220_132),
        ("r34", 21_328_292),
        ("r50", 23_705_252),
        ("r101", 42_697_380),
        ("vgg11-bn", 9_277_284),
        ("resnext29-4x64d", 27_288_996),
        ("densenet121", 7_048_548),
    ] {
        let net = Net::new(name.parse().unwrap(), 3, 32, 100, &device);
        assert_eq!(trainable(&net).1, expected, "{name}");
    }
}

#[test]
fn forward_and_backward_on_a_tiny_batch() {
    let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex().autodiff();
    // Global average pooling lets the CIFAR models take 8x8 inputs, which keeps this fast;
    // VGG's five pools need 32x32.
    for (name, channels, size) in [
        ("small-cnn", 1, 28),
        ("small-cnn-gn", 1, 28),
        ("small-cnn-nonorm", 1, 28),
        ("resnet20", 3, 32),
        ("resnet20-gn", 3, 8),
        ("r18", 3, 32),
        ("r34", 3, 8),
        ("r50", 3, 32),
        ("r101", 3, 8),
        ("vgg11-bn", 3, 32),
        ("resnext29-4x64d", 3, 8),
        ("densenet121", 3, 8),
        ("imagenet-r18", 3, 64),
        ("imagenet-r34", 3, 32),
        ("imagenet-r101-gn", 3, 32),
        ("imagenet-r50-gn-ws", 3, 32),
        ("imagenet-r50-ws", 3, 32),
    ] {
        let name: ModelName = name.parse().unwrap();
        let net = Net::new(name, channels, size, 10, &device);
        let x = Tensor::<4>::ones([2, channels, size, size], &device);
        let logits = net.forward(x);
        assert_eq!(logits.dims(), [2, 10], "{name}");
        let grads = logits.sum().backward();
        let params = burn::optim::GradientsParams::from_grads(grads, &net);
        assert_eq!(
            params.len(),
            GcPlan::new(&net, Scope::None).entries().len(),
            "{name}"
        );
    }
}

/// Weight Standardization: each output channel's weights become `(w − mean) / (std + 1e-5)`
/// with the unbiased std, checked against the formula in f64 by reading the standardized
/// kernel back through one-hot inputs.
#[test]
fn weight_standardization_matches_the_formula() {
    let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex();
    let conv = burn::nn::conv::Conv2dConfig::new([2, 3], [3, 3])
        .with_bias(false)
        .init(&device);
    let fan_in = 2 * 9;
    let weights: Vec<f32> = conv.weight.val().into_data().try_to_vec().unwrap();
    // Input k is the one-hot of weight position k: the output is that weight, standardized.
    let mut eye = vec![0f32; fan_in * fan_in];
    for k in 0..fan_in {
        eye[k * fan_in + k] = 1.0;
    }
    let x = Tensor::<4>::from_data(
        burn::tensor::TensorData::new(eye, [fan_in, 2, 3, 3]),
        &device,
    );
    let out: Vec<f32> = resnet::apply(&conv, x, true)
        .into_data()
        .try_to_vec()
        .unwrap();
    for o in 0..3 {
        let w: Vec<f64> = weights[o * fan_in..(o + 1) * fan_in]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let mean = w.iter().sum::<f64>() / fan_in as f64;
        let var = w.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (fan_in - 1) as f64;
        for (k, &v) in w.iter().enumerate() {
            let expected = (v - mean) / (var.sqrt() + 1e-5);
            let got = out[k * 3 + o] as f64;
            assert!(
                (got - expected).abs() < 1e-5,
                "channel {o}, weight {k}: {got} vs {expected}"
            );
        }
    }
}

/// The normalization study's variants. The small CNN's count by hand: conv1 1·16·9 = 144, conv2
/// 16·32·9 = 4,608, fc1 1568·64 + 64 = 100,416, fc2 64·10 + 10 = 650, plus per conv channel γ and
/// β of a BatchNorm or GroupNorm (2·(16 + 32) = 96: 105,914) or a bias (48: 105,866). GroupNorm has
/// min(32, c/2) groups: two channels per group below 64 channels, the seed's 32 from 64 on.
#[test]
fn normalization_variants_have_their_norms_and_counts() {
    let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex();
    let net = |name: &str| Net::new(name.parse().unwrap(), 1, 28, 10, &device);
    let paths = |net: &Net| -> Vec<String> {
        let plan = GcPlan::new(net, Scope::ConvLinear);
        // Without the `Net` variant (`Small.`, `ResNet.`).
        let path =
            |e: &gradient_centralization::PlanEntry| e.path.split_once('.').unwrap().1.to_string();
        plan.entries().iter().map(path).collect()
    };
    assert_eq!(trainable(&net("small-cnn")), (10, 105_914));
    assert_eq!(trainable(&net("small-cnn-gn")), (10, 105_914));
    assert_eq!(trainable(&net("small-cnn-nonorm")), (8, 105_866));
    let gn = paths(&net("small-cnn-gn"));
    assert!(gn.contains(&"gn2.gamma".to_string()) && !gn.iter().any(|p| p.starts_with("bn")));
    let plain = paths(&net("small-cnn-nonorm"));
    assert!(plain.contains(&"conv1.bias".to_string()), "{plain:?}");
    assert!(
        !plain
            .iter()
            .any(|p| p.starts_with("bn") || p.starts_with("gn"))
    );
    // The default job's small CNN keeps its parameter names (`bn1.gamma`, ...).
    assert!(paths(&net("small-cnn")).contains(&"bn1.gamma".to_string()));
    assert_eq!(
        trainable(&net("resnet20-gn")),
        trainable(&net("resnet20")),
        "GroupNorm has BatchNorm's parameters"
    );
    for (channels, groups) in [(16, 8), (32, 16), (64, 32), (2048, 32)] {
        assert_eq!(resnet::group_norm(channels, &device).num_groups, groups);
    }
}

#[test]
fn names_parse_and_print() {
    for name in ModelName::ALL {
        assert_eq!(name.parse::<ModelName>().unwrap().to_string(), *name);
    }
    for (seed, ours) in [
        ("v11", "vgg11-bn"),
        ("rx29", "resnext29-4x64d"),
        ("d121", "densenet121"),
        ("r50ws", "imagenet-r50-ws"),
        ("imagenet-r50-bias", "r50bn"),
        ("IMAGENET-R101-GN-BIAS", "r101gn"),
    ] {
        assert_eq!(seed.parse::<ModelName>().unwrap().to_string(), ours);
    }
    assert_eq!(
        "ResNet50".parse::<ModelName>().unwrap(),
        ModelName::Cifar(50)
    );
    // Every ImageNet ResNet prints a name that parses back to it.
    for depth in [18, 34, 50, 101] {
        for norm in [NormKind::Batch, NormKind::Group] {
            for ws in [false, true] {
                for conv_bias in [false, true] {
                    let name = ModelName::ImageNet {
                        depth,
                        norm,
                        ws,
                        conv_bias,
                    };
                    assert_eq!(name.to_string().parse::<ModelName>(), Ok(name), "{name}");
                }
            }
        }
    }
    assert!(
        "r19"
            .parse::<ModelName>()
            .unwrap_err()
            .contains("known: small-cnn")
    );
}
