//! Online learners: logistic regression and a one-hidden-layer MLP, K variants
//! trained side by side on the same mini-batches.
//!
//! This is the CPU twin of the WGSL kernels in `shaders/`: every sum runs in the
//! same order as on the GPU, in f32, so that a GPU step and a CPU step agree to
//! rounding (the parity tests in `tests/gpu_parity.rs` hold them to it). The GPU
//! host code lives in the engine (`src/gpu/`); both implement [`Trainer`].
//!
//! A model's whole state is one [`ModelState`]: hyperparameters, parameters,
//! optimizer moments and the running feature statistics (standardization is part
//! of the model, so raw features can be fed in).

mod cpu;
mod linear;
mod mlp;
mod optimizer;
pub mod quality;
pub mod search;
mod standardize;

pub use cpu::CpuTrainer;
pub use search::SearchSpace;
pub use standardize::standardize_chunk;

use bytemuck::{Pod, Zeroable};
use serde::{Deserialize, Serialize};

/// Mini-batches are at most this large (the kernels keep one value per sample in
/// workgroup memory).
pub const MAX_BATCH: u32 = 1024;

/// Which model every variant of a trainer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    Logistic,
    Mlp,
}

/// Which optimizer a variant uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// SGD with (heavy-ball) momentum.
    Sgd,
    Adam,
}

/// One variant's hyperparameters, laid out as the shaders' `Hyper` struct.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable, Serialize, Deserialize)]
pub struct Hyper {
    pub lr: f32,
    pub l2: f32,
    pub pos_weight: f32,
    pub momentum: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// 0 = SGD with momentum, 1 = Adam.
    pub optimizer: u32,
    /// Hidden units (MLP); ignored by logistic regression.
    pub hidden: u32,
    pub _pad: [u32; 3],
}

impl Hyper {
    pub fn sgd(lr: f32, momentum: f32, l2: f32, pos_weight: f32) -> Hyper {
        Hyper { lr, l2, pos_weight, momentum, beta1: 0.9, beta2: 0.999, eps: 1e-8, optimizer: 0, hidden: 0, _pad: [0; 3] }
    }

    pub fn adam(lr: f32, l2: f32, pos_weight: f32) -> Hyper {
        Hyper { lr, l2, pos_weight, momentum: 0.0, beta1: 0.9, beta2: 0.999, eps: 1e-8, optimizer: 1, hidden: 0, _pad: [0; 3] }
    }

    pub fn with_hidden(mut self, hidden: u32) -> Hyper {
        self.hidden = hidden;
        self
    }

    pub fn optimizer_kind(&self) -> OptimizerKind {
        if self.optimizer == 0 {
            OptimizerKind::Sgd
        } else {
            OptimizerKind::Adam
        }
    }
}

/// The dimensions shared by all variants of a trainer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub kind: ModelKind,
    /// Features per sample.
    pub d: u32,
    /// Hidden units allocated per variant (MLP); variants use `hidden <= hidden_max`.
    pub hidden_max: u32,
    /// Mini-batch size.
    pub batch: u32,
}

impl Shape {
    /// Parameters per variant. Logistic: `d` weights then the bias. MLP: `hidden_max`
    /// rows of `d` weights and a bias, then `hidden_max` output weights, then the
    /// output bias.
    pub fn stride(&self) -> usize {
        let d1 = self.d as usize + 1;
        match self.kind {
            ModelKind::Logistic => d1,
            ModelKind::Mlp => self.hidden_max as usize * (d1 + 1) + 1,
        }
    }
}

/// Errors of a trainer: a bad shape or input, or a device failure.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnError(pub String);

impl std::fmt::Display for LearnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LearnError {}

/// Everything a trainer holds, as plain vectors (checkpoints, export, parity).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelState {
    pub shape: Shape,
    pub hyper: Vec<Hyper>,
    /// `k * stride` parameters.
    pub params: Vec<f32>,
    /// First moments of all variants, then second moments (Adam): `2 * k * stride`.
    pub moments: Vec<f32>,
    /// Per variant: steps taken, beta1^t, beta2^t, unused.
    pub opt: Vec<f32>,
    /// Per feature: count, mean, M2 of the raw values seen in training.
    pub stats: Vec<f32>,
}

impl ModelState {
    /// A fresh model: logistic weights at zero; MLP weights drawn uniformly in
    /// `±sqrt(6 / fan_in)` from `seed` (deterministic), biases at zero.
    pub fn new(shape: Shape, hyper: Vec<Hyper>, seed: u64) -> Result<ModelState, LearnError> {
        if shape.d == 0 {
            return Err(LearnError("a model needs at least one feature".into()));
        }
        if shape.batch == 0 || shape.batch > MAX_BATCH {
            return Err(LearnError(format!("mini-batch size must be 1..={MAX_BATCH}, got {}", shape.batch)));
        }
        if hyper.is_empty() {
            return Err(LearnError("a model needs at least one variant".into()));
        }
        if shape.kind == ModelKind::Mlp {
            if shape.hidden_max == 0 {
                return Err(LearnError("an MLP needs hidden_max >= 1".into()));
            }
            if let Some(h) = hyper.iter().find(|h| h.hidden == 0 || h.hidden > shape.hidden_max) {
                return Err(LearnError(format!("hidden size {} is outside 1..={}", h.hidden, shape.hidden_max)));
            }
        }
        let k = hyper.len();
        let stride = shape.stride();
        let mut params = vec![0f32; k * stride];
        if shape.kind == ModelKind::Mlp {
            let mut rng = SplitMix(seed);
            let d = shape.d as usize;
            let hm = shape.hidden_max as usize;
            for (v, h) in hyper.iter().enumerate() {
                let base = v * stride;
                let units = h.hidden as usize;
                let r1 = (6.0 / d as f64).sqrt();
                for u in 0..units {
                    for j in 0..d {
                        params[base + u * (d + 1) + j] = (r1 * rng.symmetric()) as f32;
                    }
                }
                let r2 = (6.0 / units as f64).sqrt();
                for u in 0..units {
                    params[base + hm * (d + 1) + u] = (r2 * rng.symmetric()) as f32;
                }
            }
        }
        Ok(ModelState {
            shape,
            params,
            moments: vec![0.0; 2 * k * stride],
            opt: hyper.iter().flat_map(|_| [0.0, 1.0, 1.0, 0.0]).collect(),
            stats: vec![0.0; 3 * shape.d as usize],
            hyper,
        })
    }

    /// Variants held.
    pub fn k(&self) -> usize {
        self.hyper.len()
    }

    /// One variant's parameters.
    pub fn variant_params(&self, k: usize) -> &[f32] {
        let s = self.shape.stride();
        &self.params[k * s..(k + 1) * s]
    }

    /// Replaces variant `to` with a copy of variant `from` (parameters and optimizer
    /// state) under new hyperparameters: population-based training's exploit step.
    pub fn copy_variant(&mut self, from: usize, to: usize, hyper: Hyper) {
        let s = self.shape.stride();
        let k = self.k();
        self.params.copy_within(from * s..(from + 1) * s, to * s);
        self.moments.copy_within(from * s..(from + 1) * s, to * s);
        self.moments.copy_within((k + from) * s..(k + from + 1) * s, (k + to) * s);
        self.opt.copy_within(4 * from..4 * from + 4, 4 * to);
        if hyper.optimizer != self.hyper[from].optimizer {
            // moments of another optimizer mean nothing here
            for r in [to * s..(to + 1) * s, (k + to) * s..(k + to + 1) * s] {
                self.moments[r].fill(0.0);
            }
            self.opt[4 * to..4 * to + 4].copy_from_slice(&[0.0, 1.0, 1.0, 0.0]);
        }
        self.hyper[to] = hyper;
    }

    /// Puts variant `k` back to where `fresh` (a state of the same shape) starts it:
    /// its parameters, optimizer moments and step count (the hyperparameters and
    /// the shared input statistics stay).
    pub fn reset_variant(&mut self, k: usize, fresh: &ModelState) {
        let s = self.shape.stride();
        let n = self.k();
        self.params[k * s..(k + 1) * s].copy_from_slice(&fresh.params[k * s..(k + 1) * s]);
        for r in [k * s..(k + 1) * s, (n + k) * s..(n + k + 1) * s] {
            self.moments[r].fill(0.0);
        }
        self.opt[4 * k..4 * k + 4].copy_from_slice(&[0.0, 1.0, 1.0, 0.0]);
    }

    /// Variant `k`'s probability for one raw row (standardized with the running
    /// statistics, which scoring never updates); the kernels' forward pass.
    pub fn score(&self, k: usize, row: &[f32]) -> f32 {
        match self.shape.kind {
            ModelKind::Logistic => linear::score_row(self, k, row),
            ModelKind::Mlp => mlp::score_row(self, k, row),
        }
    }

    /// The running mean of raw feature `j` (0 before any training): what a missing
    /// value is imputed with, so that it standardizes to 0.
    pub fn feature_mean(&self, j: usize) -> f32 {
        self.stats[3 * j + 1]
    }

    /// Checks that the vectors fit the shape (a state read from untrusted bytes).
    pub fn validate(&self) -> Result<(), LearnError> {
        let k = self.k();
        let s = self.shape.stride();
        let ok = k > 0
            && self.params.len() == k * s
            && self.moments.len() == 2 * k * s
            && self.opt.len() == 4 * k
            && self.stats.len() == 3 * self.shape.d as usize
            && self.shape.batch >= 1
            && self.shape.batch <= MAX_BATCH;
        if ok {
            Ok(())
        } else {
            Err(LearnError("model state does not match its shape".into()))
        }
    }
}

/// Trains K variants on chunks of labeled samples and scores with any of them.
pub trait Trainer {
    /// `"cpu"` or the GPU adapter's name.
    fn device(&self) -> String;
    fn shape(&self) -> Shape;
    /// Trains every variant on `x` (`n * d` raw features, row-major) with `labels`
    /// (`n * 2`: label in [0, 1], importance weight), in mini-batches of
    /// `shape.batch` in order. Updates the feature statistics with the chunk first.
    fn train(&mut self, x: &[f32], labels: &[f32]) -> Result<(), LearnError>;
    /// Probabilities of the variants in `which` for `x` (`n * d` raw features):
    /// `out[s * n + i]` is variant `which[s]` on sample `i`.
    fn score(&mut self, x: &[f32], which: &[u32]) -> Result<Vec<f32>, LearnError>;
    /// The whole state (from the device, for a GPU trainer).
    fn state(&mut self) -> Result<ModelState, LearnError>;
    /// Replaces the whole state (same shape and number of variants).
    fn set_state(&mut self, state: &ModelState) -> Result<(), LearnError>;
}

/// Checks a chunk's lengths against the shape.
pub(crate) fn check_chunk(shape: &Shape, x: &[f32], labels: Option<&[f32]>) -> Result<usize, LearnError> {
    let d = shape.d as usize;
    if x.len() % d != 0 {
        return Err(LearnError(format!("{} values is not a whole number of {d}-feature rows", x.len())));
    }
    let n = x.len() / d;
    if let Some(l) = labels {
        if l.len() != 2 * n {
            return Err(LearnError(format!("{} rows need {} label values, got {}", n, 2 * n, l.len())));
        }
    }
    Ok(n)
}

/// The logistic function in f32, as the shaders compute it.
#[inline]
pub fn sigmoid32(z: f32) -> f32 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// d(loss)/d(logit) for log loss with a positive-class weight `pw` and a sample
/// weight `sw` (the shaders' `dloss`).
#[inline]
pub(crate) fn dloss(p: f32, y: f32, sw: f32, pw: f32) -> f32 {
    sw * (pw * y * (p - 1.0) + (1.0 - y) * p)
}

/// A tiny deterministic generator (weight initialization, search perturbations).
#[derive(Clone, Debug)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn symmetric(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}
