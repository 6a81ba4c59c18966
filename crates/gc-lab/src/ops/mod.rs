//! The lab's own kernels for the CPU backend (flex, f32), for the two operations that took most
//! of a training step there: [`conv`] (2-D convolution) and [`batch_norm`] (training-mode batch
//! norm). Each is a burn backend extension with its own backward pass; the models call
//! [`conv::forward`] and [`batch_norm::forward`] in place of the modules' `forward`.
//! `benches/conv_layers.rs` and `train_step --burn-ops` measure them against burn's own.

pub mod batch_norm;
pub mod conv;

use std::sync::atomic::{AtomicBool, Ordering};

use burn::backend::flex::{FlexTensor, Layout};
use burn::tensor::{Bytes, DType, Shape};

static BURNS: AtomicBool = AtomicBool::new(false);

/// Makes the functions here use burn's own operations from now on, in every thread (`true`), or
/// the lab's kernels again (`false`): for measuring one against the other in one process.
pub fn use_burns(yes: bool) {
    BURNS.store(yes, Ordering::Relaxed);
}

/// Whether the functions here use burn's own operations ([`use_burns`]).
pub fn uses_burns() -> bool {
    BURNS.load(Ordering::Relaxed)
}

/// `ft` itself when its values lie contiguously in logical order, else a contiguous copy.
fn contiguous(ft: FlexTensor) -> FlexTensor {
    if ft.as_slice::<f32>().is_some() {
        ft
    } else {
        ft.to_contiguous()
    }
}

/// The values of a tensor [`contiguous`] returned.
fn values(ft: &FlexTensor) -> &[f32] {
    ft.as_slice::<f32>()
        .expect("`contiguous` gave a contiguous f32 tensor")
}

/// A dense f32 tensor of `shape` holding `values`.
fn flex_tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(shape),
        DType::F32,
    )
}

/// Whether the kernels here take these tensors (all f32); others go to burn-flex's own.
fn f32s(tensors: &[&FlexTensor]) -> bool {
    tensors.iter().all(|t| t.dtype() == DType::F32)
}

/// Helpers of both modules' tests.
#[cfg(test)]
mod testing {
    use burn::tensor::{Device, Tensor, TensorData};

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
}
