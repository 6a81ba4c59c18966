//! GC survives loading weights: burn's `load_record` replaces parameter ids, and the optimizer
//! built before the load must still centralize (it routes by parameter path), or refuse loudly.

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use gradient_centralization::{Centralize, Hyperparameters, paper};

use crate::module_optimizer::{Net, assert_same_net};

/// A parent module around `Net`: the same parameters under other paths.
#[derive(Module, Debug)]
struct Parent {
    net: Net,
}

fn device() -> Device {
    crate::device().autodiff()
}

fn grads_of(net: &Net, device: &Device) -> GradientsParams {
    let x = Tensor::<4>::from_floats(
        [[
            [
                [0.3, -1.0, 0.5, 0.2, 0.9, -0.4],
                [0.1, 0.7, -0.6, 0.8, -0.2, 0.4],
                [-0.9, 0.6, 0.2, -0.3, 0.5, 0.1],
                [0.4, -0.5, 0.9, 0.7, -0.8, 0.3],
                [0.2, 0.1, -0.7, 0.6, 0.4, -0.1],
                [-0.3, 0.8, 0.5, -0.2, 0.1, 0.9],
            ],
            [
                [0.5, 0.2, -0.1, 0.4, -0.6, 0.7],
                [-0.8, 0.3, 0.6, -0.4, 0.2, 0.5],
                [0.9, -0.2, 0.1, 0.3, -0.7, 0.8],
                [0.1, 0.6, -0.5, 0.2, 0.4, -0.3],
                [-0.4, 0.7, 0.3, -0.9, 0.5, 0.2],
                [0.6, -0.1, 0.8, 0.5, -0.3, 0.4],
            ],
        ]],
        device,
    );
    let loss = net.forward(x).square().sum();
    GradientsParams::from_grads(loss.backward(), net)
}

/// SGD_GC without momentum or decay: the step must move every weight by exactly `−lr·GC(g)`.
fn sgd_gc<M: Module>(net: &M) -> ModuleOptimizer {
    paper::sgd_gc(net, &Hyperparameters::default()).unwrap()
}

/// Step `net` and check its conv and fc updates are the centralized gradients (a plain step fails
/// this: the gradients' means are far from zero).
fn assert_centralized_step(mut optimizer: ModuleOptimizer, net: Net, device: &Device) {
    let lr = 0.5;
    let grads = grads_of(&net, device);
    let fc_g = grads.get::<2>(net.fc.weight.id).unwrap();
    let conv_g = grads.get::<4>(net.conv.weight.id).unwrap();
    let fc_mean = fc_g.clone().mean_dim(0).abs().max().into_scalar::<f32>();
    assert!(fc_mean > 1e-3, "the test needs gradients with a mean");
    let fc_w = net.fc.weight.val().inner();
    let conv_w = net.conv.weight.val().inner();
    let net = optimizer.step(lr, net, grads);
    let expect_fc = fc_w - Centralize::along(1).apply(fc_g).mul_scalar(lr);
    let expect_conv = conv_w - Centralize::along(0).apply(conv_g).mul_scalar(lr);
    crate::assert_param(&net.fc.weight, expect_fc, 1e-6);
    crate::assert_param(&net.conv.weight, expect_conv, 1e-6);
}

#[test]
fn gc_survives_loading_a_record_from_another_instance() {
    let device = device();
    let net = Net::new(&device);
    let optimizer = sgd_gc(&net);
    let other = Net::seeded(&device, 8);
    let other_id = other.fc.weight.id;
    let net = net.load_record(other.into_record());
    assert_eq!(net.fc.weight.id, other_id, "load_record replaces ids");
    assert_centralized_step(optimizer, net, &device);
}

#[test]
fn gc_survives_loading_weights_from_a_file() {
    let device = device();
    let dir = std::env::temp_dir().join(format!("gc-loading-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("net.bpk");
    Net::seeded(&device, 8).save_file(&file).unwrap();

    let net = Net::new(&device);
    let optimizer = sgd_gc(&net);
    let net = net.load_file(&file);
    // burn reads a loaded file's tensors when they are first used: remove it after the step.
    assert_centralized_step(optimizer, net, &device);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_checkpoint_restore_routes_the_optimizer_state_by_path() {
    // The restore flow: a fresh model and optimizer (other ids), then the optimizer state and the
    // weights loaded. SGD_GC with momentum, so the state (the momentum buffers) matters.
    let device = device();
    let hyper = Hyperparameters {
        momentum: Some(0.9),
        ..Hyperparameters::default()
    };
    let mut net = Net::new(&device);
    let mut original = paper::sgd_gc(&net, &hyper).unwrap();
    for _ in 0..2 {
        net = original.step(0.1, net.clone(), grads_of(&net, &device));
    }
    let record = original.to_record();
    let weights = net.clone().into_record();

    let fresh = Net::new(&device);
    let restored = paper::sgd_gc(&fresh, &hyper).unwrap().load_record(record);
    let fresh = fresh.load_record(weights);
    let mut restored = restored;
    let a = original.step(0.1, net.clone(), grads_of(&net, &device));
    let b = restored.step(0.1, fresh.clone(), grads_of(&fresh, &device));
    assert_same_net(&a, &b);
}

#[test]
fn a_submodule_planned_and_stepped_inside_its_parent_is_found_by_id() {
    let device = device();
    let net = Net::new(&device);
    let optimizer = sgd_gc(&net);
    let parent = Parent { net };
    // Paths differ ("net.fc.weight" against "fc.weight"); the ids are the planned ones.
    let lr = 0.5;
    let grads = grads_of(&parent.net, &device);
    let fc_g = grads.get::<2>(parent.net.fc.weight.id).unwrap();
    let fc_w = parent.net.fc.weight.val().inner();
    let mut optimizer = optimizer;
    let parent = optimizer.step(lr, parent, grads);
    let expect = fc_w - Centralize::along(1).apply(fc_g).mul_scalar(lr);
    crate::assert_param(&parent.net.fc.weight, expect, 1e-6);
}

#[test]
#[should_panic(expected = "is in no group of the GC plan")]
fn a_module_neither_planned_by_path_nor_by_id_is_refused_not_stepped_plainly() {
    let device = device();
    let net = Net::new(&device);
    let mut optimizer = sgd_gc(&net);
    let parent = Parent {
        net: Net::new(&device),
    };
    let grads = grads_of(&parent.net, &device);
    let _ = optimizer.step(0.1, parent, grads);
}

#[derive(Module, Debug)]
struct Encoder {
    fc: burn::nn::Linear,
}

#[derive(Module, Debug)]
struct Model {
    enc: Encoder,
    fc: burn::nn::Linear,
}

#[test]
fn an_id_that_matches_decides_over_a_path_that_collides() {
    // Planned on `Model`, stepped on `model.enc` alone: the encoder's weight is then at path
    // `fc.weight`, the path of the model's own head, which is left alone (fan-in 1). Its id still
    // names it: it must be centralized.
    let device = device();
    let linear = |d_in, d_out| burn::nn::LinearConfig::new(d_in, d_out).init(&device);
    let model = Model {
        enc: Encoder { fc: linear(4, 3) },
        fc: linear(1, 10),
    };
    let mut optimizer = sgd_gc(&model);
    let enc = model.enc;
    let x = Tensor::<2>::from_floats([[0.5, -1.0, 2.0, 0.25]], &device);
    let grads = GradientsParams::from_grads(enc.fc.forward(x).sum().backward(), &enc);
    let g = grads.get::<2>(enc.fc.weight.id).unwrap();
    let w = enc.fc.weight.val().inner();
    let lr = 0.5;
    let enc = optimizer.step(lr, enc, grads);
    let expect = w - Centralize::along(1).apply(g).mul_scalar(lr);
    crate::assert_param(&enc.fc.weight, expect, 1e-6);
}
