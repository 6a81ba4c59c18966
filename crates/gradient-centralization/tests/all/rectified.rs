//! RAdam, Ranger and Lookahead beyond the fixtures: the seed's buffer aliasing and where it shows,
//! the two Lookahead phases, and which of them keep GC's weight-mean invariant.

use burn::nn::{Linear, LinearConfig};
use burn::optim::Optimizer;
use gradient_centralization::optim::{
    FirstMoment, Gc, GcOptimizer, LookaheadConfig, Phase, RAdamConfig, SgdConfig, WeightDecay,
    ranger,
};
use gradient_centralization::trace::Trace;
use gradient_centralization::{Centralize, GcError, Hyperparameters, Placement, Preset};

use crate::properties::{SHAPE, gradient, mean_drift};

/// Run `steps` steps from the same weights and gradients; the weights after each step.
fn trajectory<O: Optimizer>(optimizer: O, lr: f64, steps: u64) -> Vec<Vec<f32>> {
    let mut w = gradient(999, SHAPE, 0.5);
    let mut state = None;
    (0..steps)
        .map(|step| {
            let (next, next_state) =
                optimizer.step(lr, w.clone(), gradient(step, SHAPE, 1.0), state.take());
            w = next;
            state = next_state;
            w.clone().into_data().try_to_vec::<f32>().unwrap()
        })
        .collect()
}

fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

fn gc(placement: Placement) -> Gc {
    Gc::new(Centralize::along(0), placement)
}

/// With β₂ = 0.999, ρₜ stays below 5 for steps 1 to 5 (ρ₁ = 1, ρ₅ = 4.996, ρ₆ = 5.994): those are
/// the steps where the seed's `G_grad = exp_avg` writes the decay and the GC of the update into
/// the stored moment. The first update is the same either way (the moment is written after it is
/// used). With decay the trajectories part from step 2. With GC on the update and no decay the
/// stored moment is only centralized, and GC is linear and idempotent, so the unrectified updates
/// agree to rounding: the difference shows at step 6, the first rectified one, where the moment's
/// unit means pass through the elementwise division.
#[test]
fn the_seeds_buffer_aliasing_changes_radam_where_its_moment_is_written_and_read() {
    for (decay, placement, first_apart) in [
        (1e-2, Placement::Gradient, 2),
        (1e-2, Placement::Update, 2),
        (0.0, Placement::Update, 6),
    ] {
        let config = RAdamConfig::new().with_weight_decay(decay);
        let run = |aliasing| {
            let radam = config.with_first_moment(aliasing).build().unwrap();
            trajectory(radam.with_gc(gc(placement)), 0.1, 7)
        };
        let (formula, seed) = (run(FirstMoment::Average), run(FirstMoment::SeedOverwritten));
        let case = format!("decay {decay}, {placement:?}");
        assert_eq!(formula[0], seed[0], "{case}: step 1");
        for step in 2..first_apart {
            let apart = largest_difference(&formula[step - 1], &seed[step - 1]);
            assert!(apart < 5e-7, "{case}: step {step} apart by {apart}");
        }
        let apart = largest_difference(&formula[first_apart - 1], &seed[first_apart - 1]);
        assert!(
            apart > 1e-5,
            "{case}: step {first_apart} apart by only {apart}"
        );
    }
    // Without decay and with GC on the gradient the aliased moment is never written: the same
    // numbers, bit for bit.
    let run = |aliasing| {
        let radam = RAdamConfig::new()
            .with_first_moment(aliasing)
            .build()
            .unwrap();
        trajectory(radam.with_gc(gc(Placement::Gradient)), 0.1, 7)
    };
    assert_eq!(run(FirstMoment::Average), run(FirstMoment::SeedOverwritten));
}

/// Lookahead with α = 1 moves the slow weights all the way to the fast ones: the inner optimizer's
/// numbers (to the rounding of `slow + (fast − slow)`), in both phases. With the paper's phase and
/// k beyond the run nothing syncs: the same numbers, bit for bit.
#[test]
fn lookahead_that_cannot_pull_back_is_its_inner_optimizer() {
    let sgd = SgdConfig::new()
        .with_momentum(0.9)
        .with_weight_decay(WeightDecay::L2(5e-4))
        .build()
        .unwrap()
        .with_gc(gc(Placement::Gradient));
    let inner = trajectory(sgd.clone(), 0.1, 7);
    for phase in [Phase::Seed, Phase::Paper] {
        let full = LookaheadConfig::new()
            .with_k(2)
            .with_alpha(1.0)
            .with_phase(phase)
            .build(sgd.clone())
            .unwrap();
        for (step, (a, b)) in trajectory(full, 0.1, 7).iter().zip(&inner).enumerate() {
            let apart = largest_difference(a, b);
            assert!(apart < 1e-6, "{phase:?}, step {}: {apart}", step + 1);
        }
    }
    let never = LookaheadConfig::new()
        .with_k(8)
        .with_phase(Phase::Paper)
        .build(sgd)
        .unwrap();
    assert_eq!(trajectory(never, 0.1, 7), inner);
}

/// α = 0 freezes the slow weights: each sync puts the weights back where the slow copy was taken.
/// The seed's wrapper takes it after step 1 and syncs after steps 1, 1 + k, ...; the paper's phase
/// (the seed's Ranger) takes the initial weights and syncs after k, 2k, ...
#[test]
fn the_two_lookahead_phases_differ_by_one_step() {
    let sgd = SgdConfig::new().build().unwrap();
    let start = gradient(999, SHAPE, 0.5)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let frozen = |phase| {
        let lookahead = LookaheadConfig::new()
            .with_k(3)
            .with_alpha(0.0)
            .with_phase(phase)
            .build(sgd.clone())
            .unwrap();
        trajectory(lookahead, 0.1, 7)
    };
    let seed = frozen(Phase::Seed);
    for step in [4, 7] {
        assert_eq!(seed[step - 1], seed[0], "seed phase, step {step}");
    }
    assert_ne!(seed[0], start);
    assert_ne!(seed[2], seed[0]);
    let paper = frozen(Phase::Paper);
    for step in [3, 6] {
        assert_eq!(paper[step - 1], start, "paper phase, step {step}");
    }
    assert_ne!(paper[3], start);
}

/// The seed's Ranger is its RAdam (rectified from ρₜ > 5) in Lookahead with the paper's phase:
/// with k beyond the run it is that RAdam alone.
#[test]
fn ranger_without_a_sync_is_its_radam() {
    let radam = RAdamConfig::ranger().with_weight_decay(1e-2);
    let alone = trajectory(
        radam.build().unwrap().with_gc(gc(Placement::Update)),
        1e-2,
        7,
    );
    let unsynced = ranger(radam, LookaheadConfig::ranger().with_k(8))
        .unwrap()
        .with_gc(gc(Placement::Update));
    assert_eq!(trajectory(unsynced, 1e-2, 7), alone);
    let synced = ranger(radam, LookaheadConfig::ranger().with_k(3))
        .unwrap()
        .with_gc(gc(Placement::Update));
    assert_ne!(trajectory(synced, 1e-2, 7)[2], alone[2]);
}

/// GC on the update keeps each unit's weight mean under RAdam and Ranger (Lookahead mixes weights
/// with equal unit means), Lookahead keeps SGD_GC's; GC on RAdam's gradient does not (the adaptive
/// division comes after it).
#[test]
fn weight_means_under_radam_ranger_and_lookahead() {
    let radam = RAdamConfig::new().with_weight_decay(5e-4);
    let sgd = SgdConfig::new()
        .with_momentum(0.9)
        .with_weight_decay(WeightDecay::L2(5e-4))
        .build()
        .unwrap();
    let kept = [
        (
            "radam_gc2",
            mean_drift(radam.build().unwrap().with_gc(gc(Placement::Update)), 1e-2),
        ),
        (
            "radam_gc2, the seed's aliasing",
            mean_drift(
                radam
                    .with_first_moment(FirstMoment::SeedOverwritten)
                    .build()
                    .unwrap()
                    .with_gc(gc(Placement::Update)),
                1e-2,
            ),
        ),
        (
            "ranger_gc2",
            mean_drift(
                ranger(RAdamConfig::ranger(), LookaheadConfig::ranger())
                    .unwrap()
                    .with_gc(gc(Placement::Update)),
                1e-2,
            ),
        ),
        (
            "lookahead_sgd_gc",
            mean_drift(
                LookaheadConfig::new()
                    .build(sgd)
                    .unwrap()
                    .with_gc(gc(Placement::Gradient)),
                0.1,
            ),
        ),
    ];
    for (name, drift) in kept {
        assert!(drift < 2e-5, "{name}: weight mean drifted by {drift}");
    }
    let drift = mean_drift(
        radam.build().unwrap().with_gc(gc(Placement::Gradient)),
        1e-2,
    );
    assert!(
        drift > 1e-3,
        "radam_gc: weight mean drifted by only {drift}"
    );
}

/// Lookahead's k and α belong to `lookahead_*` and Ranger, the seed's aliasing to RAdam and
/// Ranger; Ranger cannot be wrapped in a second Lookahead, by name or by value.
#[test]
fn hyperparameters_belong_to_their_optimizers() {
    let model: Linear = LinearConfig::new(3, 2).init(&crate::device());
    // Lookahead's k and alpha belong to lookahead_* and Ranger; the seed's aliasing to RAdam and
    // Ranger; Ranger cannot be wrapped in a second Lookahead.
    let k = Hyperparameters {
        k: Some(3),
        ..Hyperparameters::default()
    };
    assert!(matches!(
        Preset::RADAM_GC.init(&model, &k),
        Err(GcError::NotApplicable { name: "k", .. })
    ));
    assert!(Preset::RADAM_GC.lookahead().init(&model, &k).is_ok());
    assert!(Preset::RANGER_GC.init(&model, &k).is_ok());
    let aliasing = Hyperparameters {
        seed_buffer_aliasing: Some(true),
        ..Hyperparameters::default()
    };
    assert!(matches!(
        Preset::ADAM_GC.init(&model, &aliasing),
        Err(GcError::NotApplicable {
            name: "seed_buffer_aliasing",
            ..
        })
    ));
    assert!(Preset::RANGER_GCC2.init(&model, &aliasing).is_ok());
    let Err(err) = Preset::RANGER_GC
        .lookahead()
        .init(&model, &Hyperparameters::default())
    else {
        panic!("Lookahead around Ranger was accepted");
    };
    assert!(err.to_string().contains("Lookahead built in"), "{err}");
    let zero_k = Hyperparameters {
        k: Some(0),
        ..Hyperparameters::default()
    };
    assert!(matches!(
        Preset::SGD.lookahead().init(&model, &zero_k),
        Err(GcError::InvalidHyperparameter { name: "k", .. })
    ));
    let Err(err) = "lookahead_ranger_gc".parse::<Preset>() else {
        panic!("lookahead_ranger_gc parsed");
    };
    assert!(err.to_string().contains("Lookahead built in"), "{err}");
}

/// The defaults are the seed's: a trace with only a learning rate gives, bit for bit, the numbers
/// of the same trace with the seed's values written out (RAdam betas (0.9, 0.999), eps 1e-8,
/// `RAdam.py` line 9; Ranger betas (0.95, 0.999), eps 1e-5, k 6, α 0.5, `Ranger.py` lines 9-11;
/// the Lookahead wrapper k 5, α 0.5, `algorithm-GC/README.md`'s example), and different numbers
/// with any one of them changed. Eight steps: rectified from step 6, Ranger syncs after step 6,
/// the wrapper after steps 1 and 6.
#[test]
fn the_defaults_are_the_seeds() {
    let values = |seed: u64, n: usize| -> Vec<f64> {
        (0..n)
            .map(|i| ((seed * 31 + i as u64 * 17) % 23) as f64 / 23.0 - 0.45)
            .collect()
    };
    let doc = |optimizer: &str, hyper: &str| {
        let grads: Vec<Vec<f64>> = (0..8).map(|s| values(s + 1, 12)).collect();
        format!(
            r#"{{"optimizer": "{optimizer}", "dtype": "f64", "hyper": {{"lr": 0.01{hyper}}},
                "params": [{{"name": "conv.weight", "kind": "conv2d", "shape": [2, 3, 2, 1],
                             "value": {:?}, "grads": {:?}}}]}}"#,
            values(0, 12),
            grads
        )
    };
    let run = |optimizer: &str, hyper: &str| {
        Trace::parse(&doc(optimizer, hyper))
            .unwrap()
            .run(&crate::device())
            .unwrap()
            .to_string()
    };
    for (optimizer, explicit, changed) in [
        (
            "radam_gc2",
            r#", "betas": [0.9, 0.999], "eps": 1e-8"#,
            r#", "betas": [0.9, 0.99]"#,
        ),
        (
            "ranger_gc2",
            r#", "betas": [0.95, 0.999], "eps": 1e-5, "k": 6, "alpha": 0.5"#,
            r#", "k": 5"#,
        ),
        (
            "ranger_gc2",
            r#", "betas": [0.95, 0.999], "eps": 1e-5, "k": 6, "alpha": 0.5"#,
            r#", "betas": [0.9, 0.999]"#,
        ),
        (
            "lookahead_sgd_gc",
            r#", "k": 5, "alpha": 0.5"#,
            r#", "alpha": 0.6"#,
        ),
    ] {
        let default = run(optimizer, "");
        assert_eq!(default, run(optimizer, explicit), "{optimizer}");
        assert_ne!(default, run(optimizer, changed), "{optimizer} {changed}");
    }
}
