//! Layer-aware plans: which parameter is centralized along which axis, and why not.

use burn::module::Module;
use burn::nn::conv::{
    Conv1d, Conv1dConfig, Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig,
};
use burn::nn::{BatchNorm, BatchNormConfig, Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::Device;
use gradient_centralization::{
    Centralize, ConvTransposeRule, Decision, GcError, GcPlan, LayerKind, PlanConfig, Rule, Scope,
    SkipReason,
};

#[derive(Module, Debug)]
pub struct Zoo {
    pub conv: Conv2d,
    pub bn: BatchNorm,
    pub conv1d: Conv1d,
    pub up: ConvTranspose2d,
    pub upg: ConvTranspose2d,
    pub emb: Embedding,
    pub fc: Linear,
    pub head: Linear,
    pub narrow: Linear,
}

pub fn zoo(device: &Device) -> Zoo {
    Zoo {
        conv: Conv2dConfig::new([3, 4], [3, 3]).init(device),
        bn: BatchNormConfig::new(4).init(device),
        conv1d: Conv1dConfig::new(2, 5, 3).init(device),
        up: ConvTranspose2dConfig::new([4, 3], [2, 2]).init(device),
        upg: ConvTranspose2dConfig::new([4, 2], [2, 2])
            .with_groups(2)
            .init(device),
        emb: EmbeddingConfig::new(5, 3).init(device),
        fc: LinearConfig::new(7, 6).init(device),
        head: LinearConfig::new(6, 1).init(device),
        narrow: LinearConfig::new(1, 3).init(device),
    }
}

fn decision(plan: &GcPlan, path: &str) -> Decision {
    plan.entries()
        .iter()
        .find(|entry| entry.path == path)
        .unwrap_or_else(|| panic!("no parameter {path} in\n{plan}"))
        .decision
        .clone()
}

fn axis(op: Centralize) -> Decision {
    Decision::Centralize(op)
}

#[test]
fn kinds_are_read_off_the_owning_structs() {
    let plan = GcPlan::new(&zoo(&crate::device()), Scope::ConvLinear);
    let kind = |path: &str| plan.entries().iter().find(|e| e.path == path).unwrap().kind;
    assert_eq!(kind("conv.weight"), LayerKind::Conv(2));
    assert_eq!(kind("conv.bias"), LayerKind::Bias);
    assert_eq!(kind("bn.gamma"), LayerKind::Norm);
    assert_eq!(kind("bn.beta"), LayerKind::Norm);
    assert_eq!(kind("conv1d.weight"), LayerKind::Conv(1));
    assert_eq!(
        kind("up.weight"),
        LayerKind::ConvTranspose {
            dims: 2,
            groups: Some(1)
        }
    );
    // groups inferred from the bias: out 2 / (out/groups = 1) = 2
    assert_eq!(
        kind("upg.weight"),
        LayerKind::ConvTranspose {
            dims: 2,
            groups: Some(2)
        }
    );
    assert_eq!(kind("emb.weight"), LayerKind::Embedding);
    assert_eq!(kind("fc.weight"), LayerKind::Linear);
}

#[test]
fn conv_linear_scope_is_the_seeds_gc_with_the_right_axes() {
    let plan = GcPlan::new(&zoo(&crate::device()), Scope::ConvLinear);
    assert_eq!(decision(&plan, "conv.weight"), axis(Centralize::along(0)));
    assert_eq!(decision(&plan, "conv1d.weight"), axis(Centralize::along(0)));
    assert_eq!(decision(&plan, "up.weight"), axis(Centralize::along(1)));
    assert_eq!(
        decision(&plan, "upg.weight"),
        axis(Centralize::grouped(1, 2))
    );
    assert_eq!(decision(&plan, "fc.weight"), axis(Centralize::along(1)));
    // Linear(6, 1): one output unit with fan-in 6, centralized (a rank rule would zero it per row).
    assert_eq!(decision(&plan, "head.weight"), axis(Centralize::along(1)));
    // Linear(1, 3): fan-in 1, left alone.
    assert_eq!(
        decision(&plan, "narrow.weight"),
        Decision::Skip(SkipReason::FanInOne)
    );
    for path in ["conv.bias", "bn.gamma", "bn.beta", "emb.weight", "fc.bias"] {
        assert_eq!(
            decision(&plan, path),
            Decision::Skip(SkipReason::NotFanIn),
            "{path}"
        );
    }
    assert_eq!(plan.centralized().count(), 6);
}

#[test]
fn conv_only_scope_includes_conv1d_and_transposed_but_not_linear() {
    let plan = GcPlan::new(&zoo(&crate::device()), Scope::ConvOnly);
    assert_eq!(decision(&plan, "conv1d.weight"), axis(Centralize::along(0)));
    assert_eq!(
        decision(&plan, "upg.weight"),
        axis(Centralize::grouped(1, 2))
    );
    assert_eq!(
        decision(&plan, "fc.weight"),
        Decision::Skip(SkipReason::NotConv)
    );
    assert_eq!(plan.centralized().count(), 4);
}

#[test]
fn rank_rule_reproduces_the_reference_codes_quirks() {
    let device = crate::device();
    let gcc = GcPlan::new(&zoo(&device), Scope::RANK_RULE_GCC);
    // Conv1d weights have rank 3: the seed's GCC skips them.
    assert_eq!(
        decision(&gcc, "conv1d.weight"),
        Decision::Skip(SkipReason::Rank { rank: 3, above: 3 })
    );
    // Transposed convs per INPUT channel (PyTorch's axis 0 of (in, out/groups, k...)).
    assert_eq!(decision(&gcc, "up.weight"), axis(Centralize::along(0)));
    let gc = GcPlan::new(&zoo(&device), Scope::RANK_RULE_GC);
    // Embeddings (rank 2) are centralized per row; Linear per PyTorch row = burn column.
    assert_eq!(decision(&gc, "emb.weight"), axis(Centralize::along(0)));
    assert_eq!(decision(&gc, "fc.weight"), axis(Centralize::along(1)));
    // The seed zeroes fan-in-1 gradients; its rule here does too.
    assert_eq!(decision(&gc, "narrow.weight"), axis(Centralize::along(1)));
    assert_eq!(
        decision(&gc, "bn.gamma"),
        Decision::Skip(SkipReason::Rank { rank: 1, above: 1 })
    );
}

#[test]
fn none_scope_centralizes_nothing() {
    let plan = GcPlan::new(&zoo(&crate::device()), Scope::None);
    assert_eq!(plan.centralized().count(), 0);
    assert_eq!(
        decision(&plan, "conv.weight"),
        Decision::Skip(SkipReason::ScopeNone)
    );
}

#[test]
fn seed_input_channel_rule_for_transposed_convs_on_request() {
    let plan = PlanConfig::new(Scope::ConvLinear)
        .with_conv_transpose(ConvTransposeRule::SeedInputChannel)
        .build(&zoo(&crate::device()))
        .unwrap();
    assert_eq!(decision(&plan, "up.weight"), axis(Centralize::along(0)));
    assert_eq!(decision(&plan, "upg.weight"), axis(Centralize::along(0)));
}

#[test]
fn user_rules_override_by_path_and_the_last_match_wins() {
    let plan = PlanConfig::new(Scope::ConvLinear)
        .with_rule(r"^fc\.", Rule::Skip)
        .unwrap()
        .with_rule(r"^emb\.weight$", Rule::Centralize(Centralize::along(1)))
        .unwrap()
        .with_rule(r"^fc\.weight$", Rule::Kind(LayerKind::Linear))
        .unwrap()
        .build(&zoo(&crate::device()))
        .unwrap();
    assert_eq!(decision(&plan, "fc.weight"), axis(Centralize::along(1)));
    assert_eq!(
        decision(&plan, "fc.bias"),
        Decision::Skip(SkipReason::Rule(r"^fc\.".into()))
    );
    assert_eq!(decision(&plan, "emb.weight"), axis(Centralize::along(1)));
}

#[test]
fn a_rule_that_does_not_fit_names_the_parameter() {
    let err = PlanConfig::new(Scope::ConvLinear)
        .with_rule("bias", Rule::Centralize(Centralize::along(1)))
        .unwrap()
        .build(&zoo(&crate::device()))
        .unwrap_err();
    match err {
        GcError::RuleDoesNotFit { path, shape, .. } => {
            assert_eq!(path, "conv.bias");
            assert_eq!(shape, vec![4]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_plan_prints_as_a_table() {
    let plan = GcPlan::new(&zoo(&crate::device()), Scope::ConvLinear);
    let table = plan.to_string();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("parameter"), "{table}");
    assert_eq!(lines.len(), plan.entries().len() + 2, "{table}");
    let upg = lines.iter().find(|l| l.starts_with("upg.weight")).unwrap();
    assert!(
        upg.contains("[4, 1, 2, 2]") && upg.contains("conv_transpose2d/g2"),
        "{upg}"
    );
    assert!(upg.contains("yes: axis 1 in 2 groups, fan-in 8"), "{upg}");
    let narrow = lines
        .iter()
        .find(|l| l.starts_with("narrow.weight"))
        .unwrap();
    assert!(
        narrow.contains("no: fan-in 1: GC would zero it"),
        "{narrow}"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("6 of 17 parameter tensors centralized"),
        "{table}"
    );
}
