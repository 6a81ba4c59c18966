//! The burn `ModuleOptimizer`s we build: layer-aware routing, state records, per-group learning
//! rates, gradient clipping, and GC in front of burn's own optimizers.

use burn::grad_clipping::GradientClippingConfig;
use burn::module::{Module, Param, ParamGroup};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig as BurnSgdConfig};
use burn::tensor::{Device, Tensor, TensorData, Tolerance};
use gradient_centralization::optim::{Centralized, SgdConfig, WeightDecay};
use gradient_centralization::{
    Centralize, Family, GcConfig, Hyperparameters, Placement, Preset, Scope, paper,
};

/// A conv and a linear layer: the smallest model with both kinds of GC axis (also used by
/// `loading`).
#[derive(Module, Debug)]
pub struct Net {
    pub conv: Conv2d,
    pub fc: Linear,
}

impl Net {
    /// The net every test starts from: fixed weights, so each run sees the same gradients.
    pub fn new(device: &Device) -> Self {
        Self::seeded(device, 7)
    }

    /// Weights and biases from `numbers(seed, ..)`, scaled by 1/sqrt(fan-in) like burn's default
    /// init; another seed gives another instance (for loading one net's weights into another).
    pub fn seeded(device: &Device, seed: u64) -> Self {
        let fixed = |seed: u64, shape: Vec<usize>, fan_in: usize| {
            let n = shape.iter().product();
            let scale = 1.0 / (fan_in as f32).sqrt();
            let values = numbers(seed, n).into_iter().map(|v| v * scale).collect();
            TensorData::new(values, shape)
        };
        let mut conv = Conv2dConfig::new([2, 3], [3, 3]).init(device);
        conv.weight = Param::from_data(fixed(10 * seed, vec![3, 2, 3, 3], 18), device);
        conv.bias = Some(Param::from_data(fixed(10 * seed + 1, vec![3], 18), device));
        let mut fc = LinearConfig::new(3 * 4 * 4, 5).init(device);
        fc.weight = Param::from_data(fixed(10 * seed + 2, vec![48, 5], 48), device);
        fc.bias = Some(Param::from_data(fixed(10 * seed + 3, vec![5], 48), device));
        Net { conv, fc }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let h = self.conv.forward(x).tanh();
        self.fc.forward(h.flatten(1, 3))
    }
}

fn device() -> Device {
    crate::device().autodiff()
}

/// Deterministic pseudo-random numbers in [-1, 1) (a 64-bit LCG), so a batch can be rebuilt.
fn numbers(seed: u64, n: usize) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn batch(device: &Device, seed: u64) -> (Tensor<4>, Tensor<2>) {
    (
        Tensor::from_data(
            TensorData::new(numbers(seed, 4 * 2 * 6 * 6), [4, 2, 6, 6]),
            device,
        ),
        Tensor::from_data(TensorData::new(numbers(seed + 1000, 4 * 5), [4, 5]), device),
    )
}

fn grads_of(net: &Net, (x, y): &(Tensor<4>, Tensor<2>)) -> GradientsParams {
    let loss = (net.forward(x.clone()) - y.clone()).square().mean();
    GradientsParams::from_grads(loss.backward(), net)
}

fn values(t: Tensor<2>) -> TensorData {
    t.into_data()
}

/// SGD_GC without momentum: each parameter moves by −lr·GC(g + λw) along its own layer's axis.
#[test]
fn sgd_gc_routes_every_parameter_to_its_axis() {
    let device = device();
    let net = Net::new(&device);
    let data = batch(&device, 1);
    let grads = grads_of(&net, &data);
    let (lr, wd) = (0.1, 1e-2);
    let fc_w = net.fc.weight.val().inner();
    let fc_g = grads.get::<2>(net.fc.weight.id).unwrap();
    let fc_b = net.fc.bias.as_ref().unwrap().val().inner();
    let fc_bg = grads.get::<1>(net.fc.bias.as_ref().unwrap().id).unwrap();
    let conv_w = net.conv.weight.val().inner();
    let conv_g = grads.get::<4>(net.conv.weight.id).unwrap();

    let hyper = Hyperparameters {
        weight_decay: Some(wd),
        ..Hyperparameters::default()
    };
    let mut optimizer = paper::sgd_gc(&net, &hyper).unwrap();
    let net = optimizer.step(lr, net, grads);

    let expect_fc = fc_w.clone()
        - Centralize::along(1)
            .apply(fc_g + fc_w.mul_scalar(wd))
            .mul_scalar(lr);
    values(net.fc.weight.val().inner())
        .assert_approx_eq::<f32>(&values(expect_fc), Tolerance::absolute(1e-6));
    let expect_conv = conv_w.clone()
        - Centralize::along(0)
            .apply(conv_g + conv_w.mul_scalar(wd))
            .mul_scalar(lr);
    crate::assert_param(&net.conv.weight, expect_conv, 1e-6);
    // Biases are not centralized.
    let expect_b = fc_b.clone() - (fc_bg + fc_b.mul_scalar(wd)).mul_scalar(lr);
    net.fc
        .bias
        .unwrap()
        .val()
        .inner()
        .into_data()
        .assert_approx_eq::<f32>(&expect_b.into_data(), Tolerance::absolute(1e-6));
}

/// Both nets' conv and linear weights within 1e-7 (also used by `loading`).
pub fn assert_same_net(a: &Net, b: &Net) {
    a.fc.weight
        .val()
        .into_data()
        .assert_approx_eq::<f32>(&b.fc.weight.val().into_data(), Tolerance::absolute(1e-7));
    a.conv
        .weight
        .val()
        .into_data()
        .assert_approx_eq::<f32>(&b.conv.weight.val().into_data(), Tolerance::absolute(1e-7));
}

/// Save after two steps, load into a fresh optimizer, and the third step is the same.
#[test]
fn every_preset_state_round_trips_through_bytes() {
    let device = device();
    let hyper_for = |preset: Preset| match preset.name().trim_start_matches("lookahead_") {
        name if name.starts_with("sgd") => Hyperparameters {
            momentum: Some(0.9),
            weight_decay: Some(1e-2),
            ..Hyperparameters::default()
        },
        name if name.starts_with("adagrad") => Hyperparameters {
            initial_accumulator_value: Some(0.1),
            ..Hyperparameters::default()
        },
        _ => Hyperparameters {
            weight_decay: Some(1e-2),
            ..Hyperparameters::default()
        },
    };
    // Adam and AdamW twice: without AMSGrad (with GC on the gradient, their state goes through the
    // fused kernels on flex) and with it (the tensor path).
    // Lookahead around a fused optimizer and around RAdam.
    let lookahead = [Preset::SGD_GC.lookahead(), Preset::RADAM_GC2.lookahead()];
    let cases = Preset::ALL.iter().chain(&lookahead).flat_map(|&preset| {
        let hyper = hyper_for(preset);
        let amsgrad = matches!(
            preset.family,
            Family::Adam | Family::AdamW | Family::AdamWTorch
        )
        .then_some(Hyperparameters {
            amsgrad: Some(true),
            ..hyper
        });
        std::iter::once((preset, hyper)).chain(amsgrad.map(|hyper| (preset, hyper)))
    });
    for (preset, hyper) in cases {
        let mut net = Net::new(&device);
        let mut original = preset.init(&net, &hyper).unwrap();
        for seed in 0..2 {
            let grads = grads_of(&net, &batch(&device, seed));
            net = original.step(0.05, net, grads);
        }
        let bytes = original.into_bytes().unwrap();
        let mut restored = preset
            .init(&net, &hyper)
            .unwrap()
            .from_bytes(bytes)
            .unwrap();
        let data = batch(&device, 7);
        let a = original.step(0.05, net.clone(), grads_of(&net, &data));
        let kernel_before = crate::kernels::kernel_steps();
        let b = restored.step(0.05, net.clone(), grads_of(&net, &data));
        // GC on the update (the GC2 presets) takes the tensor path for the centralized weights;
        // RAdam and Ranger have no kernel.
        if hyper.amsgrad != Some(true)
            && preset.placement == Placement::Gradient
            && !matches!(preset.family, Family::RAdam | Family::Ranger)
        {
            let fused = crate::kernels::kernel_steps() - kernel_before;
            assert!(
                fused > 0,
                "{preset}: the restored state did not go through the kernels"
            );
        }
        assert_same_net(&a, &b);
        // and a fresh optimizer (no state) would differ for every stateful preset
        if preset.name() != "sgd" && preset.name() != "sgdw" {
            let mut fresh = preset.init(&net, &hyper).unwrap();
            let c = fresh.step(0.05, net.clone(), grads_of(&net, &data));
            let diff = (a.fc.weight.val() - c.fc.weight.val())
                .abs()
                .max()
                .into_scalar::<f32>();
            assert!(diff > 1e-6, "{preset}: state made no difference");
        }
    }
}

/// A scheduler group with its own learning rate: GC and the per-group rate compose.
#[test]
fn per_group_learning_rates_apply_to_centralized_parameters() {
    let device = device();
    let net = Net::new(&device);
    let grads = grads_of(&net, &batch(&device, 3));
    let fc_w = net.fc.weight.val().inner();
    let fc_g = grads.get::<2>(net.fc.weight.id).unwrap();
    let conv_w = net.conv.weight.val().inner();
    let conv_g = grads.get::<4>(net.conv.weight.id).unwrap();

    let mut scheduler =
        ModuleLrScheduler::new(0.1).with_group(ParamGroup::from_regex(r"^fc\.").unwrap(), 0.01);
    let lr = scheduler.step();
    let mut optimizer = paper::sgd_gc(&net, &Hyperparameters::default()).unwrap();
    let net = optimizer.step(lr, net, grads);

    let expect_fc = fc_w - Centralize::along(1).apply(fc_g).mul_scalar(0.01);
    crate::assert_param(&net.fc.weight, expect_fc, 1e-7);
    let expect_conv = conv_w - Centralize::along(0).apply(conv_g).mul_scalar(0.1);
    crate::assert_param(&net.conv.weight, expect_conv, 1e-7);
}

/// burn clips each gradient before the optimizer: GC sees the clipped gradient (the seed's detection
/// runs clip first too).
#[test]
fn clipping_runs_before_gc() {
    let device = device();
    let net = Net::new(&device);
    let grads = grads_of(&net, &batch(&device, 4));
    let fc_w = net.fc.weight.val().inner();
    let fc_g = grads.get::<2>(net.fc.weight.id).unwrap();
    let threshold = 0.01f32;
    let clipped = fc_g.clamp(-threshold, threshold);

    let gc =
        GcConfig::new(Scope::ConvLinear).with_clipping(GradientClippingConfig::Value(threshold));
    let mut optimizer = gc.init(&net, SgdConfig::new().build().unwrap()).unwrap();
    let net = optimizer.step(1.0, net, grads);

    let expect = fc_w.clone() - Centralize::along(1).apply(clipped.clone());
    crate::assert_param(&net.fc.weight, expect, 1e-7);
    // Clipping after GC would give a different answer on this gradient.
    let other = fc_w
        - Centralize::along(1)
            .apply(clipped)
            .clamp(-threshold, threshold);
    let diff = (net.fc.weight.val().inner() - other)
        .abs()
        .max()
        .into_scalar::<f32>();
    assert!(diff > 1e-6);
}

/// GC in front of burn's own Sgd: burn adds its coupled decay after GC, so the decay term is not
/// centralized, unlike the seed's SGD_GC which centralizes `g + λw`.
#[test]
fn wrapper_centralizes_before_burns_own_decay() {
    let device = device();
    let net = Net::new(&device);
    let data = batch(&device, 5);
    let fc_w = net.fc.weight.val().inner();
    let fc_g = grads_of(&net, &data).get::<2>(net.fc.weight.id).unwrap();
    let (lr, wd) = (0.1, 0.5f32);
    let gc = GcConfig::new(Scope::ConvLinear);

    let burn_sgd = BurnSgdConfig::new()
        .with_weight_decay(Some(WeightDecayConfig::new(wd)))
        .build();
    let mut wrapped: ModuleOptimizer = gc.init(&net, Centralized::new(burn_sgd)).unwrap();
    let a = wrapped.step(lr, net.clone(), grads_of(&net, &data));
    let expect = fc_w.clone()
        - (Centralize::along(1).apply(fc_g.clone()) + fc_w.clone().mul_scalar(wd)).mul_scalar(lr);
    crate::assert_param(&a.fc.weight, expect, 1e-6);

    let seed_sgd = SgdConfig::new()
        .with_weight_decay(WeightDecay::L2(wd as f64))
        .build()
        .unwrap();
    let mut seed_optimizer = gc.init(&net, seed_sgd).unwrap();
    let b = seed_optimizer.step(lr, net.clone(), grads_of(&net, &data));
    let expect = fc_w.clone()
        - Centralize::along(1)
            .apply(fc_g + fc_w.mul_scalar(wd))
            .mul_scalar(lr);
    crate::assert_param(&b.fc.weight, expect, 1e-6);
}

/// The wrapper with `Placement::Update` centralizes the whole change burn's Adam makes.
#[test]
fn wrapper_on_the_update_keeps_weight_means_of_burns_adam() {
    let device = device();
    let mut net = Net::new(&device);
    let column_means = |net: &Net| net.fc.weight.val().inner().mean_dim(0);
    let before = column_means(&net);
    let gc =
        GcConfig::new(Scope::ConvLinear).with_placement(gradient_centralization::Placement::Update);
    let mut optimizer = gc
        .init(
            &net,
            Centralized::new(burn::optim::AdamConfig::new().build()),
        )
        .unwrap();
    for seed in 0..5 {
        let grads = grads_of(&net, &batch(&device, seed));
        net = optimizer.step(0.01, net, grads);
    }
    column_means(&net)
        .into_data()
        .assert_approx_eq::<f32>(&before.into_data(), Tolerance::absolute(1e-6));
    // while GC on the gradient does not keep them (Adam divides elementwise)
    let mut net2 = Net::new(&device);
    let before2 = column_means(&net2);
    let mut optimizer = GcConfig::new(Scope::ConvLinear)
        .init(
            &net2,
            Centralized::new(burn::optim::AdamConfig::new().build()),
        )
        .unwrap();
    for seed in 0..5 {
        let grads = grads_of(&net2, &batch(&device, seed));
        net2 = optimizer.step(0.01, net2, grads);
    }
    let drift = (column_means(&net2) - before2)
        .abs()
        .max()
        .into_scalar::<f32>();
    assert!(drift > 1e-5, "drift {drift}");
}

/// A generic check for a wrapped burn optimizer: with GC on the update every centralized unit's
/// weight mean stays put over steps, with GC on the gradient the weights stay finite and move, and
/// the state survives a save/load round trip.
fn check_wrapped<O: burn::optim::Optimizer>(name: &str, inner: O) {
    let device = device();
    let column_means = |net: &Net| net.fc.weight.val().inner().mean_dim(0);
    let conv_means = |net: &Net| net.conv.weight.val().inner().reshape([3, 18]).mean_dim(1);

    let mut net = Net::new(&device);
    let (fc_before, conv_before) = (column_means(&net), conv_means(&net));
    let update =
        GcConfig::new(Scope::ConvLinear).with_placement(gradient_centralization::Placement::Update);
    let mut optimizer = update.init(&net, Centralized::new(inner.clone())).unwrap();
    for seed in 0..3 {
        let grads = grads_of(&net, &batch(&device, seed));
        net = optimizer.step(0.01, net, grads);
    }
    let drift = (column_means(&net) - fc_before)
        .abs()
        .max()
        .into_scalar::<f32>()
        + (conv_means(&net) - conv_before)
            .abs()
            .max()
            .into_scalar::<f32>();
    assert!(
        drift < 1e-5,
        "{name}: weight means drifted by {drift} with GC on the update"
    );

    let start = Net::new(&device);
    let mut net = start.clone();
    let mut optimizer = GcConfig::new(Scope::ConvLinear)
        .init(&net, Centralized::new(inner.clone()))
        .unwrap();
    for seed in 0..2 {
        let grads = grads_of(&net, &batch(&device, seed));
        net = optimizer.step(0.01, net, grads);
    }
    let moved = (net.fc.weight.val() - start.fc.weight.val())
        .abs()
        .max()
        .into_scalar::<f32>();
    assert!(moved.is_finite() && moved > 0.0, "{name}: moved {moved}");
    let bytes = optimizer.into_bytes().unwrap();
    let mut restored = GcConfig::new(Scope::ConvLinear)
        .init(&net, Centralized::new(inner))
        .unwrap()
        .from_bytes(bytes)
        .unwrap();
    let data = batch(&device, 9);
    let a = optimizer.step(0.01, net.clone(), grads_of(&net, &data));
    let b = restored.step(0.01, net.clone(), grads_of(&net, &data));
    assert_same_net(&a, &b);
}

#[test]
fn gc_wraps_every_burn_optimizer() {
    use burn::optim::*;
    check_wrapped("Sgd", SgdConfig::new().build());
    check_wrapped("Adam", AdamConfig::new().build());
    check_wrapped("AdamW", AdamWConfig::new().build());
    check_wrapped("AdaGrad", AdaGradConfig::new().build());
    check_wrapped("RmsProp", RmsPropConfig::new().build());
    check_wrapped("Lion", LionConfig::new().build());
    check_wrapped("Lamb", LambConfig::new().build());
    check_wrapped("Adan", AdanConfig::new().build());
}
