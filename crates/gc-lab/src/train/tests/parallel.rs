//! Data-parallel runs: several devices train as one with batch norm groups of their shares, and
//! resume as they would have run.

use super::*;

/// Data parallelism: two replicas, each with half of every batch of 16, train a ResNet-20 (batch
/// norm over each half) as one device with batch norm groups of 8 does, to rounding: losses,
/// test scores (the running statistics follow the first half on both) and the final weights.
/// Replicas on one device stand in for two devices here; with `GC_TEST_DEVICE=wgpu` flex and
/// lavapipe also train side by side, two backends in one step.
#[test]
fn n_devices_with_batch_b_train_as_one_with_batch_n_b() {
    let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = crate::test_dir("run-parallel");
    let mut cfg = config(0.05);
    cfg.model = ModelName::RESNET20;
    cfg.epochs = 2;
    let one = test_device();
    let mut pairs = vec![(one, format!("{one},{one}"))];
    if one != crate::device::DeviceName::Flex {
        pairs.push((crate::device::DeviceName::Flex, format!("flex,{one}")));
    }
    // The same seed initializes differently on each backend: the reference is the main device's.
    let mut references = Vec::new();
    for (main, pair) in pairs {
        let single = RunConfig {
            bn_batch: Some(8),
            device: main.into(),
            ..cfg.clone()
        };
        let reference = dir.join(format!("one-{}", main).replace(':', "-"));
        let expected = run_on_splits(&single, &reference, false).unwrap();
        let expected_logits = checkpointed_logits(&reference, cfg.model);
        let parallel = RunConfig {
            device: pair.parse().unwrap(),
            ..cfg.clone()
        };
        let out = dir.join(pair.replace([',', ':'], "-"));
        let summary = run_on_splits(&parallel, &out, false).unwrap();
        for (a, b) in expected.epochs.iter().zip(&summary.epochs) {
            for (what, x, y) in [
                ("train loss", a.train_loss, b.train_loss),
                ("test loss", a.test_loss, b.test_loss),
                ("train top-1", a.train_top1, b.train_top1),
            ] {
                assert!(
                    (x - y).abs() <= 1e-4 * x.abs().max(1.0),
                    "{pair}, epoch {}: {what} {x} on one device, {y} on two",
                    a.epoch
                );
            }
        }
        let logits = checkpointed_logits(&out, cfg.model);
        let err = expected_logits
            .iter()
            .zip(&logits)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(err <= 1e-3, "{pair}: final logits differ by {err}");
        references.push((main, expected));
    }
    // Batch norm over all 16 on one device trains differently: the comparison can fail.
    let whole = run_on_splits(&cfg, &dir.join("whole"), false).unwrap();
    assert_ne!(
        whole.epochs[0].train_loss,
        references[0].1.epochs[0].train_loss
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A data-parallel run stopped after its first epoch and resumed ends with the numbers of one
/// that ran straight through: the optimizer state the devices held is checkpointed and restored.
#[test]
fn a_resumed_data_parallel_run_ends_as_an_uninterrupted_one() {
    let _turn = crate::TEST_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let dir = crate::test_dir("run-parallel-resume");
    let one = test_device();
    let cfg = RunConfig {
        device: format!("{one},{one}").parse().unwrap(),
        epochs: 2,
        ..config(0.05)
    };
    let straight = run_on_splits(&cfg, &dir.join("straight"), false).unwrap();
    let resumed_dir = dir.join("resumed");
    let resumed = resume_after_first_epoch(&cfg, &resumed_dir);
    assert_eq!(resumed.epochs.len(), 2);
    for (a, b) in straight.epochs.iter().zip(&resumed.epochs) {
        assert_eq!(
            (a.train_loss, a.test_loss, a.test_top1),
            (b.train_loss, b.test_loss, b.test_top1),
            "epoch {}",
            a.epoch
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}
