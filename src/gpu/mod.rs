//! The GPU context and device selection.
//!
//! `--device auto|gpu|cpu` picks where the learners run. `auto` (the default)
//! takes a real GPU (discrete, then integrated, then virtual) and otherwise the
//! CPU twin (`vigil_operators::learn::CpuTrainer`), which computes the same thing:
//! a software rasterizer (llvmpipe/lavapipe, wgpu's `DeviceType::Cpu`) runs the
//! kernels far slower than the twin, so `auto` never picks it. `gpu` takes the best
//! adapter there is, software ones included (CI tests the kernels on lavapipe), and
//! fails with a clear error without one; `cpu` never touches the GPU. The choice
//! and the adapter's name are reported by the `vigil_model_device_info` metric and
//! the run summaries.

mod trainer;

pub use trainer::GpuTrainer;

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use vigil_operators::learn::{CpuTrainer, LearnError, ModelState, Trainer};

/// Where the learners run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    /// A real GPU when one is found, else the CPU twin (never a software adapter).
    #[default]
    Auto,
    /// The best adapter, a software one (lavapipe) included, or an error.
    Gpu,
    /// The CPU twin.
    Cpu,
}

/// An open wgpu device with its queue and the adapter's description.
#[derive(Clone)]
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: String,
    /// The first validation or out-of-memory error the device reported.
    errors: Arc<Mutex<Option<String>>>,
}

/// The adapter `choice` runs on among adapters of these types (their index), or
/// `None`: `auto` takes real GPUs only (discrete, integrated, virtual, in that
/// order), `gpu` also software adapters and unknown ones, `cpu` none.
pub fn choose_adapter(choice: DeviceChoice, types: &[wgpu::DeviceType]) -> Option<usize> {
    use wgpu::DeviceType as T;
    let preference = |t: T| match t {
        T::DiscreteGpu => Some(0),
        T::IntegratedGpu => Some(1),
        T::VirtualGpu => Some(2),
        T::Cpu | T::Other if choice == DeviceChoice::Gpu => Some(3),
        T::Cpu | T::Other => None,
    };
    if choice == DeviceChoice::Cpu {
        return None;
    }
    types.iter().enumerate().filter_map(|(i, t)| preference(*t).map(|p| (p, i))).min().map(|(_, i)| i)
}

/// Makes the Vulkan loader's layers quiet on machines without a display: Mesa's
/// device-select layer connects to Wayland while wgpu enumerates adapters, and
/// libwayland prints `error: XDG_RUNTIME_DIR is invalid or not set` when that
/// variable is missing. Pointing it at the temporary directory (no compositor
/// there) silences it. Call at the start of `main`, before any thread exists.
pub fn quiet_vulkan_layers() {
    let unset = std::env::var_os("XDG_RUNTIME_DIR").is_none_or(|d| !std::path::Path::new(&d).is_absolute());
    if unset {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
}

impl Gpu {
    /// Opens the best adapter for an explicit GPU request (`--device gpu`): a real
    /// GPU, else a software one.
    pub fn open() -> Result<Gpu, LearnError> {
        Gpu::open_for(DeviceChoice::Gpu)
    }

    /// Opens the adapter [`choose_adapter`] picks for `choice` among wgpu's Vulkan
    /// adapters, or says why there is none.
    pub fn open_for(choice: DeviceChoice) -> Result<Gpu, LearnError> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = wgpu::Backends::VULKAN;
        let instance = wgpu::Instance::new(desc);
        let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN));
        let types: Vec<wgpu::DeviceType> = adapters.iter().map(|a| a.get_info().device_type).collect();
        let Some(chosen) = choose_adapter(choice, &types) else {
            let found: Vec<String> = adapters.iter().map(|a| describe(&a.get_info())).collect();
            return Err(LearnError(if found.is_empty() {
                format!(
                    "no GPU adapter found; install a Vulkan driver (Debian: mesa-vulkan-drivers for lavapipe) \
                     or run with --device cpu (VK_DRIVER_FILES={})",
                    std::env::var("VK_DRIVER_FILES").unwrap_or_else(|_| "unset".into())
                )
            } else {
                format!("no GPU adapter found, only software ones ({}); --device gpu runs on them", found.join(", "))
            }));
        };
        let adapter = adapters.swap_remove(chosen);
        let info = adapter.get_info();
        let supported = adapter.limits();
        let mut limits = wgpu::Limits::default();
        limits.max_storage_buffer_binding_size = supported.max_storage_buffer_binding_size;
        limits.max_buffer_size = supported.max_buffer_size;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("vigil"),
            required_features: wgpu::Features::empty(),
            required_limits: limits,
            ..Default::default()
        }))
        .map_err(|e| LearnError(format!("GPU adapter {} refused a device: {e}", info.name)))?;
        let errors = Arc::new(Mutex::new(None::<String>));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| e.to_string());
        }));
        Ok(Gpu { device, queue, adapter: describe(&info), errors })
    }

    /// The first error the device reported since it opened, if any.
    pub fn check(&self) -> Result<(), LearnError> {
        match self.errors.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            Some(e) => Err(LearnError(format!("GPU error: {e}"))),
            None => Ok(()),
        }
    }
}

fn describe(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?}, {:?})", info.name, info.device_type, info.backend)
}

/// A trainer on the chosen device, with the device's description.
pub fn open_trainer(choice: DeviceChoice, state: ModelState) -> Result<Box<dyn Trainer + Send>, LearnError> {
    match choice {
        DeviceChoice::Cpu => Ok(Box::new(CpuTrainer::new(state)?)),
        DeviceChoice::Gpu => Ok(Box::new(GpuTrainer::new(Gpu::open()?, state)?)),
        DeviceChoice::Auto => match Gpu::open_for(DeviceChoice::Auto) {
            Ok(gpu) => Ok(Box::new(GpuTrainer::new(gpu, state)?)),
            Err(e) => {
                tracing::info!("{e}; training on the CPU twin");
                Ok(Box::new(CpuTrainer::new(state)?))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wgpu::DeviceType as T;

    #[test]
    fn auto_takes_a_real_gpu_or_none() {
        let auto = |types: &[T]| choose_adapter(DeviceChoice::Auto, types);
        assert_eq!(auto(&[]), None);
        assert_eq!(auto(&[T::Cpu]), None, "llvmpipe/lavapipe: the CPU twin instead");
        assert_eq!(auto(&[T::Other, T::Cpu]), None);
        assert_eq!(auto(&[T::Cpu, T::IntegratedGpu]), Some(1));
        assert_eq!(auto(&[T::Cpu, T::IntegratedGpu, T::DiscreteGpu]), Some(2));
        assert_eq!(auto(&[T::VirtualGpu, T::Cpu, T::IntegratedGpu]), Some(2));
        assert_eq!(auto(&[T::Cpu, T::VirtualGpu]), Some(1));
        assert_eq!(auto(&[T::DiscreteGpu, T::DiscreteGpu]), Some(0), "the first of equals");
    }

    #[test]
    fn gpu_takes_software_adapters_when_asked_and_cpu_takes_none() {
        let gpu = |types: &[T]| choose_adapter(DeviceChoice::Gpu, types);
        assert_eq!(gpu(&[]), None);
        assert_eq!(gpu(&[T::Cpu]), Some(0));
        assert_eq!(gpu(&[T::Cpu, T::IntegratedGpu]), Some(1), "a real GPU first");
        assert_eq!(gpu(&[T::Other]), Some(0));
        assert_eq!(choose_adapter(DeviceChoice::Cpu, &[T::DiscreteGpu]), None);
    }
}
