//! Logistic regression on the CPU: the twin of `shaders/logistic_train.wgsl`.
//!
//! Sums run in the kernel's order: a logit is the bias plus `w_j * x_j` for
//! ascending `j`; a gradient sums `dz_i * x_ij` over ascending `i`, then divides by
//! the mini-batch size. The loops are arranged so those per-value orders hold while
//! the compiler can still vectorize across samples and features.

use super::optimizer::apply_update;
use super::standardize::standardized;
use super::{dloss, sigmoid32, ModelState};

/// Trains variant `k` on the standardized chunk `xs` (`n * d`), in mini-batches.
pub(crate) fn train_variant(st: &mut ModelState, k: usize, xs: &[f32], labels: &[f32], dz: &mut [f32], grad: &mut [f32]) {
    let d = st.shape.d as usize;
    let stride = st.shape.stride();
    let base = k * stride;
    let second = st.k() * stride;
    let h = st.hyper[k];
    let (mut step, mut b1pow, mut b2pow) = (st.opt[4 * k], st.opt[4 * k + 1], st.opt[4 * k + 2]);
    let n = xs.len() / d;
    let batch = st.shape.batch as usize;
    let mut start = 0;
    while start < n {
        let nb = batch.min(n - start);
        step += 1.0;
        b1pow *= h.beta1;
        b2pow *= h.beta2;
        let rows = &xs[start * d..(start + nb) * d];
        let w = &st.params[base..base + stride];
        for (i, dzi) in dz[..nb].iter_mut().enumerate() {
            let row = &rows[i * d..(i + 1) * d];
            let mut z = w[d];
            for j in 0..d {
                z += w[j] * row[j];
            }
            let l = 2 * (start + i);
            *dzi = dloss(sigmoid32(z), labels[l], labels[l + 1], h.pos_weight);
        }
        let acc = &mut grad[..=d];
        acc.fill(0.0);
        for (i, &g) in dz[..nb].iter().enumerate() {
            let row = &rows[i * d..(i + 1) * d];
            for j in 0..d {
                acc[j] += g * row[j];
            }
            acc[d] += g;
        }
        for (j, &a) in acc.iter().enumerate() {
            apply_update(&h, &mut st.params, &mut st.moments, base + j, second + base + j, a / nb as f32, j == d, b1pow, b2pow);
        }
        start += nb;
    }
    st.opt[4 * k] = step;
    st.opt[4 * k + 1] = b1pow;
    st.opt[4 * k + 2] = b2pow;
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
