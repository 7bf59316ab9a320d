// Scores a batch of raw feature vectors with a list of variants (the champion and
// any challengers): standardizes with the running statistics (not updated here),
// then the forward pass of the model kind. One thread per (variant in list, sample);
// out[s * n + i] is variant which[s]'s probability for sample i.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> stats: array<f32>;
@group(0) @binding(2) var<storage, read> params: array<f32>;
@group(0) @binding(3) var<storage, read> hyper: array<Hyper>;
@group(0) @binding(4) var<storage, read> which: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<uniform> dims: Dims;

fn standardized(row: u32, j: u32) -> f32 {
    let nt = stats[3u * j];
    if (nt == 0.0) {
        return x[row + j];
    }
    let inv_std = 1.0 / sqrt(stats[3u * j + 2u] / nt + 1e-6);
    return (x[row + j] - stats[3u * j + 1u]) * inv_std;
}

@compute @workgroup_size(64)
fn score(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x;
    if (idx >= dims.n * dims.scored) {
        return;
    }
    let s = idx / dims.n;
    let i = idx % dims.n;
    let k = which[s];
    let d = dims.d;
    let row = i * d;
    let base = k * dims.stride;
    var z = 0.0;
    if (dims.kind == 0u) {
        z = params[base + d];
        for (var j = 0u; j < d; j = j + 1u) {
            z = z + params[base + j] * standardized(row, j);
        }
    } else {
        let d1 = d + 1u;
        let hm = dims.hidden_max;
        let w2 = base + hm * d1;
        let units = min(hyper[k].hidden, hm);
        z = params[w2 + hm];
        for (var u = 0u; u < units; u = u + 1u) {
            let wrow = base + u * d1;
            var a = params[wrow + d];
            for (var j = 0u; j < d; j = j + 1u) {
                a = a + params[wrow + j] * standardized(row, j);
            }
            z = z + params[w2 + u] * max(a, 0.0);
        }
    }
    out[idx] = sigmoid(z);
}
