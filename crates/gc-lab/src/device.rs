//! Where a run trains: `flex` (burn's CPU backend, the default, with the lab's own kernels),
//! `wgpu` and `vulkan` (burn's wgpu backend: any adapter, or pinned to Vulkan) or `cuda`, each
//! with an adapter; burn's operations everywhere but on flex. Several, comma-separated, train
//! data-parallel ([`Devices`]).

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use anyhow::{Result, bail};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

/// Which adapter of a wgpu backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Adapter {
    /// The one wgpu picks (a discrete GPU first; `CUBECL_WGPU_DEFAULT_DEVICE` overrides it).
    Default,
    /// The CPU's (on Linux, Mesa's lavapipe).
    Cpu,
    /// The discrete GPU with this index.
    Gpu(usize),
}

/// A device by name: `flex`, `wgpu[:cpu|:N]`, `vulkan[:cpu|:N]`, `cuda[:N]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum DeviceName {
    /// burn's CPU backend.
    #[default]
    Flex,
    /// burn's wgpu backend on the graphics API it settles on.
    Wgpu(Adapter),
    /// burn's wgpu backend on Vulkan.
    Vulkan(Adapter),
    /// burn's CUDA backend, the GPU with this index.
    Cuda(usize),
}

impl DeviceName {
    /// The device, or an error that names what to build or install. A wgpu device is set up once
    /// per process (its runtime refuses a second setup); later calls return the same one.
    pub fn device(self) -> Result<Device> {
        static OPENED: Mutex<Vec<(DeviceName, Device)>> = Mutex::new(Vec::new());
        let mut opened = OPENED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, device)) = opened.iter().find(|(name, _)| *name == self) {
            return Ok(device.clone());
        }
        let device = match self {
            DeviceName::Flex => Device::flex(),
            DeviceName::Wgpu(adapter) => wgpu(adapter, false)?,
            DeviceName::Vulkan(adapter) => wgpu(adapter, true)?,
            DeviceName::Cuda(index) => cuda(index)?,
        };
        opened.push((self, device.clone()));
        Ok(device)
    }

    /// Whether the lab's own CPU kernels (convolution, batch norm, fused optimizer steps) run
    /// here; elsewhere burn's operations do.
    pub fn has_lab_kernels(self) -> bool {
        self == DeviceName::Flex
    }
}

#[cfg(any(test, feature = "wgpu"))]
fn wgpu(adapter: Adapter, vulkan: bool) -> Result<Device> {
    use burn::tensor::DeviceKind;
    use burn::tensor::wgpu::WgpuBackend;
    let kind = match adapter {
        Adapter::Default => DeviceKind::DefaultDevice,
        Adapter::Cpu => DeviceKind::Cpu,
        Adapter::Gpu(index) => DeviceKind::DiscreteGpu(index),
    };
    let mut options = Device::wgpu_options().device_kind(kind);
    if vulkan {
        options = options.graphics_api(WgpuBackend::Vulkan);
    }
    options.init().map_err(|err| {
        anyhow::anyhow!(
            "no {} adapter for {adapter:?} ({err}): install the GPU's Vulkan driver, or Mesa's \
             CPU one (scripts/install-vulkan.sh) for `--device wgpu:cpu`",
            if vulkan { "Vulkan" } else { "wgpu" }
        )
    })
}

#[cfg(not(any(test, feature = "wgpu")))]
fn wgpu(_adapter: Adapter, _vulkan: bool) -> Result<Device> {
    bail!(
        "this gclab was built without burn's wgpu backend: build it with `cargo build --release \
         -p gc-lab --features wgpu` (about 10 minutes more, cold), and install a Vulkan driver \
         (scripts/install-vulkan.sh installs Mesa's CPU one)"
    )
}

#[cfg(feature = "cuda")]
fn cuda(index: usize) -> Result<Device> {
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn cuda(_index: usize) -> Result<Device> {
    bail!(
        "this gclab was built without burn's CUDA backend: build it with `cargo build --release \
         -p gc-lab --features cuda` on a machine with the CUDA toolkit and network access (CubeCL's \
         build script downloads its LLVM bundle)"
    )
}

impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let adapter = |f: &mut fmt::Formatter<'_>, adapter: &Adapter| match adapter {
            Adapter::Default => Ok(()),
            Adapter::Cpu => write!(f, ":cpu"),
            Adapter::Gpu(index) => write!(f, ":{index}"),
        };
        match self {
            DeviceName::Flex => write!(f, "flex"),
            DeviceName::Wgpu(a) => write!(f, "wgpu").and_then(|()| adapter(f, a)),
            DeviceName::Vulkan(a) => write!(f, "vulkan").and_then(|()| adapter(f, a)),
            DeviceName::Cuda(index) => write!(f, "cuda:{index}"),
        }
    }
}

impl FromStr for DeviceName {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        let lower = name.trim().to_ascii_lowercase();
        let (kind, at) = match lower.split_once(':') {
            Some((kind, at)) => (kind, Some(at)),
            None => (lower.as_str(), None),
        };
        let unknown = || {
            format!(
                "unknown device `{name}`; known: flex, wgpu, wgpu:cpu, wgpu:N, vulkan, vulkan:cpu, \
                 vulkan:N, cuda, cuda:N (N: the GPU's index)"
            )
        };
        let adapter = |at: Option<&str>| match at {
            None => Some(Adapter::Default),
            Some("cpu") => Some(Adapter::Cpu),
            Some(n) => n.parse().ok().map(Adapter::Gpu),
        };
        match (kind, at) {
            ("flex", None) => Ok(DeviceName::Flex),
            ("wgpu", at) => adapter(at).map(DeviceName::Wgpu).ok_or_else(unknown),
            ("vulkan", at) => adapter(at).map(DeviceName::Vulkan).ok_or_else(unknown),
            ("cuda", None) => Ok(DeviceName::Cuda(0)),
            ("cuda", Some(n)) => n.parse().map(DeviceName::Cuda).map_err(|_| unknown()),
            _ => Err(unknown()),
        }
    }
}

/// The devices a run trains on, the first being the main one (evaluation, checkpoints): one, or
/// several that train data-parallel, each on its share of every batch (`wgpu:0,wgpu:1`). Written
/// as the names joined by commas, so that a saved config naming one device reads as before.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Devices(Vec<DeviceName>);

impl Devices {
    /// The devices in order; never empty.
    pub fn names(&self) -> &[DeviceName] {
        &self.0
    }

    /// Opens every device (see [`DeviceName::device`]).
    pub fn open(&self) -> Result<Vec<Device>> {
        self.0.iter().map(|name| name.device()).collect()
    }
}

impl Default for Devices {
    fn default() -> Self {
        Devices(vec![DeviceName::Flex])
    }
}

impl From<DeviceName> for Devices {
    fn from(name: DeviceName) -> Self {
        Devices(vec![name])
    }
}

impl fmt::Display for Devices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ",")?;
            }
            write!(f, "{name}")?;
        }
        Ok(())
    }
}

impl FromStr for Devices {
    type Err = String;

    /// Names joined by commas. A name may repeat: replicas on one device train as several would
    /// (the tests' way to check data parallelism where there is one device).
    fn from_str(names: &str) -> Result<Self, String> {
        let names = names
            .split(',')
            .map(str::parse)
            .collect::<Result<Vec<DeviceName>, String>>()?;
        Ok(Devices(names))
    }
}

impl From<Devices> for String {
    fn from(devices: Devices) -> String {
        devices.to_string()
    }
}

impl TryFrom<String> for Devices {
    type Error = String;
    fn try_from(names: String) -> Result<Self, String> {
        names.parse()
    }
}

impl From<DeviceName> for String {
    fn from(name: DeviceName) -> String {
        name.to_string()
    }
}

impl TryFrom<String> for DeviceName {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        name.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print() {
        for name in [
            "flex",
            "wgpu",
            "wgpu:cpu",
            "wgpu:1",
            "vulkan",
            "vulkan:cpu",
            "cuda:2",
        ] {
            assert_eq!(name.parse::<DeviceName>().unwrap().to_string(), name);
        }
        assert_eq!("CUDA".parse::<DeviceName>(), Ok(DeviceName::Cuda(0)));
        for bad in ["gpu", "flex:1", "wgpu:x", "cuda:cpu", ""] {
            let err = bad.parse::<DeviceName>().unwrap_err();
            assert!(err.contains("known: flex"), "{bad}: {err}");
        }
    }

    #[test]
    fn device_lists_parse_print_and_read_saved_single_names() {
        let devices: Devices = "flex,vulkan:cpu,cuda:1".parse().unwrap();
        assert_eq!(
            devices.names(),
            [
                DeviceName::Flex,
                DeviceName::Vulkan(Adapter::Cpu),
                DeviceName::Cuda(1)
            ]
        );
        assert_eq!(devices.to_string(), "flex,vulkan:cpu,cuda:1");
        let saved: Devices = serde_json::from_str("\"flex\"").unwrap();
        assert_eq!(saved, Devices::default());
        assert_eq!(serde_json::to_string(&saved).unwrap(), "\"flex\"");
        for bad in ["flex,", ",flex", "flex,gpu"] {
            let err = bad.parse::<Devices>().unwrap_err();
            assert!(err.contains("known: flex"), "{bad}: {err}");
        }
    }

    /// Without the cuda feature the error says how to get it.
    #[cfg(not(feature = "cuda"))]
    #[test]
    fn a_backend_not_built_in_names_the_feature() {
        let err = DeviceName::Cuda(0).device().unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }
}
