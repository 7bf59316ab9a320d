//! The GPU context and device selection.
//!
//! `--device auto|gpu|cpu` picks where the learners run: `gpu` requires a wgpu
//! adapter (Vulkan) and fails with a clear error without one; `auto` falls back to
//! the CPU twin (`vigil_operators::learn::CpuTrainer`), which computes the same
//! thing; `cpu` never touches the GPU. The choice and the adapter's name are
//! reported by the `vigil_model_device_info` metric and the demo summary.

mod trainer;

pub use trainer::GpuTrainer;

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use vigil_operators::learn::{CpuTrainer, LearnError, ModelState, Trainer};

/// Where the learners run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    /// The GPU when an adapter is found, else the CPU.
    #[default]
    Auto,
    /// The GPU, or an error.
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

impl Gpu {
    /// Opens the first adapter wgpu offers (Vulkan; a discrete GPU preferred).
    pub fn open() -> Result<Gpu, LearnError> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = wgpu::Backends::VULKAN;
        let instance = wgpu::Instance::new(desc);
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
            ..Default::default()
        }))
        .map_err(|e| {
            LearnError(format!(
                "no GPU adapter found ({e}); install a Vulkan driver (Debian: mesa-vulkan-drivers for lavapipe) \
                 or run with --device cpu (VK_DRIVER_FILES={})",
                std::env::var("VK_DRIVER_FILES").unwrap_or_else(|_| "unset".into())
            ))
        })?;
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
        Ok(Gpu { device, queue, adapter: format!("{} ({:?}, {:?})", info.name, info.device_type, info.backend), errors })
    }

    /// The first error the device reported since it opened, if any.
    pub fn check(&self) -> Result<(), LearnError> {
        match self.errors.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            Some(e) => Err(LearnError(format!("GPU error: {e}"))),
            None => Ok(()),
        }
    }
}

/// A trainer on the chosen device, with the device's description.
pub fn open_trainer(choice: DeviceChoice, state: ModelState) -> Result<Box<dyn Trainer + Send>, LearnError> {
    match choice {
        DeviceChoice::Cpu => Ok(Box::new(CpuTrainer::new(state)?)),
        DeviceChoice::Gpu => Ok(Box::new(GpuTrainer::new(Gpu::open()?, state)?)),
        DeviceChoice::Auto => match Gpu::open() {
            Ok(gpu) => Ok(Box::new(GpuTrainer::new(gpu, state)?)),
            Err(e) => {
                tracing::warn!("{e}; training on the CPU");
                Ok(Box::new(CpuTrainer::new(state)?))
            }
        },
    }
}
