//! [`CpuTrainer`]: the CPU path of the learners, used when no GPU adapter is found
//! and as the reference the GPU path is tested against.

use super::{check_chunk, linear, mlp, standardize_chunk, LearnError, ModelKind, ModelState, Shape, Trainer};

/// Trains and scores K variants on the CPU, in f32, in the kernels' order.
pub struct CpuTrainer {
    state: ModelState,
    dz: Vec<f32>,
    act: Vec<f32>,
    grad: Vec<f32>,
}

impl CpuTrainer {
    pub fn new(state: ModelState) -> Result<CpuTrainer, LearnError> {
        state.validate()?;
        let b = state.shape.batch as usize;
        Ok(CpuTrainer { dz: vec![0.0; b], act: vec![0.0; b * state.shape.hidden_max as usize], grad: vec![0.0; state.shape.stride().max(256)], state })
    }

    /// The state, without copying.
    pub fn model(&self) -> &ModelState {
        &self.state
    }
}

impl Trainer for CpuTrainer {
    fn device(&self) -> String {
        "cpu".into()
    }

    fn shape(&self) -> Shape {
        self.state.shape
    }

    fn train(&mut self, x: &[f32], labels: &[f32]) -> Result<(), LearnError> {
        let n = check_chunk(&self.state.shape, x, Some(labels))?;
        if n == 0 {
            return Ok(());
        }
        let d = self.state.shape.d as usize;
        let xs = standardize_chunk(&mut self.state.stats, x, d);
        for k in 0..self.state.k() {
            match self.state.shape.kind {
                ModelKind::Logistic => linear::train_variant(&mut self.state, k, &xs, labels, &mut self.dz, &mut self.grad),
                ModelKind::Mlp => mlp::train_variant(&mut self.state, k, &xs, labels, &mut self.dz, &mut self.act, &mut self.grad),
            }
        }
        Ok(())
    }

    fn score(&mut self, x: &[f32], which: &[u32]) -> Result<Vec<f32>, LearnError> {
        let n = check_chunk(&self.state.shape, x, None)?;
        let d = self.state.shape.d as usize;
        let mut out = Vec::with_capacity(n * which.len());
        for &k in which {
            let k = k as usize;
            if k >= self.state.k() {
                return Err(LearnError(format!("no variant {k}")));
            }
            for row in x.chunks_exact(d) {
                out.push(match self.state.shape.kind {
                    ModelKind::Logistic => linear::score_row(&self.state, k, row),
                    ModelKind::Mlp => mlp::score_row(&self.state, k, row),
                });
            }
        }
        Ok(out)
    }

    fn state(&mut self) -> Result<ModelState, LearnError> {
        Ok(self.state.clone())
    }

    fn set_state(&mut self, state: &ModelState) -> Result<(), LearnError> {
        state.validate()?;
        if state.shape != self.state.shape || state.k() != self.state.k() {
            return Err(LearnError("state has another shape or number of variants".into()));
        }
        self.state = state.clone();
        Ok(())
    }
}
