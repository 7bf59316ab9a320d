// Online standardization, one workgroup per feature.
// Merges the chunk's mean and M2 into the running statistics (Chan et al.), then
// writes the chunk standardized with the merged statistics:
//   xs = (x - mean) / sqrt(M2 / count + 1e-6)
// Sums use a fixed order (256 strided partial sums, then a halving tree) that the
// CPU twin (operators/src/learn/standardize.rs) reproduces exactly.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> xs: array<f32>;
// per feature: count, mean, M2
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
@group(0) @binding(3) var<uniform> dims: Dims;

const WG_STD: u32 = 256u;
var<workgroup> partial: array<f32, 256>;
var<workgroup> chunk_mean: f32;

fn tree_sum(t: u32) {
    var s = WG_STD / 2u;
    loop {
        if (s == 0u) { break; }
        if (t < s) {
            partial[t] = partial[t] + partial[t + s];
        }
        workgroupBarrier();
        s = s / 2u;
    }
}

@compute @workgroup_size(256)
fn standardize(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let j = wg.x;
    let d = dims.d;
    let n = dims.n;
    var acc = 0.0;
    for (var i = t; i < n; i = i + WG_STD) {
        acc = acc + x[i * d + j];
    }
    partial[t] = acc;
    workgroupBarrier();
    tree_sum(t);
    if (t == 0u) {
        chunk_mean = partial[0] / f32(n);
    }
    workgroupBarrier();
    let mb = chunk_mean;
    acc = 0.0;
    for (var i = t; i < n; i = i + WG_STD) {
        let dv = x[i * d + j] - mb;
        acc = acc + dv * dv;
    }
    workgroupBarrier();
    partial[t] = acc;
    workgroupBarrier();
    tree_sum(t);
    // every thread merges (same inputs, same result); thread 0 stores
    let na = stats[3u * j];
    let ma = stats[3u * j + 1u];
    let m2a = stats[3u * j + 2u];
    let nb = f32(n);
    let nt = na + nb;
    let delta = mb - ma;
    let mean = ma + delta * (nb / nt);
    let m2 = m2a + partial[0] + delta * delta * (na * nb / nt);
    let inv_std = 1.0 / sqrt(m2 / nt + 1e-6);
    workgroupBarrier();
    if (t == 0u) {
        stats[3u * j] = nt;
        stats[3u * j + 1u] = mean;
        stats[3u * j + 2u] = m2;
    }
    for (var i = t; i < n; i = i + WG_STD) {
        xs[i * d + j] = (x[i * d + j] - mean) * inv_std;
    }
}
