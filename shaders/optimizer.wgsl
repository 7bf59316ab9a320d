// Optimizers for every training kernel: SGD with momentum and Adam, with L2 on
// weights (never on biases). One call updates one parameter of one variant.
// `moments` holds the first moments of all variants, then the second moments.
// b1pow and b2pow are beta1^t and beta2^t, kept as running products so that the
// CPU twin (operators/src/learn/optimizer.rs) computes bit-identical corrections.

fn apply_update(k: u32, idx: u32, grad_in: f32, is_bias: bool, b1pow: f32, b2pow: f32) {
    let h = hyper[k];
    let at = k * dims.stride + idx;
    let p = params[at];
    var g = grad_in;
    if (!is_bias) {
        g = g + h.l2 * p;
    }
    if (h.optimizer == 0u) {
        let m = h.momentum * moments[at] + g;
        moments[at] = m;
        params[at] = p - h.lr * m;
    } else {
        let second = dims.k * dims.stride + at;
        let m = h.beta1 * moments[at] + (1.0 - h.beta1) * g;
        let v = h.beta2 * moments[second] + (1.0 - h.beta2) * g * g;
        moments[at] = m;
        moments[second] = v;
        let mhat = m / (1.0 - b1pow);
        let vhat = v / (1.0 - b2pow);
        params[at] = p - h.lr * mhat / (sqrt(vhat) + h.eps);
    }
}
