// One-hidden-layer MLP (ReLU), K variants at once, each with its own hidden size
// (units at or past a variant's `hidden` are masked: never read, never updated).
// Parameters of a variant, H = hidden_max: row h of the first layer at h*(d+1)
// (d weights, then the bias b1[h]); w2 at H*(d+1); the output bias b2 last.
// Per mini-batch (256 threads): (1) forward, one (sample, unit) activation per
// thread into `scratch`, then one sample's output per thread; (2) every
// gradient into `scratch`, sums over the mini-batch in sample order; (3) update.
// The CPU twin (operators/src/learn/mlp.rs) sums in the same order.

@group(0) @binding(7) var<storage, read_write> scratch: array<f32>; // k*batch*H activations, then k*stride gradients

fn mlp_active(q: u32, units: u32) -> bool {
    let d1 = dims.d + 1u;
    let hm = dims.hidden_max;
    if (q < hm * d1) {
        return q / d1 < units;
    }
    if (q < hm * d1 + hm) {
        return q - hm * d1 < units;
    }
    return true;
}

@compute @workgroup_size(256)
fn train_mlp(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let k = wg.x;
    let d = dims.d;
    let d1 = d + 1u;
    let hm = dims.hidden_max;
    let base = k * dims.stride;
    let w2 = base + hm * d1;
    let b2 = w2 + hm;
    let h = hyper[k];
    let units = min(h.hidden, hm);
    let act_base = k * dims.batch * hm;
    let grad_base = dims.k * dims.batch * hm + base;
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
        // (1a) hidden activations, one (sample, unit) pair per thread
        for (var w = t; w < nb * units; w = w + WG) {
            let i = w / units;
            let u = w % units;
            let row = (start + i) * d;
            let wrow = base + u * d1;
            var a = params[wrow + d];
            for (var j = 0u; j < d; j = j + 1u) {
                a = a + params[wrow + j] * xs[row + j];
            }
            scratch[act_base + i * hm + u] = max(a, 0.0);
        }
        storageBarrier();
        workgroupBarrier();
        // (1b) output and dz, one sample per thread
        for (var i = t; i < nb; i = i + WG) {
            var z = params[b2];
            for (var u = 0u; u < units; u = u + 1u) {
                z = z + params[w2 + u] * scratch[act_base + i * hm + u];
            }
            let p = sigmoid(z);
            dz[i] = dloss(p, labels[2u * (start + i)], labels[2u * (start + i) + 1u], h.pos_weight);
        }
        storageBarrier();
        workgroupBarrier();
        // (2) gradients
        for (var q = t; q < dims.stride; q = q + WG) {
            if (!mlp_active(q, units)) {
                continue;
            }
            var acc = 0.0;
            if (q < hm * d1) {
                let u = q / d1;
                let j = q % d1;
                let wout = params[w2 + u];
                for (var i = 0u; i < nb; i = i + 1u) {
                    if (scratch[act_base + i * hm + u] > 0.0) {
                        let dh = dz[i] * wout;
                        if (j < d) {
                            acc = acc + dh * xs[(start + i) * d + j];
                        } else {
                            acc = acc + dh;
                        }
                    }
                }
            } else if (q < hm * d1 + hm) {
                let u = q - hm * d1;
                for (var i = 0u; i < nb; i = i + 1u) {
                    acc = acc + dz[i] * scratch[act_base + i * hm + u];
                }
            } else {
                for (var i = 0u; i < nb; i = i + 1u) {
                    acc = acc + dz[i];
                }
            }
            scratch[grad_base + q] = acc / f32(nb);
        }
        storageBarrier();
        workgroupBarrier();
        // (3) update
        for (var q = t; q < dims.stride; q = q + WG) {
            if (!mlp_active(q, units)) {
                continue;
            }
            let is_bias = (q < hm * d1 && q % d1 == d) || q == dims.stride - 1u;
            apply_update(k, q, scratch[grad_base + q], is_bias, b1pow, b2pow);
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
