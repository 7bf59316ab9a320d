//! Logistic regression on the CPU: the twin of `shaders/logistic_train.wgsl`.
//!
//! Sums run in the kernel's order: a logit is the bias plus `w_j * x_j` for
//! ascending `j`; a gradient sums `dz_i * x_ij` in the kernel's slices (see
//! `train_variant`), then divides by the mini-batch size. The loops are arranged so those per-value orders hold while
//! the compiler can still vectorize across samples and features.

use super::optimizer::{apply_update, mini_batches, StepClock};
use super::standardize::standardized;
use super::{dloss, sigmoid32, ModelState};

/// Threads per workgroup of the training kernels.
const WORKGROUP: usize = 256;

/// Trains variant `k` on the standardized chunk `xs` (`n * d`), in mini-batches.
pub(crate) fn train_variant(st: &mut ModelState, k: usize, xs: &[f32], labels: &[f32], dz: &mut [f32], grad: &mut [f32]) {
    let d = st.shape.d as usize;
    let stride = st.shape.stride();
    let base = k * stride;
    let second = st.k() * stride;
    let h = st.hyper[k];
    let mut clock = StepClock::load(&st.opt, k);
    let n = xs.len() / d;
    for (start, nb) in mini_batches(n, st.shape.batch as usize) {
        clock.tick(&h);
        let (b1pow, b2pow) = (clock.b1pow, clock.b2pow);
        let rows = &xs[start * d..(start + nb) * d];
        let w = &st.params[base..base + stride];
        // logits of 8 samples at a time: 8 independent sums, each in ascending j
        let mut i = 0;
        while i < nb {
            let m = (nb - i).min(8);
            let mut z = [w[d]; 8];
            for j in 0..d {
                let wj = w[j];
                for (b, zb) in z[..m].iter_mut().enumerate() {
                    *zb += wj * rows[(i + b) * d + j];
                }
            }
            for (b, zb) in z[..m].iter().enumerate() {
                let l = 2 * (start + i + b);
                dz[i + b] = dloss(sigmoid32(*zb), labels[l], labels[l + 1], h.pos_weight);
            }
            i += m;
        }
        // the kernel's slices: parameter j's samples i = s, s+S, ... summed per
        // slice s, the slices then added in ascending s
        let np = d + 1;
        let slices = if np <= WORKGROUP { WORKGROUP / np } else { 1 };
        let part = &mut grad[..slices * np];
        part.fill(0.0);
        for (i, &g) in dz[..nb].iter().enumerate() {
            let row = &rows[i * d..(i + 1) * d];
            let acc = &mut part[(i % slices) * np..(i % slices + 1) * np];
            for j in 0..d {
                acc[j] += g * row[j];
            }
            acc[d] += g;
        }
        for j in 0..np {
            let mut acc = 0f32;
            for s in 0..slices {
                acc += part[s * np + j];
            }
            apply_update(&h, &mut st.params, &mut st.moments, base + j, second + base + j, acc / nb as f32, j == d, b1pow, b2pow);
        }
    }
    clock.store(&mut st.opt, k);
}

/// Variant `k`'s probability for one raw row (standardized with the running stats).
pub(crate) fn score_row(st: &ModelState, k: usize, row: &[f32]) -> f32 {
    let d = st.shape.d as usize;
    let w = st.variant_params(k);
    let mut z = w[d];
    for j in 0..d {
        z += w[j] * standardized(&st.stats, row, j);
    }
    sigmoid32(z)
}
