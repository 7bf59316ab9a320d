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

/// Merges the chunk `x` (`n * d`, row-major) into `stats` (per feature: count,
/// mean, M2) and returns the chunk standardized with the merged statistics.
pub fn standardize_chunk(stats: &mut [f32], x: &[f32], d: usize) -> Vec<f32> {
    let n = x.len() / d;
    let mut xs = vec![0f32; x.len()];
    if n == 0 {
        return xs;
    }
    let mut partial = [0f32; WG_STD];
    for j in 0..d {
        for (t, p) in partial.iter_mut().enumerate() {
            let mut acc = 0f32;
            let mut i = t;
            while i < n {
                acc += x[i * d + j];
                i += WG_STD;
            }
            *p = acc;
        }
        let mb = tree_sum(&mut partial) / n as f32;
        for (t, p) in partial.iter_mut().enumerate() {
            let mut acc = 0f32;
            let mut i = t;
            while i < n {
                let dv = x[i * d + j] - mb;
                acc += dv * dv;
                i += WG_STD;
            }
            *p = acc;
        }
        let m2b = tree_sum(&mut partial);
        let (na, ma, m2a) = (stats[3 * j], stats[3 * j + 1], stats[3 * j + 2]);
        let nb = n as f32;
        let nt = na + nb;
        let delta = mb - ma;
        let mean = ma + delta * (nb / nt);
        let m2 = m2a + m2b + delta * delta * (na * nb / nt);
        let inv_std = 1.0 / (m2 / nt + 1e-6).sqrt();
        stats[3 * j] = nt;
        stats[3 * j + 1] = mean;
        stats[3 * j + 2] = m2;
        for i in 0..n {
            xs[i * d + j] = (x[i * d + j] - mean) * inv_std;
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
