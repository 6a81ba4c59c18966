//! Every layer layout burn can produce, planned from its real shape and structure and checked
//! through a real optimizer step.

use burn::module::Module;
use burn::nn::conv::{ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{Linear, LinearConfig, LinearLayout};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, Tolerance};
use gradient_centralization::{
    Centralize, Decision, GcConfig, GcError, GcPlan, Hyperparameters, LayerKind, Preset, Rule,
    Scope, SkipReason, paper,
};

fn device() -> Device {
    crate::device().autodiff()
}

#[derive(Module, Debug)]
struct Heads {
    /// `Linear(1, 3)` stored column-major: fan-in 1, must be left alone.
    narrow: Linear,
    /// `Linear(6, 1)` stored column-major: one output unit with fan-in 6, must be centralized.
    head: Linear,
}

fn col(d_input: usize, d_output: usize, device: &Device) -> Linear {
    LinearConfig::new(d_input, d_output)
        .with_layout(LinearLayout::Col)
        .init(device)
}

/// Before its first use, burn declares a `Col` weight with the transposed shape; the plan must
/// read the real one.
#[test]
fn linear_col_layout_is_planned_from_its_real_shape() {
    let device = device();
    let heads = Heads {
        narrow: col(1, 3, &device),
        head: col(6, 1, &device),
    };
    assert_eq!(
        heads.head.weight.lazy_shape().to_vec(),
        vec![1, 6],
        "burn's lazy shape"
    );
    let plan = GcPlan::new(&heads, Scope::ConvLinear);
    let entry = |path: &str| plan.get(path).unwrap().clone();
    assert_eq!(entry("head.weight").shape, vec![6, 1]);
    assert_eq!(
        entry("head.weight").decision,
        Decision::Centralize(Centralize::along(1))
    );
    assert_eq!(entry("narrow.weight").shape, vec![1, 3]);
    assert_eq!(
        entry("narrow.weight").decision,
        Decision::Skip(SkipReason::FanInOne)
    );

    // Through a step of SGD_GC: the head moves by −lr·GC(g), the narrow layer by −lr·g.
    let mut optimizer = paper::sgd_gc(&heads, &Hyperparameters::default()).unwrap();
    let x = Tensor::<2>::from_floats([[0.5, -1.0, 2.0, 0.25, -0.75, 1.5]], &device);
    let loss = heads.head.forward(x).sum()
        + heads
            .narrow
            .forward(Tensor::<2>::from_floats([[2.0]], &device))
            .square()
            .sum();
    let grads = GradientsParams::from_grads(loss.backward(), &heads);
    let head_g = grads.get::<2>(heads.head.weight.id).unwrap();
    let narrow_g = grads.get::<2>(heads.narrow.weight.id).unwrap();
    let head_w = heads.head.weight.val().inner();
    let narrow_w = heads.narrow.weight.val().inner();
    let lr = 0.1;
    let heads = optimizer.step(lr, heads, grads);
    let expect_head = head_w - Centralize::along(1).apply(head_g).mul_scalar(lr);
    crate::assert_param(&heads.head.weight, expect_head, 1e-6);
    let expect_narrow = narrow_w - narrow_g.mul_scalar(lr);
    crate::assert_param(&heads.narrow.weight, expect_narrow, 1e-6);
}

#[derive(Module, Debug)]
struct Dense {
    fc: Linear,
}

/// What a port that picks GC's axis by rank does to burn's `[d_input, d_output]` Linear weight:
/// it centralizes each input's row over the output units. The gradient of
/// `sum(fc(x) * c)` is `x_i * c_j`; with x = (1, 2, -1) and c = (1, 2, 3, 6) (mean 3) the rows
/// minus their means are `x_i * (c_j - 3)`, worked out by hand below. The layer-aware rule
/// centralizes each column instead: `(x_i - 2/3) * c_j`.
#[test]
fn the_rank_rule_on_burns_layout_centralizes_a_linear_weight_per_input_row() {
    let device = device();
    let dense = Dense {
        fc: LinearConfig::new(3, 4).init(&device),
    };
    let plan = GcPlan::new(&dense, Scope::BURN_RANK_GC);
    assert_eq!(
        plan.get("fc.weight").unwrap().decision,
        Decision::Centralize(Centralize::along(0))
    );
    assert_eq!(
        plan.get("fc.bias").unwrap().decision,
        Decision::Skip(SkipReason::Rank { rank: 1, above: 1 })
    );
    let step = |preset: Preset| {
        let dense = dense.clone();
        let mut optimizer = preset.init(&dense, &Hyperparameters::default()).unwrap();
        let x = Tensor::<2>::from_floats([[1.0, 2.0, -1.0]], &device);
        let c = Tensor::<2>::from_floats([[1.0, 2.0, 3.0, 6.0]], &device);
        let loss = (dense.fc.forward(x) * c).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &dense);
        let before = dense.fc.weight.val().inner();
        let after = optimizer.step(0.1, dense, grads).fc.weight.val().inner();
        (before - after).div_scalar(0.1)
    };
    let by_rows = [
        [-2.0, -1.0, 0.0, 3.0],
        [-4.0, -2.0, 0.0, 6.0],
        [2.0, 1.0, 0.0, -3.0],
    ];
    let by_columns =
        [1.0 / 3.0, 4.0 / 3.0, -5.0 / 3.0].map(|x| [1.0, 2.0, 3.0, 6.0].map(|c| x * c));
    step(Preset::SGD_GC.burn_rank())
        .into_data()
        .assert_approx_eq::<f32>(
            &Tensor::<2>::from_floats(by_rows, &device).into_data(),
            Tolerance::absolute(1e-5),
        );
    step(Preset::SGD_GC).into_data().assert_approx_eq::<f32>(
        &Tensor::<2>::from_floats(by_columns, &device).into_data(),
        Tolerance::absolute(1e-5),
    );
}

#[derive(Module, Debug)]
struct Decoder {
    up: ConvTranspose2d,
}

/// `ConvTranspose2d` 4 -> 6 channels in 2 groups, without a bias: weight `[4, 3, 2, 2]`.
fn grouped_without_bias(device: &Device) -> Decoder {
    Decoder {
        up: ConvTranspose2dConfig::new([4, 6], [2, 2])
            .with_groups(2)
            .with_bias(false)
            .init(device),
    }
}

#[test]
fn a_grouped_transposed_conv_without_bias_is_never_centralized_across_groups() {
    let device = device();
    let decoder = grouped_without_bias(&device);
    let plan = GcPlan::new(&decoder, Scope::ConvLinear);
    let entry = plan.get("up.weight").unwrap();
    assert_eq!(
        entry.kind,
        LayerKind::ConvTranspose {
            dims: 2,
            groups: None
        }
    );
    assert_eq!(entry.decision, Decision::Skip(SkipReason::GroupsUnknown));
    assert!(plan.to_string().contains("groups unknown"), "{plan}");
    // The optimizer refuses, naming the parameter and the fix.
    match paper::sgd_gcc(&decoder, &Hyperparameters::default()) {
        Err(err @ GcError::GroupsUnknown { .. }) => {
            let message = err.to_string();
            assert!(
                message.contains("up.weight") && message.contains("Rule::Groups"),
                "{message}"
            );
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a bias-less transposed conv was planned without its groups"),
    }
    // The seed's input-channel rule needs no groups, and the baseline none either.
    assert!(paper::sgd(&decoder, &Hyperparameters::default()).is_ok());
    assert!(
        Preset::SGD_GCC
            .rank_rule()
            .init(&decoder, &Hyperparameters::default())
            .is_ok()
    );
}

#[test]
fn a_rule_gives_a_bias_less_transposed_conv_its_groups() {
    let device = device();
    let decoder = grouped_without_bias(&device);
    let gc = GcConfig::new(Scope::ConvOnly)
        .with_rule(r"^up\.weight$", Rule::Groups(2))
        .unwrap();
    let optimizer = Preset::SGD_GCC
        .init_with(&decoder, &Hyperparameters::default(), &gc)
        .unwrap();
    assert_steps_per_output_channel_within_groups(decoder, optimizer, &device);
}

#[test]
fn a_grouped_transposed_conv_with_a_bias_takes_its_groups_from_it() {
    let device = device();
    let decoder = Decoder {
        up: ConvTranspose2dConfig::new([4, 6], [2, 2])
            .with_groups(2)
            .init(&device),
    };
    let plan = GcPlan::new(&decoder, Scope::ConvOnly);
    assert_eq!(
        plan.get("up.weight").unwrap().decision,
        Decision::Centralize(Centralize::grouped(1, 2))
    );
    let optimizer = paper::sgd_gcc(&decoder, &Hyperparameters::default()).unwrap();
    assert_steps_per_output_channel_within_groups(decoder, optimizer, &device);
}

/// One SGD_GCC step (no momentum, no decay) of a 4 -> 6, 2-group, 2x2 transposed convolution.
fn assert_steps_per_output_channel_within_groups(
    decoder: Decoder,
    mut optimizer: burn::optim::ModuleOptimizer,
    device: &Device,
) {
    let device = device.clone();
    let x = Tensor::<4>::from_floats(
        [[
            [[0.5, -1.0], [2.0, 0.25]],
            [[-0.75, 1.5], [0.3, 0.9]],
            [[1.1, -0.2], [0.6, -0.4]],
            [[0.8, 0.1], [-1.3, 0.7]],
        ]],
        &device,
    );
    let loss = decoder.up.forward(x).square().sum();
    let grads = GradientsParams::from_grads(loss.backward(), &decoder);
    let g = grads.get::<4>(decoder.up.weight.id).unwrap();
    let w = decoder.up.weight.val().inner();
    let lr = 0.1;
    let decoder = optimizer.step(lr, decoder, grads);
    // Per output channel over its own group's 2 input rows and the 2x2 kernel: fan-in 8.
    let expect = w.clone() - Centralize::grouped(1, 2).apply(g.clone()).mul_scalar(lr);
    let got = decoder.up.weight.val().inner();
    got.clone()
        .into_data()
        .assert_approx_eq::<f32>(&expect.into_data(), Tolerance::absolute(1e-6));
    // Centralizing across the groups (fan-in 16) gives other numbers.
    let across = w - Centralize::along(1).apply(g).mul_scalar(lr);
    let diff = (got - across).abs().max().into_scalar::<f32>();
    assert!(diff > 1e-4, "the groups matter in this test ({diff})");
}

#[test]
fn rules_whose_groups_do_not_fit_are_errors_that_say_so() {
    let device = device();
    let decoder = grouped_without_bias(&device);
    // 3 groups do not divide the 4 input channels.
    for rule in [
        Rule::Groups(3),
        Rule::Kind(LayerKind::ConvTranspose {
            dims: 2,
            groups: Some(3),
        }),
    ] {
        let err = GcConfig::new(Scope::ConvOnly)
            .with_rule("up", rule)
            .unwrap()
            .plan(&decoder)
            .unwrap_err();
        match &err {
            GcError::RuleDoesNotFit { path, reason, .. } => {
                assert_eq!(path, "up.weight");
                assert!(reason.contains("3 groups do not divide"), "{reason}");
                assert!(!err.to_string().contains("fan-in 1"), "{err}");
            }
            other => panic!("{other:?}"),
        }
    }
    // Groups on a layer that has none.
    let heads = Heads {
        narrow: col(1, 3, &device),
        head: col(6, 1, &device),
    };
    let err = GcConfig::new(Scope::ConvLinear)
        .with_rule(r"^head\.weight$", Rule::Groups(2))
        .unwrap()
        .plan(&heads)
        .unwrap_err();
    assert!(
        matches!(&err, GcError::RuleDoesNotFit { reason, .. } if reason.contains("transposed")),
        "{err:?}"
    );
}

/// A user's own struct that happens to be called `Linear`, with a 1-d weight.
mod user {
    use burn::module::{Module, Param};
    use burn::tensor::Tensor;

    #[derive(Module, Debug)]
    pub struct Linear {
        pub weight: Param<Tensor<1>>,
    }
}

#[derive(Module, Debug)]
struct Odd {
    scale: user::Linear,
}

#[test]
fn a_kind_that_does_not_fit_the_shape_is_skipped_with_the_true_reason() {
    let device = device();
    let odd = Odd {
        scale: user::Linear {
            weight: burn::module::Param::from_tensor(Tensor::<1>::ones([4], &device)),
        },
    };
    let plan = GcPlan::new(&odd, Scope::ConvLinear);
    let entry = plan.get("scale.weight").unwrap();
    assert_eq!(entry.kind, LayerKind::Linear);
    assert_eq!(
        entry.decision,
        Decision::Skip(SkipReason::DoesNotFit(
            "axis 1 does not exist in a rank-1 tensor".into()
        ))
    );
    assert!(
        plan.to_string()
            .contains("no: does not fit: axis 1 does not exist in a rank-1 tensor"),
        "{plan}"
    );
}
