//! [`GpuTrainer`]: the learners' kernels (`shaders/*.wgsl`) driven through wgpu.
//!
//! Weights, optimizer moments and feature statistics live in GPU buffers. A
//! `train` call uploads one chunk of labeled samples and records two dispatches
//! in one submission (standardize: one workgroup per feature; train: one
//! workgroup per variant, looping over the chunk's mini-batches), with no
//! readback. `score` uploads a batch and reads back only the probabilities;
//! `state` reads the weights back (checkpoints, export, parity tests).

use vigil_operators::learn::{Hyper, LearnError, ModelKind, ModelState, Shape, Trainer};
use wgpu::util::DeviceExt;

use super::Gpu;

const COMMON: &str = include_str!("../../shaders/common.wgsl");
const STANDARDIZE: &str = include_str!("../../shaders/standardize.wgsl");
const TRAIN_BINDINGS: &str = include_str!("../../shaders/train_bindings.wgsl");
const OPTIMIZER: &str = include_str!("../../shaders/optimizer.wgsl");
const LOGISTIC_TRAIN: &str = include_str!("../../shaders/logistic_train.wgsl");
const MLP_TRAIN: &str = include_str!("../../shaders/mlp_train.wgsl");
const SCORE: &str = include_str!("../../shaders/score.wgsl");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Dims {
    n: u32,
    d: u32,
    batch: u32,
    k: u32,
    hidden_max: u32,
    stride: u32,
    kind: u32,
    scored: u32,
}

/// A storage buffer that grows to fit.
struct Grow {
    buffer: wgpu::Buffer,
    label: &'static str,
    usage: wgpu::BufferUsages,
}

impl Grow {
    fn new(device: &wgpu::Device, label: &'static str, bytes: u64, usage: wgpu::BufferUsages) -> Grow {
        let buffer = device.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size: bytes.max(16), usage, mapped_at_creation: false });
        Grow { buffer, label, usage }
    }

    /// Makes room for `bytes`; true when the buffer was replaced.
    fn fit(&mut self, device: &wgpu::Device, bytes: u64) -> bool {
        if bytes <= self.buffer.size() {
            return false;
        }
        let size = bytes.next_power_of_two();
        self.buffer = device.create_buffer(&wgpu::BufferDescriptor { label: Some(self.label), size, usage: self.usage, mapped_at_creation: false });
        true
    }
}

fn pipeline(device: &wgpu::Device, label: &str, parts: &[&str], entry: &str) -> wgpu::ComputePipeline {
    let source: String = parts.concat();
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor { label: Some(label), source: wgpu::ShaderSource::Wgsl(source.into()) });
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(label),
        layout: None,
        module: &module,
        entry_point: Some(entry),
        compilation_options: Default::default(),
        cache: None,
    })
}

fn bind(device: &wgpu::Device, pipeline: &wgpu::ComputePipeline, buffers: &[(u32, &wgpu::Buffer)]) -> wgpu::BindGroup {
    let layout = pipeline.get_bind_group_layout(0);
    let entries: Vec<wgpu::BindGroupEntry> =
        buffers.iter().map(|(binding, b)| wgpu::BindGroupEntry { binding: *binding, resource: b.as_entire_binding() }).collect();
    device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &layout, entries: &entries })
}

/// Trains and scores K variants on a GPU.
pub struct GpuTrainer {
    gpu: Gpu,
    shape: Shape,
    k: usize,
    hyper: Vec<Hyper>,
    standardize: wgpu::ComputePipeline,
    train: wgpu::ComputePipeline,
    score: wgpu::ComputePipeline,
    x: Grow,
    xs: Grow,
    labels: Grow,
    params: wgpu::Buffer,
    moments: wgpu::Buffer,
    opt: wgpu::Buffer,
    stats: wgpu::Buffer,
    hyper_buf: wgpu::Buffer,
    scratch: wgpu::Buffer,
    train_dims: wgpu::Buffer,
    score_dims: wgpu::Buffer,
    which: Grow,
    out: Grow,
    readback: Grow,
    bind_groups: Option<(wgpu::BindGroup, wgpu::BindGroup)>,
    score_group: Option<wgpu::BindGroup>,
}

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_DST).union(wgpu::BufferUsages::COPY_SRC);

impl GpuTrainer {
    pub fn new(gpu: Gpu, state: ModelState) -> Result<GpuTrainer, LearnError> {
        state.validate()?;
        let device = &gpu.device;
        let shape = state.shape;
        let k = state.k();
        let train_kernel = match shape.kind {
            ModelKind::Logistic => pipeline(device, "train_logistic", &[COMMON, TRAIN_BINDINGS, OPTIMIZER, LOGISTIC_TRAIN], "train_logistic"),
            ModelKind::Mlp => pipeline(device, "train_mlp", &[COMMON, TRAIN_BINDINGS, OPTIMIZER, MLP_TRAIN], "train_mlp"),
        };
        let init = |label: &str, data: &[f32]| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some(label), contents: bytemuck::cast_slice(data), usage: STORAGE })
        };
        let uniform = |label: &str| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: std::mem::size_of::<Dims>() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        let scratch_len = k * shape.batch as usize * shape.hidden_max as usize + k * shape.stride();
        let trainer = GpuTrainer {
            standardize: pipeline(device, "standardize", &[COMMON, STANDARDIZE], "standardize"),
            train: train_kernel,
            score: pipeline(device, "score", &[COMMON, SCORE], "score"),
            x: Grow::new(device, "x", 1 << 16, STORAGE),
            xs: Grow::new(device, "xs", 1 << 16, STORAGE),
            labels: Grow::new(device, "labels", 1 << 12, STORAGE),
            params: init("params", &state.params),
            moments: init("moments", &state.moments),
            opt: init("opt", &state.opt),
            stats: init("stats", &state.stats),
            hyper_buf: device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("hyper"),
                contents: bytemuck::cast_slice(&state.hyper),
                usage: STORAGE,
            }),
            scratch: init("scratch", &vec![0f32; scratch_len.max(4)]),
            train_dims: uniform("train_dims"),
            score_dims: uniform("score_dims"),
            which: Grow::new(device, "which", 256, STORAGE),
            out: Grow::new(device, "out", 1 << 12, STORAGE),
            readback: Grow::new(device, "readback", 1 << 12, wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST),
            bind_groups: None,
            score_group: None,
            hyper: state.hyper.clone(),
            shape,
            k,
            gpu: gpu.clone(),
        };
        trainer.gpu.check()?;
        Ok(trainer)
    }

    fn dims(&self, n: usize, scored: usize) -> Dims {
        Dims {
            n: n as u32,
            d: self.shape.d,
            batch: self.shape.batch,
            k: self.k as u32,
            hidden_max: self.shape.hidden_max,
            stride: self.shape.stride() as u32,
            kind: match self.shape.kind {
                ModelKind::Logistic => 0,
                ModelKind::Mlp => 1,
            },
            scored: scored as u32,
        }
    }

    /// Reads `len` f32 from `buffer` (a blocking copy through the readback buffer).
    fn read(&mut self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>, LearnError> {
        let bytes = (len * 4) as u64;
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let device = &self.gpu.device;
        self.readback.fit(device, bytes);
        let mut encoder = device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer, 0, &self.readback.buffer, 0, bytes);
        self.gpu.queue.submit([encoder.finish()]);
        let slice = self.readback.buffer.slice(..bytes);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| LearnError(format!("GPU poll failed: {e}")))?;
        rx.recv().map_err(|_| LearnError("GPU readback was dropped".into()))?.map_err(|e| LearnError(format!("GPU readback failed: {e}")))?;
        let values = {
            let view = slice.get_mapped_range().map_err(|e| LearnError(format!("GPU readback failed: {e}")))?;
            bytemuck::cast_slice::<u8, f32>(&view).to_vec()
        };
        self.readback.buffer.unmap();
        self.gpu.check()?;
        Ok(values)
    }
}

impl GpuTrainer {
    /// Records the standardize and/or train dispatches over the chunk last uploaded
    /// by `train`, in one submission.
    fn dispatch_training(&mut self, standardize: bool, train: bool) -> Result<(), LearnError> {
        let Some((std_group, train_group)) = self.bind_groups.as_ref() else {
            return Err(LearnError("no chunk uploaded".into()));
        };
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            if standardize {
                pass.set_pipeline(&self.standardize);
                pass.set_bind_group(0, std_group, &[]);
                pass.dispatch_workgroups(self.shape.d, 1, 1);
            }
            if train {
                pass.set_pipeline(&self.train);
                pass.set_bind_group(0, train_group, &[]);
                pass.dispatch_workgroups(self.k as u32, 1, 1);
            }
        }
        self.gpu.queue.submit([encoder.finish()]);
        self.gpu.check()
    }

    /// Benchmarks only: runs the kernels again over the chunk already on the GPU
    /// (no upload), then waits for them. Separates kernel time from transfer time.
    pub fn rerun_resident(&mut self, standardize: bool, train: bool) -> Result<(), LearnError> {
        self.dispatch_training(standardize, train)?;
        self.gpu.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| LearnError(format!("GPU poll failed: {e}")))?;
        self.gpu.check()
    }
}

impl Trainer for GpuTrainer {
    fn device(&self) -> String {
        self.gpu.adapter.clone()
    }

    fn shape(&self) -> Shape {
        self.shape
    }

    fn train(&mut self, x: &[f32], labels: &[f32]) -> Result<(), LearnError> {
        let d = self.shape.d as usize;
        if x.len() % d != 0 || labels.len() != 2 * (x.len() / d) {
            return Err(LearnError(format!("a chunk of {} values and {} label values does not fit d = {d}", x.len(), labels.len())));
        }
        let n = x.len() / d;
        if n == 0 {
            return Ok(());
        }
        let device = &self.gpu.device;
        let bytes = (x.len() * 4) as u64;
        let grew = self.x.fit(device, bytes) | self.xs.fit(device, bytes) | self.labels.fit(device, (labels.len() * 4) as u64);
        if grew || self.bind_groups.is_none() {
            let std_group = bind(device, &self.standardize, &[(0, &self.x.buffer), (1, &self.xs.buffer), (2, &self.stats), (3, &self.train_dims)]);
            let mut entries = vec![
                (0, &self.xs.buffer),
                (1, &self.labels.buffer),
                (2, &self.params),
                (3, &self.moments),
                (4, &self.opt),
                (5, &self.hyper_buf),
                (6, &self.train_dims),
            ];
            if self.shape.kind == ModelKind::Mlp {
                entries.push((7, &self.scratch));
            }
            let train_group = bind(device, &self.train, &entries);
            self.bind_groups = Some((std_group, train_group));
            self.score_group = None;
        }
        let queue = &self.gpu.queue;
        queue.write_buffer(&self.x.buffer, 0, bytemuck::cast_slice(x));
        queue.write_buffer(&self.labels.buffer, 0, bytemuck::cast_slice(labels));
        queue.write_buffer(&self.train_dims, 0, bytemuck::bytes_of(&self.dims(n, 0)));
        self.dispatch_training(true, true)
    }

    fn score(&mut self, x: &[f32], which: &[u32]) -> Result<Vec<f32>, LearnError> {
        let d = self.shape.d as usize;
        if x.len() % d != 0 {
            return Err(LearnError(format!("{} values is not a whole number of {d}-feature rows", x.len())));
        }
        if let Some(k) = which.iter().find(|k| **k as usize >= self.k) {
            return Err(LearnError(format!("no variant {k}")));
        }
        let n = x.len() / d;
        let total = n * which.len();
        if total == 0 {
            return Ok(Vec::new());
        }
        if total.div_ceil(64) > 65_535 {
            // one dispatch covers at most 65,535 workgroups: score in slices
            let rows = (65_535 * 64 / which.len()).max(1);
            let mut parts: Vec<Vec<f32>> = Vec::new();
            for chunk in x.chunks(rows * d) {
                parts.push(self.score(chunk, which)?);
            }
            let mut out = vec![0f32; total];
            let mut row0 = 0;
            for part in parts {
                let m = part.len() / which.len();
                for s in 0..which.len() {
                    out[s * n + row0..s * n + row0 + m].copy_from_slice(&part[s * m..(s + 1) * m]);
                }
                row0 += m;
            }
            return Ok(out);
        }
        let device = &self.gpu.device;
        let grew = self.x.fit(device, (x.len() * 4) as u64) | self.which.fit(device, (which.len() * 4) as u64) | self.out.fit(device, (total * 4) as u64);
        if grew {
            self.bind_groups = None;
            self.score_group = None;
        }
        if self.score_group.is_none() {
            self.score_group = Some(bind(
                device,
                &self.score,
                &[
                    (0, &self.x.buffer),
                    (1, &self.stats),
                    (2, &self.params),
                    (3, &self.hyper_buf),
                    (4, &self.which.buffer),
                    (5, &self.out.buffer),
                    (6, &self.score_dims),
                ],
            ));
        }
        let queue = &self.gpu.queue;
        queue.write_buffer(&self.x.buffer, 0, bytemuck::cast_slice(x));
        queue.write_buffer(&self.which.buffer, 0, bytemuck::cast_slice(which));
        queue.write_buffer(&self.score_dims, 0, bytemuck::bytes_of(&self.dims(n, which.len())));
        let mut encoder = device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&self.score);
            pass.set_bind_group(0, self.score_group.as_ref(), &[]);
            pass.dispatch_workgroups(total.div_ceil(64) as u32, 1, 1);
        }
        queue.submit([encoder.finish()]);
        let out = self.out.buffer.clone();
        self.read(&out, total)
    }

    fn state(&mut self) -> Result<ModelState, LearnError> {
        let stride = self.shape.stride();
        let (params, moments, opt, stats) = (self.params.clone(), self.moments.clone(), self.opt.clone(), self.stats.clone());
        Ok(ModelState {
            shape: self.shape,
            hyper: self.hyper.clone(),
            params: self.read(&params, self.k * stride)?,
            moments: self.read(&moments, 2 * self.k * stride)?,
            opt: self.read(&opt, 4 * self.k)?,
            stats: self.read(&stats, 3 * self.shape.d as usize)?,
        })
    }

    fn set_state(&mut self, state: &ModelState) -> Result<(), LearnError> {
        state.validate()?;
        if state.shape != self.shape || state.k() != self.k {
            return Err(LearnError("state has another shape or number of variants".into()));
        }
        let queue = &self.gpu.queue;
        queue.write_buffer(&self.params, 0, bytemuck::cast_slice(&state.params));
        queue.write_buffer(&self.moments, 0, bytemuck::cast_slice(&state.moments));
        queue.write_buffer(&self.opt, 0, bytemuck::cast_slice(&state.opt));
        queue.write_buffer(&self.stats, 0, bytemuck::cast_slice(&state.stats));
        queue.write_buffer(&self.hyper_buf, 0, bytemuck::cast_slice(&state.hyper));
        self.hyper = state.hyper.clone();
        queue.submit([]);
        self.gpu.check()
    }
}
