//! Helpers of the kernels' tests.

use burn::tensor::{Device, Tensor, TensorData};

/// Tests that switch to burn's own operations ([`crate::use_burn_ops`], a process-wide switch) or
/// compare runs bit for bit take turns.
pub static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Values in [-1, 1) from a linear congruential generator, the same on every run.
pub fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

pub fn tensor<const D: usize>(shape: [usize; D], seed: u64, device: &Device) -> Tensor<D> {
    let n = shape.iter().product();
    Tensor::from_data(TensorData::new(values(n, seed), shape), device)
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec().unwrap()
}

/// `ours` equals `reference` up to float rounding: every element within 1e-5 of the largest
/// magnitude (the two sum in different orders).
pub fn assert_close(ours: &[f32], reference: &[f32], what: &str) {
    assert_eq!(ours.len(), reference.len(), "{what}: length");
    let scale = reference.iter().fold(1f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in ours.iter().zip(reference).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * scale,
            "{what}[{i}]: ours {a}, burn {b} (scale {scale})"
        );
    }
}
