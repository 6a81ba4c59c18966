//! `--tensorboard`: the event files of a run hold what its metrics say, step by step and epoch
//! by epoch, and a resumed run continues them without repeating a step.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::train::tensorboard::{FILE_VERSION, event_files, read_events, scalars};

/// `run` on the test images into `dir`, its events into `events`.
fn run_with_events(cfg: &RunConfig, dir: &Path, events: &Path, resume: bool) -> Summary {
    let options = RunOptions {
        resume,
        tensorboard: Some(events.to_path_buf()),
    };
    run(cfg, &splits(), dir, &ProgressBar::hidden(), &options).unwrap()
}

/// Every scalar of every event file in `dir`, by tag, then step (a step seen twice fails).
fn read_back(dir: &Path) -> BTreeMap<String, BTreeMap<i64, f32>> {
    let mut all: BTreeMap<String, BTreeMap<i64, f32>> = BTreeMap::new();
    for file in event_files(dir).unwrap() {
        let events = read_events(&file).unwrap();
        assert_eq!(events[0].file_version.as_deref(), Some(FILE_VERSION));
        for (tag, step, value) in scalars(&events) {
            let old = all.entry(tag.clone()).or_default().insert(step, value);
            assert!(old.is_none(), "{tag} at step {step} written twice");
        }
    }
    all
}

#[test]
fn the_event_files_hold_the_runs_metrics() {
    let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let (dir, tb) = (crate::test_dir("tb-run"), crate::test_dir("tb-events"));
    let cfg = config(0.05);
    let summary = run_with_events(&cfg, &dir, &tb, false);
    let scalars = read_back(&tb);
    // 64 images in batches of 16: 4 steps an epoch, 2 epochs.
    let steps: Vec<i64> = scalars["train/loss"].keys().copied().collect();
    assert_eq!(steps, (1..=8).collect::<Vec<_>>());
    for (i, epoch) in summary.epochs.iter().enumerate() {
        let at = i as i64 + 1;
        assert_eq!(scalars["epoch/test_top1"][&at], epoch.test_top1 as f32);
        assert_eq!(scalars["epoch/test_loss"][&at], epoch.test_loss as f32);
        assert_eq!(scalars["epoch/train_loss"][&at], epoch.train_loss as f32);
        assert_eq!(scalars["epoch/lr"][&at], epoch.lr as f32);
        // The epoch's training loss and accuracy are the means of its steps' (whole batches).
        let mean = |tag: &str| -> f64 {
            (1..=4)
                .map(|s| f64::from(scalars[tag][&(4 * i as i64 + s)]))
                .sum::<f64>()
                / 4.0
        };
        let (loss, top1) = (mean("train/loss"), mean("train/top1"));
        assert!(
            (loss - epoch.train_loss).abs() < 1e-6,
            "{loss} against {epoch:?}"
        );
        assert!(
            (top1 - epoch.train_top1).abs() < 1e-4,
            "{top1} against {epoch:?}"
        );
    }
    assert!(scalars["train/lr"].values().all(|&lr| lr == 0.05));
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(tb).unwrap();
}

/// One epoch, then (the summary gone, as after a crash) a resumed run to two: a second event
/// file takes the second epoch, every step once, the values those of a run never stopped.
#[test]
fn a_resumed_run_continues_its_events() {
    let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = config(0.05);
    let (straight, straight_tb) = (
        crate::test_dir("tb-straight"),
        crate::test_dir("tb-straight-ev"),
    );
    run_with_events(&cfg, &straight, &straight_tb, false);

    let (dir, tb) = (
        crate::test_dir("tb-resumed"),
        crate::test_dir("tb-resumed-ev"),
    );
    let one = RunConfig {
        epochs: 1,
        ..cfg.clone()
    };
    run_with_events(&one, &dir, &tb, false);
    write_atomic(
        &dir.join("config.json"),
        serde_json::to_string_pretty(&cfg).unwrap().as_bytes(),
    )
    .unwrap();
    std::fs::remove_file(dir.join("summary.json")).unwrap();
    run_with_events(&cfg, &dir, &tb, true);

    assert_eq!(event_files(&tb).unwrap().len(), 2);
    // Every number but the throughput, which is the clock's.
    let numbers = |dir: &Path| {
        let mut all = read_back(dir);
        assert!(all.remove("epoch/images_per_second").is_some());
        all
    };
    assert_eq!(numbers(&tb), numbers(&straight_tb));
    for d in [straight, straight_tb, dir, tb] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// A fresh run into the same folder replaces the earlier run's event files: TensorBoard would
/// show both runs' steps otherwise.
#[test]
fn a_fresh_run_replaces_earlier_events() {
    let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let (dir, tb) = (crate::test_dir("tb-fresh"), crate::test_dir("tb-fresh-ev"));
    let cfg = RunConfig {
        epochs: 1,
        ..config(0.05)
    };
    run_with_events(&cfg, &dir, &tb, false);
    run_with_events(&cfg, &dir, &tb, false);
    assert_eq!(event_files(&tb).unwrap().len(), 1);
    assert_eq!(read_back(&tb)["train/loss"].len(), 4);
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(tb).unwrap();
}
