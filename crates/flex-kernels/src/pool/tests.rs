//! The max pooling against burn's, bit for bit.

use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2dConfig;
use burn::tensor::{Device, Tensor, TensorData};

use super::*;
use crate::testing::{tensor, to_vec};

/// Outputs and input gradients of `sum(pool(x) · r)` through [`max_pool2d`] and through burn's
/// `MaxPool2d::forward`, bit for bit. The inputs go through a ReLU first, as in the models, so
/// that many windows hold ties (all zeros): the gradient goes to the same one of them.
fn matches_burn(shape: [usize; 4], pool: &MaxPool2d, nan_at: Option<usize>) {
    let device = Device::flex().autodiff();
    let x = burn::tensor::activation::relu(tensor(shape, 3, &device));
    let x = match nan_at {
        Some(i) => {
            let mut v = to_vec(x);
            v[i] = f32::NAN;
            Tensor::from_data(TensorData::new(v, shape), &device)
        }
        None => x,
    };
    let run = |ours: bool| {
        let x = x.clone().detach().require_grad();
        let y = if ours {
            max_pool2d(pool, x.clone())
        } else {
            pool.forward(x.clone())
        };
        let r = tensor(y.dims(), 4, &device);
        let grads = (y.clone() * r).sum().backward();
        [to_vec(y), to_vec(x.grad(&grads).unwrap())]
    };
    let (ours, burns) = (run(true), run(false));
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    for (k, name) in ["output", "dx"].iter().enumerate() {
        assert_eq!(
            bits(&ours[k]),
            bits(&burns[k]),
            "{shape:?} {pool:?} NaN at {nan_at:?}: {name}"
        );
    }
}

#[test]
fn matches_burn_bit_for_bit() {
    let _turn = crate::testing::TURN
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let pools = [
        // ResNet's stem: 3x3, stride 2, padding 1.
        MaxPool2dConfig::new([3, 3])
            .with_strides([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(),
        // The small CNN's and VGG's: 2x2, stride 2.
        MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
        // Overlapping windows that share their maxima, a rectangular window.
        MaxPool2dConfig::new([3, 3])
            .with_strides([1, 1])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(),
        MaxPool2dConfig::new([2, 3])
            .with_strides([1, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 0, 1, 0))
            .init(),
    ];
    for pool in &pools {
        for shape in [[2, 3, 9, 10], [1, 2, 8, 7], [3, 1, 4, 4], [1, 2, 2, 40]] {
            matches_burn(shape, pool, None);
        }
        matches_burn([2, 3, 9, 10], pool, Some(37));
    }
    // Padding wider than the stride over rows narrower than the window: edge columns alone.
    let wide = MaxPool2dConfig::new([7, 7])
        .with_strides([1, 1])
        .with_padding(PaddingConfig2d::Explicit(3, 3, 3, 3))
        .init();
    for shape in [[1, 2, 5, 1], [1, 2, 3, 4], [2, 1, 9, 12]] {
        matches_burn(shape, &wide, None);
    }
}

/// Dilation and `ceil_mode` are burn's own: the same results through [`max_pool2d`].
#[test]
fn dilated_and_ceil_mode_pools_are_burns() {
    let _turn = crate::testing::TURN
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let pools = [
        MaxPool2dConfig::new([2, 2]).with_dilation([2, 2]).init(),
        MaxPool2dConfig::new([2, 2])
            .with_strides([2, 2])
            .with_ceil_mode(true)
            .init(),
    ];
    for pool in &pools {
        matches_burn([2, 3, 9, 10], pool, None);
    }
}
