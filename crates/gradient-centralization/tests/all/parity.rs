//! Parity with the seed's arithmetic: every fixture in `tests/fixtures/` was written by
//! `reference/generate_fixtures.py` (numpy, float64, from the seed's formulas) and holds a trace
//! document and the reference answer. We replay the document through `gc-trace`'s engine.

use std::path::PathBuf;

use gradient_centralization::trace::Trace;
use serde_json::Value;

fn fixtures() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            (name, serde_json::from_str(&text).unwrap())
        })
        .collect()
}

/// How far `actual` is from `expected`, worst case over every step and parameter.
#[derive(Debug, Clone, Copy, Default)]
struct Errors {
    /// Normwise: `‖a − e‖∞ / ‖e‖∞` per parameter tensor and step. In f32 a weight that comes out of
    /// cancellation (`w − lr·d` with both near 0.5 giving 2e-3) carries the rounding error of its
    /// operands' scale (an ulp of 0.5 is 6e-8), whatever the implementation; measured against the
    /// tensor's scale that is ~1e-7.
    normwise: f64,
    /// Elementwise: `|a − e| / max(|e|, 1e-3)`.
    elementwise: f64,
}

fn errors(actual: &Value, expected: &Value) -> Errors {
    let mut worst = Errors::default();
    let actual_steps = actual["steps"].as_array().unwrap();
    let expected_steps = expected["steps"].as_array().unwrap();
    assert_eq!(actual_steps.len(), expected_steps.len());
    for (a_step, e_step) in actual_steps.iter().zip(expected_steps) {
        let e_step = e_step.as_object().unwrap();
        assert_eq!(a_step.as_object().unwrap().len(), e_step.len());
        for (name, e_values) in e_step {
            let a_values: Vec<f64> = a_step[name]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            let e_values: Vec<f64> = e_values
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            assert_eq!(a_values.len(), e_values.len(), "{name}");
            let scale = e_values.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            for (a, e) in a_values.iter().zip(&e_values) {
                let diff = (a - e).abs();
                worst.normwise = worst.normwise.max(diff / scale.max(f64::MIN_POSITIVE));
                worst.elementwise = worst.elementwise.max(diff / e.abs().max(1e-3));
            }
        }
    }
    worst
}

fn run(input: &Value, dtype: &str) -> Value {
    let mut input = input.clone();
    input["dtype"] = Value::String(dtype.into());
    let trace = Trace::parse(&input.to_string()).expect("fixture parses");
    trace.run(&crate::device()).expect("fixture runs")
}

/// Tolerances: f32 normwise 1e-6 (see [`Errors::normwise`]); f64 elementwise 1e-12, which shows the
/// arithmetic is the reference's operation for operation.
#[test]
fn every_fixture_matches_the_reference_in_f32_and_f64() {
    let fixtures = fixtures();
    assert!(
        fixtures.len() >= 40,
        "expected the generated fixtures, found {}",
        fixtures.len()
    );
    let mut failures = Vec::new();
    println!(
        "{:<40} {:>14} {:>16} {:>16}",
        "fixture", "f32 normwise", "f32 elementwise", "f64 elementwise"
    );
    for (name, fixture) in &fixtures {
        let single = errors(&run(&fixture["input"], "f32"), &fixture["expected"]);
        let double = errors(&run(&fixture["input"], "f64"), &fixture["expected"]);
        println!(
            "{name:<40} {:>14.2e} {:>16.2e} {:>16.2e}",
            single.normwise, single.elementwise, double.elementwise
        );
        if single.normwise > 1e-6 || double.elementwise > 1e-12 {
            failures.push(format!("{name}: f32 {single:?}, f64 {double:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "beyond tolerance:\n{}",
        failures.join("\n")
    );
}
