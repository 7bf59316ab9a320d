// Logistic regression, K variants at once: forward, log-loss gradient, update.
// Parameters of a variant: w[0..d], then the bias at d (P = d + 1 in all).
// Per mini-batch (256 threads): each thread takes samples t, t+256, ... and
// computes dz. Then, when P <= 256, the gradient of parameter j is split into
// S = 256 / P slices: slice s sums dz_i * x_ij over the samples i = s, s+S, ... in
// ascending order, and the slices are added in ascending s; when P > 256, one
// thread sums a parameter's samples in ascending order. The CPU twin
// (operators/src/learn/linear.rs) uses the same slices and orders.

var<workgroup> partial: array<f32, 256>;

fn feature(i: u32, j: u32) -> f32 {
    if (j < dims.d) {
        return xs[i * dims.d + j];
    }
    return 1.0;
}

@compute @workgroup_size(256)
fn train_logistic(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let k = wg.x;
    let d = dims.d;
    let base = k * dims.stride;
    let h = hyper[k];
    var step = opt[4u * k];
    var b1pow = opt[4u * k + 1u];
    var b2pow = opt[4u * k + 2u];
    let batches = (dims.n + dims.batch - 1u) / dims.batch;
    for (var mb = 0u; mb < batches; mb = mb + 1u) {
        let start = mb * dims.batch;
        let nb = min(dims.batch, dims.n - start);
        step = step + 1.0;
        b1pow = b1pow * h.beta1;
        b2pow = b2pow * h.beta2;
        for (var i = t; i < nb; i = i + WG) {
            let row = (start + i) * d;
            var z = params[base + d];
            for (var j = 0u; j < d; j = j + 1u) {
                z = z + params[base + j] * xs[row + j];
            }
            let p = sigmoid(z);
            dz[i] = dloss(p, labels[2u * (start + i)], labels[2u * (start + i) + 1u], h.pos_weight);
        }
        workgroupBarrier();
        let np = d + 1u;
        if (np <= WG) {
            let slices = WG / np;
            if (t < slices * np) {
                let j = t % np;
                let s = t / np;
                var acc = 0.0;
                for (var i = s; i < nb; i = i + slices) {
                    acc = acc + dz[i] * feature(start + i, j);
                }
                partial[t] = acc;
            }
            workgroupBarrier();
            if (t < np) {
                var acc = 0.0;
                for (var s = 0u; s < slices; s = s + 1u) {
                    acc = acc + partial[s * np + t];
                }
                apply_update(k, t, acc / f32(nb), t == d, b1pow, b2pow);
            }
        } else {
            for (var j = t; j < np; j = j + WG) {
                var acc = 0.0;
                for (var i = 0u; i < nb; i = i + 1u) {
                    acc = acc + dz[i] * feature(start + i, j);
                }
                apply_update(k, j, acc / f32(nb), j == d, b1pow, b2pow);
            }
        }
        storageBarrier();
        workgroupBarrier();
    }
    if (t == 0u) {
        opt[4u * k] = step;
        opt[4u * k + 1u] = b1pow;
        opt[4u * k + 2u] = b2pow;
    }
}
