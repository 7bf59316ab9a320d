// Bindings and helpers shared by the training kernels (logistic_train.wgsl,
// mlp_train.wgsl). One workgroup trains one variant over every mini-batch of the
// chunk in order; variants never touch each other's state.

@group(0) @binding(0) var<storage, read> xs: array<f32>;            // n * d, standardized
@group(0) @binding(1) var<storage, read> labels: array<f32>;        // n * 2: label, sample weight
@group(0) @binding(2) var<storage, read_write> params: array<f32>;  // k * stride
@group(0) @binding(3) var<storage, read_write> moments: array<f32>; // 2 * k * stride
@group(0) @binding(4) var<storage, read_write> opt: array<f32>;     // k * 4: t, beta1^t, beta2^t, unused
@group(0) @binding(5) var<storage, read> hyper: array<Hyper>;
@group(0) @binding(6) var<uniform> dims: Dims;

const WG: u32 = 256u;
const MAX_BATCH: u32 = 1024u;
// d loss / d logit of each sample of the current mini-batch
var<workgroup> dz: array<f32, 1024>;

// Log loss with a positive-class weight and a per-sample importance weight:
//   L = -sw * (pw * y * ln p + (1 - y) * ln(1 - p)),  dL/dz = sw * (pw * y * (p - 1) + (1 - y) * p)
fn dloss(p: f32, y: f32, sw: f32, pw: f32) -> f32 {
    return sw * (pw * y * (p - 1.0) + (1.0 - y) * p);
}
