//! Online standardization of raw features: the CPU twin of `shaders/standardize.wgsl`.
//!
//! Per feature the running count, mean and M2 absorb each training chunk with Chan's
//! merge; the chunk's own sums are 256 strided partial sums reduced by a halving
//! tree, the order the GPU workgroup uses.

const WG_STD: usize = 256;

fn tree_sum(partial: &mut [f32; WG_STD]) -> f32 {
    let mut s = WG_STD / 2;
    while s > 0 {
        for t in 0..s {
            partial[t] += partial[t + s];
        }
        s /= 2;
    }
    partial[0]
}

fn column(partial: &[f32], d: usize, j: usize) -> [f32; WG_STD] {
    std::array::from_fn(|t| partial[t * d + j])
}

/// Merges the chunk `x` (`n * d`, row-major) into `stats` (per feature: count,
/// mean, M2) and returns the chunk standardized with the merged statistics.
pub fn standardize_chunk(stats: &mut [f32], x: &[f32], d: usize) -> Vec<f32> {
    let n = x.len() / d;
    let mut xs = vec![0f32; x.len()];
    if n == 0 {
        return xs;
    }
    // partial[t * d + j] sums rows i = t, t + 256, ... of feature j in ascending i
    // (the GPU thread t's order); walking rows in order keeps memory access linear.
    let mut partial = vec![0f32; WG_STD * d];
    for (i, row) in x.chunks_exact(d).enumerate() {
        let p = &mut partial[(i % WG_STD) * d..(i % WG_STD + 1) * d];
        for j in 0..d {
            p[j] += row[j];
        }
    }
    let chunk_mean: Vec<f32> = (0..d).map(|j| tree_sum(&mut column(&partial, d, j)) / n as f32).collect();
    partial.fill(0.0);
    for (i, row) in x.chunks_exact(d).enumerate() {
        let p = &mut partial[(i % WG_STD) * d..(i % WG_STD + 1) * d];
        for j in 0..d {
            let dv = row[j] - chunk_mean[j];
            p[j] += dv * dv;
        }
    }
    let mut mean = vec![0f32; d];
    let mut inv_std = vec![0f32; d];
    for j in 0..d {
        let mb = chunk_mean[j];
        let m2b = tree_sum(&mut column(&partial, d, j));
        let (na, ma, m2a) = (stats[3 * j], stats[3 * j + 1], stats[3 * j + 2]);
        let nb = n as f32;
        let nt = na + nb;
        let delta = mb - ma;
        mean[j] = ma + delta * (nb / nt);
        let m2 = m2a + m2b + delta * delta * (na * nb / nt);
        inv_std[j] = 1.0 / (m2 / nt + 1e-6).sqrt();
        stats[3 * j] = nt;
        stats[3 * j + 1] = mean[j];
        stats[3 * j + 2] = m2;
    }
    for (row, out) in x.chunks_exact(d).zip(xs.chunks_exact_mut(d)) {
        for j in 0..d {
            out[j] = (row[j] - mean[j]) * inv_std[j];
        }
    }
    xs
}

/// Feature `j` of a raw row, standardized with `stats` without updating them (what
/// scoring does); raw while no statistics exist yet.
#[inline]
pub(crate) fn standardized(stats: &[f32], row: &[f32], j: usize) -> f32 {
    let nt = stats[3 * j];
    if nt == 0.0 {
        return row[j];
    }
    let inv_std = 1.0 / (stats[3 * j + 2] / nt + 1e-6).sqrt();
    (row[j] - stats[3 * j + 1]) * inv_std
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_statistics_equal_the_whole_stream() {
        let d = 2;
        let x: Vec<f32> = (0..1000).flat_map(|i| [i as f32 * 0.5, (i % 7) as f32 - 3.0]).collect();
        let mut stats = vec![0f32; 3 * d];
        standardize_chunk(&mut stats, &x[..600 * d], d);
        let xs = standardize_chunk(&mut stats, &x[600 * d..], d);
        for j in 0..d {
            let col: Vec<f64> = x.iter().skip(j).step_by(d).map(|v| *v as f64).collect();
            let mean = col.iter().sum::<f64>() / col.len() as f64;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / col.len() as f64;
            assert_eq!(stats[3 * j], 1000.0);
            assert!((stats[3 * j + 1] as f64 - mean).abs() < 1e-3 * (1.0 + mean.abs()), "mean {j}");
            assert!((stats[3 * j + 2] as f64 / 1000.0 - var).abs() < 1e-3 * (1.0 + var), "var {j}");
            let last = x[999 * d + j] as f64;
            let want = (last - mean) / (var + 1e-6).sqrt();
            assert!((xs[399 * d + j] as f64 - want).abs() < 1e-3, "standardized {j}");
        }
    }
}
