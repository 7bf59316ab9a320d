//! CPU/GPU parity of every learner kernel: standardization, logistic regression and
//! the MLP with SGD+momentum and Adam, K variants of mixed hyperparameters.
//!
//! These tests need a GPU adapter and FAIL without one (in CI: lavapipe from
//! `mesa-vulkan-drivers`, which `.ci/test` installs and pins with VK_DRIVER_FILES).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vigil::gpu::{Gpu, GpuTrainer};
use vigil_operators::learn::{CpuTrainer, Hyper, ModelKind, ModelState, Shape, Trainer};

fn gpu() -> Gpu {
    Gpu::open().unwrap_or_else(|e| panic!("the GPU parity tests need an adapter (lavapipe in CI): {e}"))
}

/// `n` samples of `d` raw features on different scales, with a learnable label.
fn data(seed: u64, n: usize, d: usize) -> (Vec<f32>, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let truth: Vec<f32> = (0..d).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let mut x = Vec::with_capacity(n * d);
    let mut labels = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let mut z = -1.0f32;
        for (j, t) in truth.iter().enumerate() {
            let scale = 1.0 + j as f32 * 3.0;
            let v: f32 = rng.gen_range(-1.0..1.0) * scale + j as f32;
            z += t * (v - j as f32) / scale;
            x.push(v);
        }
        let y = if rng.gen::<f32>() < 1.0 / (1.0 + (-2.0 * z).exp()) { 1.0 } else { 0.0 };
        labels.push(y);
        labels.push(if rng.gen::<f32>() < 0.1 { 4.0 } else { 1.0 });
    }
    (x, labels)
}

fn variants(kind: ModelKind, k: usize, hidden_max: u32) -> Vec<Hyper> {
    (0..k)
        .map(|i| {
            let lr = [0.05, 0.01, 0.2, 0.002][i % 4];
            let h = if i % 2 == 0 { Hyper::sgd(lr, 0.9, 1e-4 * i as f32, 1.0 + i as f32) } else { Hyper::adam(lr, 1e-3, 2.0) };
            match kind {
                ModelKind::Logistic => h,
                ModelKind::Mlp => h.with_hidden(1 + (i as u32 * 5) % hidden_max),
            }
        })
        .collect()
}

fn pair(kind: ModelKind, k: usize, d: u32, hidden_max: u32, batch: u32) -> (CpuTrainer, GpuTrainer) {
    let shape = Shape { kind, d, hidden_max, batch };
    let state = ModelState::new(shape, variants(kind, k, hidden_max), 7).unwrap();
    (CpuTrainer::new(state.clone()).unwrap(), GpuTrainer::new(gpu(), state).unwrap())
}

/// Asserts |a - b| <= abs + rel * |b| element-wise, naming the worst element.
fn assert_close(what: &str, a: &[f32], b: &[f32], abs: f32, rel: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let mut worst = (0usize, 0f32);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(x.is_finite() && y.is_finite(), "{what}[{i}] not finite: gpu {x} cpu {y}");
        let excess = (x - y).abs() - (abs + rel * y.abs());
        if excess > worst.1 {
            worst = (i, excess);
        }
    }
    let i = worst.0;
    assert!(worst.1 <= 0.0, "{what}[{i}]: gpu {} vs cpu {} (|diff| {} > {abs} + {rel}*|cpu|)", a[i], b[i], (a[i] - b[i]).abs());
}

fn one_step(kind: ModelKind, d: u32, hidden_max: u32) {
    let (mut cpu, mut gpu) = pair(kind, 8, d, hidden_max, 256);
    let (x, labels) = data(1, 256, d as usize);
    cpu.train(&x, &labels).unwrap();
    gpu.train(&x, &labels).unwrap();
    let (c, g) = (cpu.state().unwrap(), gpu.state().unwrap());
    assert_close("stats", &g.stats, &c.stats, 1e-6, 1e-6);
    assert_close("params after one step", &g.params, &c.params, 1e-6, 0.0);
    assert_close("moments after one step", &g.moments, &c.moments, 1e-6, 0.0);
    // beta^t underflows: CPUs keep denormals, GPUs may flush them to zero
    assert_close("optimizer steps", &g.opt, &c.opt, 1e-30, 0.0);
}

#[test]
fn logistic_one_step_agrees_to_1e6() {
    one_step(ModelKind::Logistic, 32, 0);
}

#[test]
fn wide_logistic_one_step_agrees_to_1e6() {
    // more parameters than threads: one thread per parameter, no slices
    one_step(ModelKind::Logistic, 300, 0);
}

#[test]
fn mlp_one_step_agrees_to_1e6() {
    one_step(ModelKind::Mlp, 16, 12);
}

fn thousand_batches(kind: ModelKind, d: u32, hidden_max: u32) {
    let batch = 64;
    let (mut cpu, mut gpu) = pair(kind, 6, d, hidden_max, batch);
    // 1,000 mini-batches, fed as chunks of uneven length (partial last mini-batches)
    let (x, labels) = data(2, 1000 * batch as usize, d as usize);
    let mut row = 0;
    let rows = 1000 * batch as usize;
    let mut sizes = [batch as usize * 40, batch as usize * 7 + 13, 200, batch as usize].into_iter().cycle();
    let mut batches = 0;
    while row < rows {
        let n = sizes.next().unwrap().min(rows - row);
        let (xc, lc) = (&x[row * d as usize..(row + n) * d as usize], &labels[2 * row..2 * (row + n)]);
        cpu.train(xc, lc).unwrap();
        gpu.train(xc, lc).unwrap();
        batches += n.div_ceil(batch as usize);
        row += n;
    }
    assert!(batches >= 1000, "{batches} mini-batches");
    let (c, g) = (cpu.state().unwrap(), gpu.state().unwrap());
    assert_close("optimizer steps", &g.opt, &c.opt, 1e-30, 0.0);
    assert_close("stats", &g.stats, &c.stats, 1e-5, 1e-4);
    assert_close("params after 1,000 mini-batches", &g.params, &c.params, 1e-5, 1e-4);
    // scoring agrees too, for every variant
    let (xt, _) = data(3, 500, d as usize);
    let which: Vec<u32> = (0..6).collect();
    let (sc, sg) = (cpu.score(&xt, &which).unwrap(), gpu.score(&xt, &which).unwrap());
    assert_close("scores", &sg, &sc, 1e-5, 1e-4);
    // and the models learned something: the best variant beats a coin on fresh data
    let (xe, le) = data(2, 4000, d as usize);
    let s = cpu.score(&xe, &[0]).unwrap();
    let acc = s.iter().zip(le.chunks(2)).filter(|(p, l)| (**p > 0.5) == (l[0] > 0.5)).count() as f64 / 4000.0;
    assert!(acc > 0.6, "accuracy {acc}");
}

#[test]
fn logistic_1000_batches_agree() {
    thousand_batches(ModelKind::Logistic, 32, 0);
}

#[test]
fn mlp_1000_batches_agree() {
    thousand_batches(ModelKind::Mlp, 8, 16);
}

#[test]
fn state_round_trips_through_the_device() {
    let (mut cpu, mut gpu) = pair(ModelKind::Mlp, 3, 5, 4, 32);
    let (x, labels) = data(4, 100, 5);
    cpu.train(&x, &labels).unwrap();
    let trained = cpu.state().unwrap();
    gpu.set_state(&trained).unwrap();
    assert_eq!(gpu.state().unwrap(), trained);
    // a population-based-training copy moves weights and optimizer state together
    let mut copied = trained.clone();
    copied.copy_variant(0, 2, Hyper::sgd(0.5, 0.0, 0.0, 1.0).with_hidden(trained.hyper[0].hidden));
    gpu.set_state(&copied).unwrap();
    let back = gpu.state().unwrap();
    assert_eq!(back.variant_params(2), trained.variant_params(0));
    assert_eq!(back.hyper[2].lr, 0.5);
    // a wrong shape is refused
    let other = ModelState::new(Shape { kind: ModelKind::Logistic, d: 5, hidden_max: 0, batch: 32 }, vec![Hyper::adam(0.1, 0.0, 1.0)], 0).unwrap();
    assert!(gpu.set_state(&other).is_err());
}

#[test]
fn scoring_a_large_batch_slices_dispatches() {
    let (mut cpu, mut gpu) = pair(ModelKind::Logistic, 2, 4, 0, 128);
    let (x, labels) = data(5, 3000, 4);
    cpu.train(&x, &labels).unwrap();
    gpu.train(&x, &labels).unwrap();
    // 2 variants x 2.2M rows > 65,535 workgroups of 64
    let (big, _) = data(6, 2_200_000, 4);
    let (sc, sg) = (cpu.score(&big, &[1, 0]).unwrap(), gpu.score(&big, &[1, 0]).unwrap());
    assert_close("large batch scores", &sg, &sc, 1e-5, 1e-4);
}
