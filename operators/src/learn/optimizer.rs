//! SGD with momentum and Adam, L2 on weights only: the CPU twin of
//! `shaders/optimizer.wgsl`, operation for operation.

use super::Hyper;

/// Updates parameter `at` (an index into `params`) of a variant with hyperparameters
/// `h`, given its gradient. `second` indexes the parameter's second moment.
#[allow(clippy::too_many_arguments)]
#[inline]
pub(crate) fn apply_update(h: &Hyper, params: &mut [f32], moments: &mut [f32], at: usize, second: usize, grad: f32, is_bias: bool, b1pow: f32, b2pow: f32) {
    let p = params[at];
    let g = if is_bias { grad } else { grad + h.l2 * p };
    if h.optimizer == 0 {
        let m = h.momentum * moments[at] + g;
        moments[at] = m;
        params[at] = p - h.lr * m;
    } else {
        let m = h.beta1 * moments[at] + (1.0 - h.beta1) * g;
        let v = h.beta2 * moments[second] + (1.0 - h.beta2) * g * g;
        moments[at] = m;
        moments[second] = v;
        let mhat = m / (1.0 - b1pow);
        let vhat = v / (1.0 - b2pow);
        params[at] = p - h.lr * mhat / (vhat.sqrt() + h.eps);
    }
}

/// A variant's optimizer clock, advanced once per mini-batch as the kernels do:
/// steps taken and the running products beta1^t, beta2^t (stored in `opt`).
pub(crate) struct StepClock {
    pub step: f32,
    pub b1pow: f32,
    pub b2pow: f32,
}

impl StepClock {
    pub fn load(opt: &[f32], k: usize) -> StepClock {
        StepClock { step: opt[4 * k], b1pow: opt[4 * k + 1], b2pow: opt[4 * k + 2] }
    }

    pub fn tick(&mut self, h: &Hyper) {
        self.step += 1.0;
        self.b1pow *= h.beta1;
        self.b2pow *= h.beta2;
    }

    pub fn store(&self, opt: &mut [f32], k: usize) {
        opt[4 * k..4 * k + 3].copy_from_slice(&[self.step, self.b1pow, self.b2pow]);
    }
}

/// The mini-batches of `n` rows in order: (first row, rows).
pub(crate) fn mini_batches(n: usize, batch: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..n).step_by(batch.max(1)).map(move |start| (start, batch.min(n - start)))
}
