//! A grid on real images: every value's comparison, the table and plots, resuming, refusals.

use super::*;
use crate::compare::tests::tiny;

fn tiny_sweep(out: &Path, resume: bool) -> SweepArgs {
    SweepArgs {
        over: Setting::Lr,
        values: vec![0.1, 0.01],
        compare: tiny(out, resume),
    }
}

/// Two rates x two arms x two seeds: a comparison per rate, the table's cells from those runs'
/// summaries, the plots; resuming trains nothing again and gives the same table.
#[test]
fn a_sweep_runs_every_value_and_reports_the_grid() {
    let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let out = crate::test_dir("sweep");
    let events = out.join("events");
    let mut args = tiny_sweep(&out, false);
    args.compare.tensorboard = Some(events.clone());
    sweep(args).unwrap();
    // --tensorboard: a folder per value, as --out.
    for value in ["lr=0.01", "lr=0.1"] {
        let dir = events.join(value).join("sgd_gc").join("seed1");
        let files = crate::train::tensorboard::event_files(&dir).unwrap();
        assert_eq!(files.len(), 1, "{}", dir.display());
    }
    for value in ["lr=0.01", "lr=0.1"] {
        for arm in ["sgd", "sgd_gc"] {
            for seed in [0, 1] {
                let run = out.join(value).join(arm).join(format!("seed{seed}"));
                assert!(run.join("summary.json").is_file(), "{}", run.display());
            }
        }
        assert!(out.join(value).join("comparison.md").is_file());
    }
    let table = std::fs::read_to_string(out.join("sweep.md")).unwrap();
    // Columns in ascending order; each cell the mean ± std of that value's two seeds.
    assert!(
        table.contains("| arm | lr=0.01 | lr=0.1 | best |"),
        "{table}"
    );
    let finals = |value: &str, arm: &str| -> Vec<f64> {
        find_summaries(&[out.join(value).join(arm)])
            .unwrap()
            .into_iter()
            .map(|(_, s)| s.final_test_top1)
            .collect()
    };
    let (m01, s01) = mean_std(&finals("lr=0.01", "sgd_gc"));
    let (m1, s1) = mean_std(&finals("lr=0.1", "sgd_gc"));
    let row = format!("| sgd_gc | {m01:.4} ± {s01:.4} (2) | {m1:.4} ± {s1:.4} (2) |");
    assert!(table.contains(&row), "{row} not in\n{table}");
    for file in [
        "sweep-accuracy.svg",
        "sweep-accuracy.png",
        "sweep-loss.svg",
        "sweep-loss.png",
    ] {
        assert!(out.join(file).is_file(), "{file}");
    }
    let svg = std::fs::read_to_string(out.join("sweep-accuracy.svg")).unwrap();
    assert!(
        svg.contains("sgd_gc (n=2)") && svg.contains("0.01"),
        "legend and values"
    );

    let summary = std::fs::read_to_string(out.join("lr=0.1/sgd/seed1/summary.json")).unwrap();
    sweep(tiny_sweep(&out, true)).unwrap();
    let again = std::fs::read_to_string(out.join("lr=0.1/sgd/seed1/summary.json")).unwrap();
    assert_eq!(summary, again, "finished runs are kept, not trained again");
    assert_eq!(
        std::fs::read_to_string(out.join("sweep.md")).unwrap(),
        table
    );
    std::fs::remove_dir_all(out).unwrap();
}

/// A rate that makes every run diverge is a result of the grid: the sweep goes on to the next
/// value, its cells say so, the figure marks it, and resuming keeps those runs (the sweep stopped
/// at the first diverging run before). The rows follow --arms (they followed the folders' names).
#[test]
fn a_diverging_value_is_a_result_of_the_grid() {
    let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let out = crate::test_dir("sweep-diverged");
    let mut args = tiny_sweep(&out, false);
    args.values = vec![0.01, 1e30];
    // Rows in the order of --arms (the folders sort the other way).
    args.compare.arms = Some(vec!["sgd_gc".into(), "sgd".into()]);
    sweep(args.clone()).unwrap();
    let big = folder(Setting::Lr, 1e30);
    let summary = std::fs::read_to_string(out.join(&big).join("sgd/seed0/summary.json")).unwrap();
    let table = std::fs::read_to_string(out.join("sweep.md")).unwrap();
    for arm in ["sgd", "sgd_gc"] {
        let row = table
            .lines()
            .find(|line| line.starts_with(&format!("| {arm} |")))
            .unwrap();
        assert!(row.ends_with("| diverged (2) | lr=0.01 |"), "{row}");
    }
    let row = |arm: &str| table.find(&format!("| {arm} |")).unwrap();
    assert!(row("sgd_gc") < row("sgd"), "{table}");
    let svg = std::fs::read_to_string(out.join("sweep-accuracy.svg")).unwrap();
    assert!(svg.contains("runs that diverged"), "the figure says so");
    let comparison = std::fs::read_to_string(out.join(&big).join("comparison.md")).unwrap();
    assert!(comparison.contains("| sgd (2 diverged) |"), "{comparison}");
    args.compare.resume = true;
    sweep(args).unwrap();
    let again = std::fs::read_to_string(out.join(&big).join("sgd/seed0/summary.json")).unwrap();
    assert_eq!(summary, again, "a diverged run is kept on resuming");
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn a_sweep_refuses_a_fixed_setting_and_bad_values() {
    let out = crate::test_dir("sweep-refused");
    let mut args = tiny_sweep(&out, false);
    args.compare.lr = Some(0.1);
    let err = sweep(args).unwrap_err().to_string();
    assert!(err.contains("--over lr varies what --lr"), "{err}");
    let mut args = tiny_sweep(&out, false);
    args.values = vec![0.1, f64::NAN];
    let err = sweep(args).unwrap_err().to_string();
    assert!(err.contains("NaN is not a finite value"), "{err}");
    let _ = std::fs::remove_dir_all(out);
}

/// The grid's values ascend, each once; -0 is 0, so that it names the folder `=0`.
#[test]
fn grid_values_ascend_once() {
    let values = grid_values(&[0.1, 0.001, 0.1, -0.0, 0.0, 1e-5]).unwrap();
    assert_eq!(values, [0.0, 1e-5, 0.001, 0.1]);
    assert!(values[0].is_sign_positive());
    assert_eq!(folder(Setting::WeightDecay, values[0]), "weight-decay=0");
    assert_eq!(folder(Setting::Lr, values[1]), "lr=0.00001");
    assert!(grid_values(&[-0.1]).is_err());
}
