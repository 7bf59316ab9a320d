// Logistic regression, K variants at once: forward, log-loss gradient, update.
// Parameters of a variant: w[0..d], then the bias at d.
// Per mini-batch: each thread takes samples t, t+64, ... and computes dz; then each
// thread takes parameters t, t+64, ... and sums dz * x over the mini-batch in
// sample order (the CPU twin's order), divides by the mini-batch size, updates.

@compute @workgroup_size(64)
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
        for (var j = t; j <= d; j = j + WG) {
            var acc = 0.0;
            if (j < d) {
                for (var i = 0u; i < nb; i = i + 1u) {
                    acc = acc + dz[i] * xs[(start + i) * d + j];
                }
            } else {
                for (var i = 0u; i < nb; i = i + 1u) {
                    acc = acc + dz[i];
                }
            }
            apply_update(k, j, acc / f32(nb), j == d, b1pow, b2pow);
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
