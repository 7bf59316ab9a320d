// Shared by every vigil kernel: the dimensions uniform, the per-variant
// hyperparameters and the numerically stable logistic function.
// Concatenated in front of each kernel by the host (WGSL has no includes).

struct Dims {
    n: u32,          // samples in this call
    d: u32,          // features per sample
    batch: u32,      // mini-batch size (training)
    k: u32,          // variants held
    hidden_max: u32, // hidden units allocated per variant (MLP; 0 for logistic)
    stride: u32,     // parameters per variant
    kind: u32,       // 0 = logistic, 1 = MLP
    scored: u32,     // variants in the score list (scoring)
}

struct Hyper {
    lr: f32,
    l2: f32,
    pos_weight: f32,
    momentum: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    optimizer: u32,  // 0 = SGD with momentum, 1 = Adam
    hidden: u32,     // hidden units this variant uses (MLP)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

fn sigmoid(z: f32) -> f32 {
    if (z >= 0.0) {
        return 1.0 / (1.0 + exp(-z));
    }
    let e = exp(z);
    return e / (1.0 + e);
}
