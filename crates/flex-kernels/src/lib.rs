//! CPU kernels for burn's `flex` backend in f32, for the operations that take most of a
//! training step there: [`conv`] (2-D convolution, forward and both gradients), [`batch_norm`]
//! (training-mode batch norm, optionally with the ReLU, or the residual sum and ReLU, that
//! follow it) and [`pool`] (max pooling). Each is a burn backend extension with its own backward
//! pass: call [`conv::forward`], [`batch_norm::forward`] (or [`batch_norm::forward_relu`],
//! [`batch_norm::forward_add_relu`]) and [`pool::max_pool2d`] in place of the modules'
//! `forward`. Other backends and dtypes go to burn's own operations. [`malloc`] holds the
//! allocator settings these buffers run fastest with.
//!
//! Nothing here knows about models or optimizers. `benches/conv_layers.rs` measures each method
//! against burn-flex's convolution, layer by layer.

pub mod batch_norm;
pub mod conv;
pub mod malloc;
pub mod pool;
#[cfg(test)]
mod testing;

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::LocalKey;

use burn::backend::flex::{FlexTensor, Layout};
use burn::tensor::{Bytes, DType, Shape};
use rayon::prelude::*;

static BURNS: AtomicBool = AtomicBool::new(false);

/// Makes the functions here ([`conv::forward`], [`batch_norm::forward`], [`pool::max_pool2d`],
/// ...) use burn's own operations from now on, in every thread (`true`), or the kernels here
/// again (`false`): for measuring one against the other in one process.
pub fn use_burn_ops(yes: bool) {
    BURNS.store(yes, Ordering::Relaxed);
}

/// Whether the functions here use burn's own operations ([`use_burn_ops`]).
pub fn uses_burn_ops() -> bool {
    BURNS.load(Ordering::Relaxed)
}

/// Whether the kernels here run on `device`: flex's, with or without autodiff. On any other
/// device the functions take burn's own operations.
pub fn runs_on(device: &burn::tensor::Device) -> bool {
    device.clone().inner() == burn::tensor::Device::flex()
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

/// Whether this CPU has AVX-512F, which the kernels' 16-lane forms (`conv/wide.rs`,
/// `batch_norm/wide.rs`) need: asked once.
fn has_avx512f() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::is_x86_feature_detected!("avx512f")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// Runs `f` with this thread's `setting` at `value`, and puts the previous value back after it,
/// also when `f` panics: the per-thread switches of the kernels (a convolution's method, the
/// instruction set, batch norm's groups and running statistics).
fn with_setting<T: Copy + 'static, R>(
    setting: &'static LocalKey<Cell<T>>,
    value: T,
    f: impl FnOnce() -> R,
) -> R {
    struct Restore<T: Copy + 'static>(&'static LocalKey<Cell<T>>, T);
    impl<T: Copy + 'static> Drop for Restore<T> {
        fn drop(&mut self) {
            self.0.set(self.1);
        }
    }
    let _restore = Restore(setting, setting.replace(value));
    f()
}

/// Whether the kernels here take these tensors (all f32); others go to burn-flex's own.
fn all_f32(tensors: &[&FlexTensor]) -> bool {
    tensors.iter().all(|t| t.dtype() == DType::F32)
}

/// A fresh vector of `n` images of `len` elements, image `b`'s chunk written by `one((b,
/// chunk))`, over the pool when `spread`, else in turn, without filling it with zeros first: an
/// output that every element of is stored saves the allocator's `memset` and a write of the
/// whole buffer. Debug builds (the tests) start from NaN, so that an element `one` leaves out
/// shows in the results instead of whatever the allocator's memory held.
///
/// # Safety
/// `one` writes every element of the chunk it is given.
unsafe fn images_into(
    n: usize,
    len: usize,
    spread: bool,
    one: impl Fn((usize, &mut [MaybeUninit<f32>])) + Sync + Send,
) -> Vec<f32> {
    let total = n * len;
    let mut out: Vec<f32> = Vec::with_capacity(total);
    let chunks = &mut out.spare_capacity_mut()[..total];
    if cfg!(debug_assertions) {
        chunks.fill(MaybeUninit::new(f32::NAN));
    }
    if spread {
        chunks.par_chunks_mut(len.max(1)).enumerate().for_each(one);
    } else {
        chunks.chunks_mut(len.max(1)).enumerate().for_each(one);
    }
    // SAFETY: the chunks cover `0..total` and `one` wrote every element of each (the caller's
    // contract).
    unsafe { out.set_len(total) };
    out
}

#[cfg(test)]
mod setting_tests {
    use std::cell::Cell;

    use super::with_setting;

    thread_local! {
        static SETTING: Cell<u8> = const { Cell::new(0) };
    }

    /// A setting holds inside `f`, nested ones inside theirs, and the previous value comes back
    /// after each, also when `f` panics.
    #[test]
    fn settings_hold_inside_and_come_back_after_a_panic() {
        let seen = with_setting(&SETTING, 1, || {
            let inner = with_setting(&SETTING, 2, || SETTING.get());
            (inner, SETTING.get())
        });
        assert_eq!((seen, SETTING.get()), ((2, 1), 0));
        let panicked = std::panic::catch_unwind(|| with_setting(&SETTING, 3, || panic!("inside")));
        assert!(panicked.is_err());
        assert_eq!(SETTING.get(), 0);
    }
}
