//! The one-hidden-layer MLP (ReLU) on the CPU: the twin of `shaders/mlp_train.wgsl`.
//!
//! A variant uses its first `hidden` units; the rest of its `hidden_max` rows stay
//! untouched. Forward sums: a unit's bias plus `W1[u][j] * x_j` for ascending `j`;
//! the logit is the output bias plus `w2[u] * a_u` for ascending `u`. Every
//! gradient sums over ascending samples, then divides by the mini-batch size.

use super::optimizer::{apply_update, mini_batches, StepClock};
use super::standardize::standardized;
use super::{dloss, sigmoid32, ModelState};

/// Trains variant `k` on the standardized chunk `xs` (`n * d`), in mini-batches.
/// `act` holds `batch * hidden_max` activations, `grad` one stride of gradients.
pub(crate) fn train_variant(st: &mut ModelState, k: usize, xs: &[f32], labels: &[f32], dz: &mut [f32], act: &mut [f32], grad: &mut [f32]) {
    let d = st.shape.d as usize;
    let d1 = d + 1;
    let hm = st.shape.hidden_max as usize;
    let stride = st.shape.stride();
    let base = k * stride;
    let second = st.k() * stride;
    let h = st.hyper[k];
    let units = (h.hidden as usize).min(hm);
    let mut clock = StepClock::load(&st.opt, k);
    let n = xs.len() / d;
    for (start, nb) in mini_batches(n, st.shape.batch as usize) {
        clock.tick(&h);
        let (b1pow, b2pow) = (clock.b1pow, clock.b2pow);
        let rows = &xs[start * d..(start + nb) * d];
        let w = &st.params[base..base + stride];
        let (w1, rest) = w.split_at(hm * d1);
        let w2 = &rest[..hm];
        let b2 = rest[hm];
        for (i, dzi) in dz[..nb].iter_mut().enumerate() {
            let row = &rows[i * d..(i + 1) * d];
            let mut z = b2;
            for u in 0..units {
                let wrow = &w1[u * d1..(u + 1) * d1];
                let mut a = wrow[d];
                for j in 0..d {
                    a += wrow[j] * row[j];
                }
                let a = a.max(0.0);
                act[i * hm + u] = a;
                z += w2[u] * a;
            }
            let l = 2 * (start + i);
            *dzi = dloss(sigmoid32(z), labels[l], labels[l + 1], h.pos_weight);
        }
        // gradients, each summed over ascending samples
        grad[..stride].fill(0.0);
        for u in 0..units {
            let wout = w2[u];
            let (gw1, _) = grad.split_at_mut(hm * d1);
            let grow = &mut gw1[u * d1..(u + 1) * d1];
            for i in 0..nb {
                if act[i * hm + u] > 0.0 {
                    let dh = dz[i] * wout;
                    let row = &rows[i * d..(i + 1) * d];
                    for j in 0..d {
                        grow[j] += dh * row[j];
                    }
                    grow[d] += dh;
                }
            }
        }
        for u in 0..units {
            let mut acc = 0f32;
            for i in 0..nb {
                acc += dz[i] * act[i * hm + u];
            }
            grad[hm * d1 + u] = acc;
        }
        let mut acc = 0f32;
        for &g in &dz[..nb] {
            acc += g;
        }
        grad[stride - 1] = acc;
        // updates
        let scale = nb as f32;
        for u in 0..units {
            for j in 0..d1 {
                let q = u * d1 + j;
                apply_update(&h, &mut st.params, &mut st.moments, base + q, second + base + q, grad[q] / scale, j == d, b1pow, b2pow);
            }
        }
        for u in 0..units {
            let q = hm * d1 + u;
            apply_update(&h, &mut st.params, &mut st.moments, base + q, second + base + q, grad[q] / scale, false, b1pow, b2pow);
        }
        let q = stride - 1;
        apply_update(&h, &mut st.params, &mut st.moments, base + q, second + base + q, grad[q] / scale, true, b1pow, b2pow);
    }
    clock.store(&mut st.opt, k);
}

/// Variant `k`'s probability for one raw row (standardized with the running stats).
pub(crate) fn score_row(st: &ModelState, k: usize, row: &[f32]) -> f32 {
    let d = st.shape.d as usize;
    let d1 = d + 1;
    let hm = st.shape.hidden_max as usize;
    let w = st.variant_params(k);
    let units = (st.hyper[k].hidden as usize).min(hm);
    let mut z = w[hm * d1 + hm];
    for u in 0..units {
        let wrow = &w[u * d1..(u + 1) * d1];
        let mut a = wrow[d];
        for j in 0..d {
            a += wrow[j] * standardized(&st.stats, row, j);
        }
        z += w[hm * d1 + u] * a.max(0.0);
    }
    sigmoid32(z)
}
