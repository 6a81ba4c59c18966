//! The GC operation on hand-computed cases.

use burn::tensor::{Device, FloatDType, Tensor, TensorData};
use gradient_centralization::Centralize;

fn device() -> Device {
    crate::device()
}

#[test]
fn conv_weight_is_centralized_per_filter_over_all_its_inputs() {
    // [out = 2, in = 1, 2, 2]: filter means 2.5 and 10, by hand.
    let g = Tensor::<4>::from_floats(
        [[[[1.0, 2.0], [3.0, 4.0]]], [[[10.0, 10.0], [10.0, 10.0]]]],
        &device(),
    );
    let expected = TensorData::from([[[[-1.5f32, -0.5], [0.5, 1.5]]], [[[0.0, 0.0], [0.0, 0.0]]]]);
    Centralize::along(0)
        .apply(g)
        .into_data()
        .assert_eq(&expected, true);
}

#[test]
fn burn_linear_weight_is_centralized_per_output_column() {
    // burn's Linear weight [d_input = 3, d_output = 2]; column means 2 and 20.
    let g = Tensor::<2>::from_floats([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]], &device());
    let expected = TensorData::from([[-1.0f32, -10.0], [0.0, 0.0], [1.0, 10.0]]);
    Centralize::along(1)
        .apply(g)
        .into_data()
        .assert_eq(&expected, true);
}

#[test]
fn grouped_transposed_conv_is_centralized_over_its_group_rows_only() {
    // burn ConvTranspose1d weight [in = 4, out/groups = 1, k = 2], groups 2: output channel 0 gathers
    // input rows 0-1, channel 1 rows 2-3. Means: (1+2+3+4)/4 = 2.5 and (10+20+30+40)/4 = 25.
    let g = Tensor::<3>::from_floats(
        [[[1.0, 2.0]], [[3.0, 4.0]], [[10.0, 20.0]], [[30.0, 40.0]]],
        &device(),
    );
    let expected = TensorData::from([
        [[-1.5f32, -0.5]],
        [[0.5, 1.5]],
        [[-15.0, -5.0]],
        [[5.0, 15.0]],
    ]);
    let op = Centralize::grouped(1, 2);
    assert_eq!(op.fan_in(&[4, 1, 2]), 4);
    op.apply(g).into_data().assert_eq(&expected, true);
}

#[test]
fn middle_axis_takes_the_mean_over_leading_and_trailing_axes() {
    // [2, 2, 2] along axis 1: unit j's mean over g[:, j, :].
    let g = Tensor::<3>::from_floats(
        [[[1.0, 2.0], [5.0, 5.0]], [[3.0, 4.0], [7.0, 7.0]]],
        &device(),
    );
    // unit 0: (1+2+3+4)/4 = 2.5; unit 1: (5+5+7+7)/4 = 6.
    let expected = TensorData::from([[[-1.5f32, -0.5], [-1.0, -1.0]], [[0.5, 1.5], [1.0, 1.0]]]);
    Centralize::along(1)
        .apply(g)
        .into_data()
        .assert_eq(&expected, true);
}

#[test]
fn fan_in_one_is_zeroed_by_the_bare_operation() {
    // The plan refuses such tensors; the operation itself does what the arithmetic says.
    let g = Tensor::<2>::from_floats([[3.0], [4.0]], &device());
    let expected = TensorData::from([[0.0f32], [0.0]]);
    Centralize::along(0)
        .apply(g)
        .into_data()
        .assert_eq(&expected, true);
}

#[test]
fn an_axis_the_tensor_lacks_leaves_it_unchanged() {
    let g = Tensor::<1>::from_floats([1.0, 2.0, 3.0], &device());
    assert!(Centralize::along(1).fits(&[3]).is_err());
    let out = Centralize::along(1).apply(g.clone());
    out.into_data().assert_eq(&g.into_data(), true);
}

#[test]
fn half_precision_means_are_taken_in_f32() {
    // 4096 ones and one 2048 per row. Summed in f16, the running sum stalls at 2048 + 2048 = 4096
    // (f16's spacing there is 4, so adding 1 rounds away), giving a mean near 1.0 instead of
    // (4096 + 2048) / 4097 = 1.49963...; in f32 the ones come out at 1 − 1.49963 = −0.49963.
    let mut row = vec![1.0f32; 4096];
    row.push(2048.0);
    let g =
        Tensor::<2>::from_data(TensorData::new(row, [1, 4097]), &device()).cast(FloatDType::F16);
    let out = Centralize::along(0).apply(g).cast(FloatDType::F32);
    let ones: Vec<f32> = out.slice([0..1, 0..4096]).into_data().try_to_vec().unwrap();
    let mean = (4096.0 + 2048.0) / 4097.0f64;
    for value in ones {
        // f16 spacing near 0.5 is 2^-11 ≈ 4.9e-4.
        assert!((value as f64 - (1.0 - mean)).abs() < 5e-4, "{value}");
    }
}
