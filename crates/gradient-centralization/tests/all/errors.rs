//! Bad input gets a typed error naming the problem, never a panic.

use std::io::Write;
use std::process::{Command, Stdio};

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use gradient_centralization::optim::{
    AdagradConfig, AdamConfig, AdamWConfig, SgdConfig, WeightDecay,
};
use gradient_centralization::trace::Trace;
use gradient_centralization::{
    Family, GcError, Hyperparameters, PlanConfig, Preset, Rule, Scope, check_gradients, check_lr,
};

fn hyper_error(result: Result<impl Sized, GcError>) -> &'static str {
    match result {
        Err(GcError::InvalidHyperparameter { name, .. }) => name,
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("accepted"),
    }
}

#[test]
fn invalid_hyperparameters_are_named() {
    assert_eq!(hyper_error(check_lr(-0.1)), "lr");
    assert_eq!(hyper_error(check_lr(f64::NAN)), "lr");
    assert_eq!(
        hyper_error(AdamConfig::new().with_betas(1.0, 0.999).build()),
        "betas[0]"
    );
    assert_eq!(
        hyper_error(AdamConfig::new().with_betas(0.9, -0.1).build()),
        "betas[1]"
    );
    assert_eq!(
        hyper_error(AdamWConfig::new().with_eps(-1e-8).build()),
        "eps"
    );
    assert_eq!(
        hyper_error(AdamWConfig::new().with_weight_decay(-1.0).build()),
        "weight_decay"
    );
    assert_eq!(
        hyper_error(AdagradConfig::new().with_eps(-1e-10).build()),
        "eps"
    );
    assert_eq!(
        hyper_error(AdagradConfig::new().with_lr_decay(-1.0).build()),
        "lr_decay"
    );
    assert_eq!(
        hyper_error(SgdConfig::new().with_momentum(-0.9).build()),
        "momentum"
    );
    assert_eq!(
        hyper_error(
            SgdConfig::new()
                .with_weight_decay(WeightDecay::Decoupled(f64::INFINITY))
                .build()
        ),
        "weight_decay"
    );
    // torch.optim accepts eps = 0 (Adam, AdamW, Adagrad) and any finite dampening.
    assert!(AdamConfig::new().with_eps(0.0).build().is_ok());
    assert!(AdamWConfig::new().with_eps(0.0).build().is_ok());
    assert!(AdagradConfig::new().with_eps(0.0).build().is_ok());
    assert!(SgdConfig::new().with_dampening(-0.5).build().is_ok());
    assert!(SgdConfig::new().with_dampening(1.5).build().is_ok());
    assert_eq!(
        hyper_error(SgdConfig::new().with_dampening(f64::NAN).build()),
        "dampening"
    );
    assert!(matches!(
        SgdConfig::new().with_nesterov(true).build(),
        Err(GcError::Nesterov { momentum: 0.0, .. })
    ));
    assert!(matches!(
        SgdConfig::new()
            .with_nesterov(true)
            .with_momentum(0.9)
            .with_dampening(0.1)
            .build(),
        Err(GcError::Nesterov { .. })
    ));
}

#[test]
fn names_and_inapplicable_hyperparameters() {
    let model: Linear = LinearConfig::new(3, 2).init(&crate::device());
    assert!(matches!(
        "sgd_gx".parse::<Preset>(),
        Err(GcError::UnknownOptimizer { .. })
    ));
    assert_eq!("AdamW_GCC".parse::<Preset>().unwrap(), Preset::ADAMW_GCC);
    let hyper = Hyperparameters {
        betas: Some((0.9, 0.99)),
        ..Hyperparameters::default()
    };
    assert!(matches!(
        Preset::SGD_GC.init(&model, &hyper),
        Err(GcError::NotApplicable { name: "betas", .. })
    ));
}

#[test]
fn every_preset_name_parses_back_to_the_preset() {
    for &preset in Preset::ALL {
        let wrapped = (preset.family != Family::Ranger).then(|| {
            [
                preset.lookahead(),
                preset.rank_rule().lookahead(),
                preset.burn_rank().lookahead(),
            ]
        });
        for p in [preset, preset.rank_rule(), preset.burn_rank()]
            .into_iter()
            .chain(wrapped.into_iter().flatten())
        {
            let name = p.to_string();
            assert_eq!(name.parse::<Preset>().unwrap(), p, "{name}");
        }
    }
    assert_eq!(Preset::SGD_GC.lookahead().to_string(), "lookahead_sgd_gc");
    assert_eq!(
        "Lookahead_RAdam_GC2".parse::<Preset>().unwrap(),
        Preset::RADAM_GC2.lookahead()
    );
    assert_eq!(Preset::SGD_GC.rank_rule().to_string(), "sgd_gc:rank_rule");
    assert_eq!(
        "ADAM_GCC2:rank_rule".parse::<Preset>().unwrap(),
        Preset::ADAM_GCC2.rank_rule()
    );
    assert_eq!(Preset::SGD_GC.burn_rank().to_string(), "sgd_gc:burn_rank");
    assert_eq!(
        "Adam_GCC:burn_rank".parse::<Preset>().unwrap().scope,
        Scope::BURN_RANK_GCC
    );
    for scope in [
        Scope::RankRule { above: 2 },
        Scope::RankOnBurnLayout { above: 2 },
    ] {
        let own = Preset {
            scope,
            ..Preset::SGD
        };
        assert_eq!(own.to_string().parse::<Preset>().unwrap(), own);
    }
    for bad in [
        "sgd:rank_rule",
        "sgd:burn_rank",
        "sgd_gc:burn_rank>2",
        "sgd:burn_rank>x",
        "sgd_gc:rank_rule>2",
        "sgd_gc:rank",
        "sgd:rank_rule>x",
        "lookahead_lookahead_sgd",
    ] {
        assert!(
            matches!(bad.parse::<Preset>(), Err(GcError::UnknownOptimizer { .. })),
            "{bad}"
        );
    }
}

#[test]
fn a_rule_regex_that_does_not_compile_is_an_error() {
    let err = PlanConfig::new(Scope::ConvLinear)
        .with_rule("fc.(weight", Rule::Skip)
        .unwrap_err();
    assert!(
        matches!(err, GcError::InvalidRule { ref pattern, .. } if pattern == "fc.(weight"),
        "{err}"
    );
}

fn trace_error(doc: &str) -> (String, String) {
    match Trace::parse(doc) {
        Err(GcError::Trace { at, message }) => (at, message),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("accepted {doc}"),
    }
}

const PARAM: &str = r#"{"name": "fc.weight", "kind": "linear", "shape": [2, 2], "value": [1, 2, 3, 4], "grads": [[1, 1, 1, 1]]}"#;

#[test]
fn malformed_trace_documents_name_the_json_path() {
    let doc = |optimizer: &str, hyper: &str, param: &str| {
        format!(r#"{{"optimizer": "{optimizer}", "hyper": {hyper}, "params": [{param}]}}"#)
    };
    let cases = [
        (
            doc(
                "sgd_gc",
                r#"{"lr": 0.1}"#,
                &PARAM.replace("[1, 2, 3, 4]", "[1, 2, 3]"),
            ),
            "$.params[0].value",
        ),
        (
            doc(
                "sgd_gc",
                r#"{"lr": 0.1}"#,
                &PARAM.replace("[[1, 1, 1, 1]]", "[[1, 1, 1, 1], [1]]"),
            ),
            "$.params[0].grads[1]",
        ),
        (
            doc("sgd_gc", r#"{"lr": 0.1}"#, &PARAM.replace("linear", "lstm")),
            "$.params[0].kind",
        ),
        (
            doc("sgd_gc", r#"{"lr": 0.1}"#, &PARAM.replace("[2, 2]", "[4]")),
            "$.params[0].shape",
        ),
        (
            doc(
                "sgd_gc",
                r#"{"lr": 0.1}"#,
                &PARAM.replace("\"name\"", "\"nmae\""),
            ),
            "$.params[0].nmae",
        ),
        (doc("sgd_gx", r#"{"lr": 0.1}"#, PARAM), "$.optimizer"),
        (doc("sgd_gc", r#"{"lr": -0.1}"#, PARAM), "$.hyper.lr"),
        (doc("sgd_gc", r#"{}"#, PARAM), "$.hyper.lr"),
        (
            doc("sgd_gc", r#"{"lr": 0.1, "mometum": 0.9}"#, PARAM),
            "$.hyper.mometum",
        ),
        (
            doc("adam_gc", r#"{"betas": [0.9, 1.5]}"#, PARAM),
            "$.hyper.betas[1]",
        ),
        (
            doc("sgd_gc", r#"{"lr": 0.1, "nesterov": true}"#, PARAM),
            "$.hyper.nesterov",
        ),
        (
            doc("sgd_gc", r#"{"lr": 0.1, "betas": [0.9, 0.9]}"#, PARAM),
            "$.hyper.betas",
        ),
        (doc("sgd_gc", r#"{"lr": [0.1, 0.2]}"#, PARAM), "$.hyper.lr"),
        (doc("sgd_gc", r#"{"lr": [-0.1]}"#, PARAM), "$.hyper.lr[0]"),
        (doc("sgd_gc", r#"{"lr": ["fast"]}"#, PARAM), "$.hyper.lr[0]"),
        // An element count that overflows usize, and one beyond any real trace.
        (
            doc(
                "sgd_gc",
                r#"{"lr": 0.1}"#,
                &PARAM
                    .replace("[2, 2]", "[4294967296, 4294967296, 4294967296]")
                    .replace("linear", "conv1d"),
            ),
            "$.params[0].shape",
        ),
        (
            doc(
                "sgd_gc",
                r#"{"lr": 0.1}"#,
                &PARAM
                    .replace("[2, 2]", "[65536, 65536, 2]")
                    .replace("linear", "conv1d"),
            ),
            "$.params[0].shape",
        ),
        (
            doc(
                "sgd_gc",
                r#"{"lr": 0.1}"#,
                &PARAM.replace("[2, 2]", "[2, 1e30]"),
            ),
            "$.params[0].shape[1]",
        ),
        (
            doc(
                "sgd_gc",
                r#"{"lr": 0.1}"#,
                &PARAM.replace("\"kind\"", "\"groups\": 2, \"kind\""),
            ),
            "$.params[0].groups",
        ),
        (
            doc(
                "sgd_gc",
                r#"{"lr": 0.1}"#,
                &PARAM.replace("[1, 2, 3, 4]", "[1, 2, 1e39, 4]"),
            ),
            "$.params[0].value[2]",
        ),
        (
            doc(
                "sgd_gc",
                r#"{"lr": 0.1}"#,
                &PARAM.replace("[[1, 1, 1, 1]]", "[[1, -4e38, 1, 1]]"),
            ),
            "$.params[0].grads[0][1]",
        ),
        (r#"{"optimizer": "sgd", "params": []"#.to_string(), "$"),
        (
            r#"{"optimizer": "sgd", "hyper": {"lr": 1}, "params": [], "extra": 1}"#.to_string(),
            "$.extra",
        ),
    ];
    for (doc, expected_at) in cases {
        let parsed = Trace::parse(&doc);
        // Hyperparameter ranges are checked when the optimizer is built, at run time.
        let (at, message) = match parsed {
            Ok(trace) => match trace.run(&crate::device()) {
                Err(GcError::Trace { at, message }) => (at, message),
                other => panic!("{doc}: {other:?}"),
            },
            Err(_) => trace_error(&doc),
        };
        assert_eq!(at, expected_at, "{doc}: {message}");
    }
}

#[test]
fn a_grouped_transposed_conv_takes_groups_that_divide_its_input_channels() {
    let param = r#"{"name": "up.weight", "kind": "conv_transpose1d", "groups": 3, "shape": [4, 1, 1], "value": [1, 2, 3, 4], "grads": [[1, 1, 1, 1]]}"#;
    let doc = format!(r#"{{"optimizer": "sgd_gcc", "hyper": {{"lr": 1}}, "params": [{param}]}}"#);
    assert_eq!(trace_error(&doc).0, "$.params[0].groups");
    let ok = doc.replace("\"groups\": 3", "\"groups\": 2");
    assert!(Trace::parse(&ok).is_ok());
}

#[test]
fn values_that_overflow_f32_are_accepted_in_f64_traces() {
    let doc = format!(
        r#"{{"optimizer": "sgd", "hyper": {{"lr": 0.1}}, "dtype": "f64", "params": [{}]}}"#,
        PARAM.replace("[1, 2, 3, 4]", "[1, 2, 1e39, 4]")
    );
    let answer = Trace::parse(&doc).unwrap().run(&crate::device()).unwrap();
    // SGD moves every element by lr·g = 0.1: 1e39 keeps its value (0.1 is far below its ulp),
    // the element beside it shows the step was taken.
    assert_eq!(answer["steps"][0]["fc.weight"][2], serde_json::json!(1e39));
    assert_eq!(
        answer["steps"][0]["fc.weight"][3],
        serde_json::json!(4.0 - 0.1)
    );
}

#[test]
fn a_step_that_leaves_f32_is_reported_never_printed_as_null() {
    // 3e38 - 1·(-3e38) = 6e38 > f32::MAX: the first step overflows to infinity.
    let doc = format!(
        r#"{{"optimizer": "sgd", "hyper": {{"lr": 1}}, "params": [{}]}}"#,
        PARAM
            .replace("[1, 2, 3, 4]", "[3e38, 2, 3, 4]")
            .replace("[[1, 1, 1, 1]]", "[[-3e38, 1, 1, 1]]")
    );
    let trace = Trace::parse(&doc).unwrap();
    match trace.run(&crate::device()) {
        Err(GcError::Trace { at, message }) => {
            assert_eq!(at, "$.params[0]");
            assert!(
                message.contains("after step 1") && message.contains("inf"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    let (code, stdout, stderr) = gc_trace(&doc);
    assert_ne!(code, 0);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("$.params[0]"), "{stderr}");
}

#[test]
fn steps_must_agree_between_params() {
    let other = PARAM
        .replace("fc.weight", "fc2.weight")
        .replace("[[1, 1, 1, 1]]", "[[1, 1, 1, 1], [1, 1, 1, 1]]");
    let doc =
        format!(r#"{{"optimizer": "sgd", "hyper": {{"lr": 1}}, "params": [{PARAM}, {other}]}}"#);
    let (at, message) = trace_error(&doc);
    assert_eq!(at, "$.params[1].grads");
    assert!(message.contains("fc.weight"), "{message}");
}

#[test]
fn non_finite_gradients_are_reported_with_the_path() {
    #[derive(Module, Debug)]
    struct Two {
        first: Linear,
        second: Linear,
    }
    let device = crate::device().autodiff();
    let model = Two {
        first: LinearConfig::new(2, 2).init(&device),
        second: LinearConfig::new(2, 2).init(&device),
    };
    let x = Tensor::<2>::from_floats([[1.0, f32::NAN]], &device);
    let loss = model
        .second
        .forward(model.first.forward(Tensor::<2>::ones([1, 2], &device)))
        .sum()
        + model.second.forward(x).sum().mul_scalar(0.0);
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    match check_gradients(&model, &grads) {
        Err(GcError::NonFiniteGradient { path, count }) => {
            assert_eq!(path, "second.weight");
            assert!(count > 0);
        }
        other => panic!("{other:?}"),
    }
}

fn gc_trace(stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gc-trace"))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn the_trace_program_answers_or_fails_without_partial_output() {
    let doc = format!(r#"{{"optimizer": "SGD_GC", "hyper": {{"lr": 0.5}}, "params": [{PARAM}]}}"#);
    let (code, stdout, stderr) = gc_trace(&doc);
    assert_eq!(code, 0, "{stderr}");
    let answer: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(answer["optimizer"], "sgd_gc");
    // A constant gradient per output row is removed entirely by GC: the weight does not move.
    assert_eq!(
        answer["steps"][0]["fc.weight"],
        serde_json::json!([1.0, 2.0, 3.0, 4.0])
    );

    let (code, stdout, stderr) = gc_trace(&doc.replace("[1, 2, 3, 4]", "[1, 2]"));
    assert_ne!(code, 0);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("$.params[0].value"), "{stderr}");
}

/// docs/TRACE-FORMAT.md stays in step with the parser: every optimizer name, `hyper` key and
/// parameter kind the parser takes is documented there, and each documented kind parses.
#[test]
fn the_trace_format_document_names_everything_the_parser_takes() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/TRACE-FORMAT.md");
    let Ok(doc) = std::fs::read_to_string(path) else {
        // The published crate holds no docs/ folder; the repository always does.
        assert!(
            !std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.git")).exists(),
            "{path} is missing from the repository"
        );
        return;
    };
    let quoted = |name: &str| format!("`{name}`");
    for preset in Preset::ALL {
        assert!(doc.contains(&quoted(&preset.name())), "optimizer {preset}");
    }
    assert!(doc.contains("`sgd_gc:rank_rule`") && doc.contains("`sgd:rank_rule>2`"));
    for key in gradient_centralization::trace::HYPER_KEYS {
        assert!(doc.contains(&format!("| `{key}` |")), "hyper key {key}");
    }
    for kind in gradient_centralization::trace::KINDS {
        assert!(doc.contains(&quoted(kind)), "kind {kind}");
        let rank = match kind {
            "bias" | "norm" => "[4]",
            "conv1d" | "conv_transpose1d" => "[2, 2, 1]",
            "conv2d" | "conv_transpose2d" => "[1, 2, 2, 1]",
            "conv3d" | "conv_transpose3d" => "[1, 2, 2, 1, 1]",
            _ => "[2, 2]",
        };
        let param = PARAM.replace("linear", kind).replace("[2, 2]", rank);
        let doc = format!(r#"{{"optimizer": "sgd", "hyper": {{"lr": 1}}, "params": [{param}]}}"#);
        assert!(Trace::parse(&doc).is_ok(), "{kind}: {doc}");
    }
}
