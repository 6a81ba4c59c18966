//! The comparison on real images: arms over seeds, resuming, the overrides, refusals, stamps.

use super::*;

/// Two arms x two seeds of one short epoch on 30 images of the shipped Fashion-MNIST subset.
pub(crate) fn tiny(out: &Path, resume: bool) -> CompareArgs {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist-subset");
    CompareArgs {
        suite: Suite::Fashion,
        arms: Some(vec!["sgd".into(), "SGD_GC".into()]),
        seeds: 2,
        model: None,
        epochs: Some(1),
        lr: None,
        base_lr: None,
        init: None,
        keep_last_batch: false,
        bn_batch: None,
        seed_buffer_aliasing: false,
        device: Devices::default(),
        batch_size: Some(10),
        weight_decay: None,
        train_per_class: Some(3),
        test_per_class: Some(2),
        data: Some(data),
        out: Some(out.to_path_buf()),
        workers: 1,
        target_loss: None,
        resume,
        tensorboard: None,
        pretrained: None,
    }
}

/// Every arm and seed gets its run folder and the table names every arm; resuming keeps the
/// finished runs as they are (the same summaries, not trained again).
#[test]
fn compares_arms_over_seeds_and_resumes_without_training_again() {
    let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let out = crate::test_dir("compare");
    let events = out.join("tensorboard");
    compare(CompareArgs {
        tensorboard: Some(events.clone()),
        ..tiny(&out, false)
    })
    .unwrap();
    // --tensorboard: one folder of event files per arm and seed.
    for arm in ["sgd", "sgd_gc"] {
        for seed in [0, 1] {
            let dir = events.join(arm).join(format!("seed{seed}"));
            let files = crate::train::tensorboard::event_files(&dir).unwrap();
            assert_eq!(files.len(), 1, "{}", dir.display());
        }
    }
    let summary = |arm: &str, seed: u64| {
        let path = out
            .join(arm)
            .join(format!("seed{seed}"))
            .join("summary.json");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let every_summary = || -> Vec<String> {
        ["sgd", "sgd_gc"]
            .iter()
            .flat_map(|arm| [0, 1].map(|seed| summary(arm, seed)))
            .collect()
    };
    let before = every_summary();
    let table = std::fs::read_to_string(out.join("comparison.md")).unwrap();
    assert!(
        table.contains("| sgd |") && table.contains("| sgd_gc |"),
        "{table}"
    );
    compare(tiny(&out, true)).unwrap();
    let after = every_summary();
    assert_eq!(before, after, "finished runs are kept, not trained again");
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn refuses_zero_seeds_and_unknown_arms() {
    let out = crate::test_dir("compare-refused");
    let mut args = tiny(&out, false);
    args.seeds = 0;
    let err = compare(args).unwrap_err().to_string();
    assert!(err.contains("--seeds must be at least 1"), "{err}");
    let mut args = tiny(&out, false);
    args.arms = Some(vec!["sgd_gx".into()]);
    assert!(compare(args).is_err());
    // A seed name of another suite is not taken either.
    assert!(arm(Suite::Fashion, "sgdGC").is_err());
    assert_eq!(arm(Suite::Cifar100, "adamWGC2").unwrap(), Preset::ADAM_GC2);
    let err = arm(Suite::Cifar100, "adamWGC").unwrap_err().to_string();
    assert!(err.contains("adam_gc") && err.contains("adamw_gc"), "{err}");
    assert_eq!(arm(Suite::Imagenet, "sgdGC").unwrap(), Preset::SGD_GCC);
    std::fs::remove_dir_all(out).unwrap();
}

/// `--pretrained` is checked before anything runs: a model that takes no torchvision file (not a
/// torchvision ResNet, or one with Weight Standardization) or a file that is not there stops the
/// comparison before it reads data or makes its folder.
#[test]
fn a_pretrained_file_is_checked_before_anything_runs() {
    let dir = crate::test_dir("compare-pretrained");
    let out = dir.join("out");
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pretrained/tiny-r18.pth");
    let with = |model: &str, file: &Path| CompareArgs {
        model: Some(model.into()),
        pretrained: Some(file.to_path_buf()),
        ..tiny(&out, false)
    };
    for (model, file, says) in [
        ("small-cnn", file.as_path(), "small-cnn does not take one"),
        (
            "imagenet-r50-ws",
            file.as_path(),
            "imagenet-r50-ws does not take one",
        ),
        (
            "imagenet-r18",
            Path::new("absent.pth"),
            "absent.pth: no such file",
        ),
    ] {
        let err = compare(with(model, file)).unwrap_err().to_string();
        assert!(err.contains(says), "{err}");
        assert!(!out.exists(), "{model}: the folder was made");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Without `--arms` a suite runs its own (the seed's) arms; the overrides reach the settings;
/// the seed's aliasing is refused where no arm has it.
#[test]
fn overrides_and_default_arms_resolve() {
    let out = Path::new("unused");
    let mut args = tiny(out, false);
    args.suite = Suite::Imagenet;
    args.arms = None;
    args.model = Some("r101gn".into());
    args.batch_size = Some(32);
    let (settings, _) = resolve(&args).unwrap();
    assert_eq!((settings.batch_size, settings.bn_batch), (32, Some(8)));
    args.bn_batch = Some(0);
    args.keep_last_batch = true;
    args.base_lr = Some(0.2);
    let (settings, presets) = resolve(&args).unwrap();
    assert_eq!(presets, [Preset::SGD, Preset::SGD_GCC]);
    assert_eq!(settings.model.to_string(), "r101gn");
    assert_eq!(settings.bn_batch, None);
    assert!(!settings.drop_last.train && !settings.drop_last.test);
    assert_eq!(settings.sgd_lr, 0.2);
    args.seed_buffer_aliasing = true;
    let err = resolve(&args).unwrap_err().to_string();
    assert!(err.contains("--seed-buffer-aliasing"), "{err}");
    args.arms = Some(vec!["ranger_gc2".into()]);
    assert!(resolve(&args).is_ok());
}

/// Dates from the civil calendar: the epoch, a leap day, the turn of a century that is not a
/// leap year, and a time of day (values from `date -u -d @SECS +%Y%m%d-%H%M%S`).
#[test]
fn stamps_are_utc_calendar_dates() {
    assert_eq!(utc_stamp(0), "19700101-000000");
    assert_eq!(utc_stamp(951_782_400), "20000229-000000");
    assert_eq!(utc_stamp(4_107_542_399), "21000228-235959");
    assert_eq!(utc_stamp(4_107_542_400), "21000301-000000");
    assert_eq!(utc_stamp(1_796_169_600 + 3_723), "20261202-010203");
}
