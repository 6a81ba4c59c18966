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

/// `relu(bn(x) + residual)` as one operation ([`forward_add_relu`]) against the three apart on
/// burn's batch norm: two training steps' outputs, running statistics and the four gradients
/// of `sum(y · r)`; the output also bit for bit against the kernels' batch norm with the sum
/// and the ReLU apart.
fn residual_matches_burn<const D: usize>(shape: [usize; D]) {
    let device = Device::flex().autodiff();
    let c = shape[1];
    let (ours, theirs, apart) = (module(c, &device), module(c, &device), module(c, &device));
    for step in 0..2 {
        let run = |bn: &BatchNorm, how: u8| {
            let x = tensor(shape, 30 + step, &device)
                .mul_scalar(3.0)
                .add_scalar(5.0);
            let (x, skip) = (
                x.require_grad(),
                tensor(shape, 40 + step, &device).require_grad(),
            );
            let y = match how {
                0 => forward_add_relu(bn, x.clone(), skip.clone()),
                1 => burn::tensor::activation::relu(bn.forward(x.clone()) + skip.clone()),
                _ => burn::tensor::activation::relu(forward(bn, x.clone()) + skip.clone()),
            };
            let r = tensor(shape, 50 + step, &device);
            let grads = (y.clone() * r).sum().backward();
            [
                to_vec(y),
                to_vec(x.grad(&grads).unwrap()),
                to_vec(skip.grad(&grads).unwrap()),
                to_vec(bn.gamma.grad(&grads).unwrap()),
                to_vec(bn.beta.grad(&grads).unwrap()),
                to_vec(bn.running_mean.value()),
                to_vec(bn.running_var.value()),
            ]
        };
        let (a, b, kernels_apart) = (run(&ours, 0), run(&theirs, 1), run(&apart, 2));
        let names = [
            "output",
            "dx",
            "dresidual",
            "dgamma",
            "dbeta",
            "running mean",
            "running var",
        ];
        for (k, name) in names.iter().enumerate() {
            assert_close(&a[k], &b[k], &format!("{shape:?} step {step}: {name}"));
        }
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&a[0]),
            bits(&kernels_apart[0]),
            "{shape:?} step {step}: output"
        );
        // The ReLU's mask: the residual's gradient is r where the output is above 0, else 0.
        let r = to_vec(tensor(shape, 50 + step, &device));
        let masked: Vec<f32> = a[0]
            .iter()
            .zip(&r)
            .map(|(&y, &r)| if y > 0.0 { r } else { 0.0 })
            .collect();
        assert_eq!(
            bits(&a[2]),
            bits(&masked),
            "{shape:?} step {step}: dresidual"
        );
    }
}

#[test]
fn residual_block_end_matches_burn() {
    let _turn = crate::testing::TURN
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    residual_matches_burn([4, 3, 5, 6]);
    residual_matches_burn([2, 5, 8, 8]);
    residual_matches_burn([6, 4]);
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

/// Ghost batch norm over groups of 4 in a batch of 6 (groups of 4 and 2): outputs and gradients
/// are burn's batch norm applied to each group on its own, the running statistics those of the
/// first group alone; on the kernels and on burn's operations.
#[test]
fn ghost_groups_normalize_apart_and_the_first_keeps_the_running_statistics() {
    let _turn = crate::testing::TURN
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let device = Device::flex().autodiff();
    let shape = [6, 3, 4, 4];
    /// Puts the kernels back whatever happens.
    struct Kernels;
    impl Drop for Kernels {
        fn drop(&mut self) {
            crate::use_burn_ops(false);
        }
    }
    let _kernels = Kernels;
    for burns in [false, true] {
        crate::use_burn_ops(burns);
        for relu in [false, true] {
            let (ours, groups, first) =
                (module(3, &device), module(3, &device), module(3, &device));
            let x = tensor(shape, 30, &device).mul_scalar(2.0).add_scalar(1.0);
            let r = tensor(shape, 31, &device);
            let apply = |bn: &BatchNorm, x: Tensor<4>| {
                let y = bn.forward(x);
                if relu {
                    burn::tensor::activation::relu(y)
                } else {
                    y
                }
            };
            let run = |ghost: bool| {
                let x = x.clone().require_grad();
                let y = if ghost {
                    let norm = |x| {
                        if relu {
                            forward_relu(&ours, x)
                        } else {
                            forward(&ours, x)
                        }
                    };
                    ghost::with_group(Some(4), || norm(x.clone()))
                } else {
                    let parts = x.clone().split(4, 0);
                    let parts = parts.into_iter().map(|p| apply(&groups, p)).collect();
                    Tensor::cat(parts, 0)
                };
                let grads = (y.clone() * r.clone()).sum().backward();
                let bn = if ghost { &ours } else { &groups };
                [
                    to_vec(y),
                    to_vec(x.grad(&grads).unwrap()),
                    to_vec(bn.gamma.grad(&grads).unwrap()),
                    to_vec(bn.beta.grad(&grads).unwrap()),
                ]
            };
            let (a, b) = (run(true), run(false));
            for (k, name) in ["output", "dx", "dgamma", "dbeta"].iter().enumerate() {
                assert_close(
                    &a[k],
                    &b[k],
                    &format!("burn ops {burns}, relu {relu}: {name}"),
                );
            }
            apply(&first, x.clone().narrow(0, 0, 4));
            for (got, expected, name) in [
                (&ours.running_mean, &first.running_mean, "running mean"),
                (&ours.running_var, &first.running_var, "running var"),
            ] {
                let what = format!("burn ops {burns}, relu {relu}: {name}");
                assert_close(
                    &to_vec(got.value_sync()),
                    &to_vec(expected.value_sync()),
                    &what,
                );
            }
        }
    }
}

/// Without a size, with 0, and with a size at least the batch, the batch is one group; the size
/// holds inside `with_group` only.
#[test]
fn ghost_groups_of_the_whole_batch_change_nothing() {
    let _turn = crate::testing::TURN
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let device = Device::flex().autodiff();
    let x = tensor([4, 3, 2, 2], 40, &device);
    let a = module(3, &device);
    let whole = to_vec(forward(&a, x.clone()));
    for group in [None, Some(0), Some(4), Some(9)] {
        let b = module(3, &device);
        let grouped = ghost::with_group(group, || to_vec(forward(&b, x.clone())));
        assert_eq!(whole, grouped, "{group:?}");
        assert_eq!(
            to_vec(a.running_var.value_sync()),
            to_vec(b.running_var.value_sync()),
            "{group:?}"
        );
    }
    let c = module(3, &device);
    ghost::with_group(Some(2), || ());
    assert_eq!(
        whole,
        to_vec(forward(&c, x)),
        "the size leaked out of with_group"
    );
}

/// Inputs for the kernels' own tests: `x` offset from 0 (a mean far from it), `dy`, gamma and
/// beta, from the tests' generator.
fn kernel_inputs(shape: [usize; 3], seed: u64) -> [Vec<f32>; 4] {
    let device = Device::flex();
    let [n, c, s] = shape;
    [
        to_vec(
            tensor([n, c, s], seed, &device)
                .mul_scalar(3.0)
                .add_scalar(5.0),
        ),
        to_vec(tensor([n, c, s], seed + 1, &device)),
        to_vec(tensor([c], seed + 2, &device).add_scalar(1.5)),
        to_vec(tensor([c], seed + 3, &device)),
    ]
}

/// The AVX-512 forms (on a CPU that has them) and the portable loops give the same outputs,
/// statistics and gradients, bit for bit, with and without the ReLU, on planes of whole vectors,
/// with a rest, and shorter than one vector.
#[test]
fn avx512_forms_are_the_portable_loops_to_the_bit() {
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    for (shape, seed) in [([4, 3, 64], 1), ([3, 5, 37], 5), ([6, 4, 7], 9)] {
        let [x, dy, gamma, beta] = kernel_inputs(shape, seed);
        for relu in [false, true] {
            let run = || {
                let (y, mean, var) = forward_kernel(&x, shape, &gamma, &beta, 1e-5, relu);
                let relu_beta = relu.then_some(&beta[..]);
                let (dx, dg, db) =
                    backward_kernel(&x, shape, &gamma, &mean, &var, 1e-5, relu_beta, &dy);
                [y, mean, var, dx, dg, db].map(|v| bits(&v))
            };
            let (wide, portable) = (run(), with_portable(run));
            let names = ["output", "mean", "variance", "dx", "dgamma", "dbeta"];
            for (k, name) in names.iter().enumerate() {
                assert_eq!(wide[k], portable[k], "{shape:?} relu {relu}: {name}");
            }
        }
        let with_residual = || {
            let (y, ..) = forward_add_relu_kernel(&x, shape, (&gamma, &beta), &dy, 1e-5);
            bits(&y)
        };
        let (wide, portable) = (with_residual(), with_portable(with_residual));
        assert_eq!(wide, portable, "{shape:?}: output with a residual");
        // The sums themselves, in f64 before they are rounded to the f32 results.
        if crate::has_avx512f() {
            let [n, c, s] = shape;
            assert_eq!(
                kernels::statistics(&x, shape, true),
                kernels::statistics(&x, shape, false),
                "{shape:?}: statistics"
            );
            for (at, m) in [(0, 5.1), ((n * c - 1) * s, 4.7)] {
                for mask in [None, Some((0.8, -0.1))] {
                    let (dy, x) = (&dy[at..at + s], &x[at..at + s]);
                    let sums = |wide| kernels::gradient_sums(dy, x, m, mask, wide);
                    assert_eq!(sums(true), sums(false), "{shape:?} {mask:?}: gradient sums");
                }
            }
        }
    }
}
