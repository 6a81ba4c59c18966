//! The kernels against burn's batch norm: training on images and features, inference.

use burn::module::Param;
use burn::nn::BatchNormConfig;
use burn::tensor::Device;

use super::*;
use crate::testing::{assert_close, tensor, to_vec};

/// A BatchNorm over `c` channels with gamma and beta not 1 and 0 (fresh running statistics:
/// two of them share nothing).
fn module(c: usize, device: &Device) -> BatchNorm {
    let mut bn = BatchNormConfig::new(c).with_momentum(0.3).init(device);
    bn.gamma = Param::from_tensor(tensor([c], 7, device).add_scalar(1.5));
    bn.beta = Param::from_tensor(tensor([c], 8, device));
    bn
}

/// Two training steps' outputs, running statistics and gradients (input, gamma, beta) of
/// `sum(bn(x) · r)`, against burn's BatchNorm, for 4-D (offset inputs: a mean far from 0)
/// and 2-D inputs.
fn matches_burn<const D: usize>(shape: [usize; D], relu: bool) {
    let device = Device::flex().autodiff();
    let c = shape[1];
    let (ours, theirs) = (module(c, &device), module(c, &device));
    for step in 0..2 {
        let run = |bn: &BatchNorm, fused: bool| {
            let x = tensor(shape, 10 + step, &device)
                .mul_scalar(3.0)
                .add_scalar(5.0);
            let x = x.require_grad();
            let y = match (fused, relu) {
                (true, false) => forward(bn, x.clone()),
                (true, true) => forward_relu(bn, x.clone()),
                (false, false) => bn.forward(x.clone()),
                (false, true) => burn::tensor::activation::relu(bn.forward(x.clone())),
            };
            let r = tensor(shape, 20 + step, &device);
            let grads = (y.clone() * r).sum().backward();
            [
                to_vec(y),
                to_vec(x.grad(&grads).unwrap()),
                to_vec(bn.gamma.grad(&grads).unwrap()),
                to_vec(bn.beta.grad(&grads).unwrap()),
                to_vec(bn.running_mean.value()),
                to_vec(bn.running_var.value()),
            ]
        };
        let (a, b) = (run(&ours, true), run(&theirs, false));
        let names = [
            "output",
            "dx",
            "dgamma",
            "dbeta",
            "running mean",
            "running var",
        ];
        for (k, name) in names.iter().enumerate() {
            let what = format!("{shape:?} relu {relu} step {step}: {name}");
            assert_close(&a[k], &b[k], &what);
        }
    }
}

#[test]
fn training_matches_burn_on_images() {
    let _turn = crate::testing::TURN
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    for relu in [false, true] {
        matches_burn([4, 3, 5, 6], relu);
        matches_burn([1, 2, 7, 7], relu);
    }
}

#[test]
fn training_matches_burn_on_features() {
    let _turn = crate::testing::TURN
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    matches_burn([6, 4], false);
    matches_burn([6, 4], true);
}

#[test]
fn inference_is_burns() {
    let device = Device::flex();
    let bn = module(3, &device);
    let x = tensor([2, 3, 4, 4], 1, &device);
    assert_eq!(
        to_vec(forward(&bn, x.clone())),
        to_vec(bn.forward(x.clone()))
    );
    let relu = burn::tensor::activation::relu(bn.forward(x.clone()));
    assert_eq!(to_vec(forward_relu(&bn, x)), to_vec(relu));
}
