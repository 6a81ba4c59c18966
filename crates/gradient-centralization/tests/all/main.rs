//! One integration-test binary (each binary links all of burn): modules by concept.
//!
//! The suite runs on burn's flex CPU backend, or on any other the test build has: with
//! `GC_TEST_DEVICE=wgpu`, on burn's wgpu backend over Vulkan's CPU adapter (lavapipe, from
//! `scripts/install-vulkan.sh`), where the seed optimizers' steps take the GPU kernel.

mod centralize;
mod errors;
mod kernels;
mod layouts;
mod loading;
mod module_optimizer;
mod parity;
mod plan;
mod properties;
mod rectified;

use std::sync::OnceLock;

use burn::module::Param;
use burn::tensor::{Device, DeviceKind, Tensor, Tolerance};

/// The device every test runs on (without autodiff; tests add it).
pub fn device() -> Device {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    DEVICE
        .get_or_init(|| match std::env::var("GC_TEST_DEVICE").as_deref() {
            Err(_) | Ok("flex") => Device::flex(),
            Ok("wgpu") => Device::wgpu_options()
                .device_kind(DeviceKind::Cpu)
                .graphics_api(burn::tensor::wgpu::WgpuBackend::Vulkan)
                .init()
                .unwrap_or_else(|err| {
                    panic!(
                        "GC_TEST_DEVICE=wgpu: no Vulkan CPU adapter ({err}); install one with \
                         scripts/install-vulkan.sh"
                    )
                }),
            Ok(other) => panic!("GC_TEST_DEVICE={other}: expected flex or wgpu"),
        })
        .clone()
}

/// A parameter's value (off the autodiff graph) equals `expected` within `tolerance`, absolute.
pub fn assert_param<const D: usize>(param: &Param<Tensor<D>>, expected: Tensor<D>, tolerance: f64) {
    param
        .val()
        .inner()
        .into_data()
        .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(tolerance));
}
