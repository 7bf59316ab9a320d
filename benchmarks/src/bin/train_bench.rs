//! `train-bench`: training throughput of the learners, K variants at once, on the
//! CPU twin and on the GPU (whatever adapter wgpu finds: lavapipe without a GPU,
//! the card's Vulkan driver with one). Writes a section of `benchmarks/RESULTS.md`
//! per device.
//!
//! Run: `cargo run --release -p vigil-benchmarks --bin train-bench -- --device cpu`
//! (or `--device gpu`; `VK_DRIVER_FILES` picks the Vulkan driver).
//!
//! One "sample-variant update" is one labeled sample through forward, gradient and
//! optimizer step of one variant; a train call also standardizes the chunk and
//! uploads it (GPU), and both are inside the timing.

#[path = "../report.rs"]
mod report;

use std::time::Instant;

use anyhow::{anyhow, Result};
use clap::Parser;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vigil::gpu::{DeviceChoice, Gpu, GpuTrainer};
use vigil_operators::learn::{CpuTrainer, Hyper, ModelKind, ModelState, Shape, Trainer};

#[derive(Parser)]
struct Args {
    /// cpu or gpu.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    device: DeviceChoice,
    /// Seconds each case runs for (at least one call).
    #[arg(long, default_value_t = 1.5)]
    seconds: f64,
    /// Mini-batch size.
    #[arg(long, default_value_t = 256)]
    batch: u32,
    /// Hidden units of every MLP variant.
    #[arg(long, default_value_t = 32)]
    hidden: u32,
    /// Variant counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    k: Vec<usize>,
    /// Feature counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "32,128")]
    d: Vec<u32>,
    /// Also measure River's LogisticRegression.learn_one (needs `pip install river`).
    #[arg(long)]
    river: bool,
    /// Appended to the section heading (to keep several configurations).
    #[arg(long)]
    tag: Option<String>,
    /// Where to write the report.
    #[arg(long, default_value = "benchmarks/RESULTS.md")]
    out: String,
}

fn hypers(k: usize, kind: ModelKind, hidden: u32) -> Vec<Hyper> {
    (0..k)
        .map(|i| {
            let lr = 0.001 * (1 + i % 7) as f32;
            let h = if i % 2 == 0 { Hyper::sgd(lr, 0.9, 1e-5, 5.0) } else { Hyper::adam(lr, 1e-5, 5.0) };
            if kind == ModelKind::Mlp {
                h.with_hidden(hidden)
            } else {
                h
            }
        })
        .collect()
}

fn chunk(rows: usize, d: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x: Vec<f32> = (0..rows * d).map(|_| rng.gen_range(-3.0..3.0)).collect();
    let labels: Vec<f32> = (0..rows).flat_map(|_| [if rng.gen::<f32>() < 0.05 { 1.0 } else { 0.0 }, 1.0]).collect();
    (x, labels)
}

struct Case {
    kind: ModelKind,
    k: usize,
    d: u32,
    /// End to end: upload, standardize, train, wait.
    samples_per_s: f64,
    /// GPU only, chunk resident on the device: the training kernel alone, and the
    /// standardization kernel alone.
    train_kernel: Option<f64>,
    standardize_kernel: Option<f64>,
}

/// Median samples/s of `call` over a run of `seconds` (at least 3 calls).
fn timed(seconds: f64, rows: usize, mut call: impl FnMut() -> Result<()>) -> Result<f64> {
    call()?; // warm-up (pipelines, buffers)
    let mut rates = Vec::new();
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds || rates.len() < 3 {
        let t = Instant::now();
        call()?;
        rates.push(rows as f64 / t.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    Ok(rates[rates.len() / 2])
}

fn end_to_end(trainer: &mut impl Trainer, x: &[f32], labels: &[f32], d: usize, seconds: f64) -> Result<f64> {
    let rows = labels.len() / 2;
    timed(seconds, rows, || {
        trainer.train(x, labels).map_err(|e| anyhow!("{e}"))?;
        // a one-row score waits for the queue (a no-op wait on the CPU)
        trainer.score(&x[..d], &[0]).map(|_| ()).map_err(|e| anyhow!("{e}"))
    })
}

fn check_finite(trainer: &mut impl Trainer) -> Result<()> {
    let state = trainer.state().map_err(|e| anyhow!("{e}"))?;
    if state.params.iter().any(|p| !p.is_finite()) {
        return Err(anyhow!("training diverged (non-finite weights)"));
    }
    Ok(())
}

fn measure(args: &Args, kind: ModelKind, k: usize, d: u32) -> Result<(Case, String)> {
    let shape = Shape { kind, d, hidden_max: if kind == ModelKind::Mlp { args.hidden } else { 0 }, batch: args.batch };
    let state = ModelState::new(shape, hypers(k, kind, args.hidden), 1).map_err(|e| anyhow!("{e}"))?;
    let mut case = Case { kind, k, d, samples_per_s: 0.0, train_kernel: None, standardize_kernel: None };
    if args.device == DeviceChoice::Cpu {
        // the CPU's cost is per sample: size the chunk to the work
        let work = k as f64 * d as f64 * if kind == ModelKind::Mlp { 3.0 * args.hidden as f64 } else { 2.0 };
        let rows = (2e7 / work).clamp(256.0, 16_384.0) as usize;
        let (x, labels) = chunk(rows, d as usize, 7);
        let mut trainer = CpuTrainer::new(state).map_err(|e| anyhow!("{e}"))?;
        case.samples_per_s = end_to_end(&mut trainer, &x, &labels, d as usize, args.seconds)?;
        check_finite(&mut trainer)?;
        return Ok((case, "cpu".into()));
    }
    let rows = 65_536;
    let (x, labels) = chunk(rows, d as usize, 7);
    let mut trainer = GpuTrainer::new(Gpu::open().map_err(|e| anyhow!("{e}"))?, state).map_err(|e| anyhow!("{e}"))?;
    case.samples_per_s = end_to_end(&mut trainer, &x, &labels, d as usize, args.seconds)?;
    case.train_kernel = Some(timed(args.seconds / 2.0, rows, || trainer.rerun_resident(false, true).map_err(|e| anyhow!("{e}")))?);
    case.standardize_kernel = Some(timed(args.seconds / 2.0, rows, || trainer.rerun_resident(true, false).map_err(|e| anyhow!("{e}")))?);
    check_finite(&mut trainer)?;
    Ok((case, trainer.device()))
}

/// The plain per-sample SGD loop (one logistic model, no standardization, no
/// mini-batches, no variants): the CPU upper limit the twin is compared with.
fn plain_loop(d: usize, seconds: f64) -> f64 {
    let (x, labels) = chunk(16_384, d, 7);
    let mut w = vec![0f32; d + 1];
    let mut rates = Vec::new();
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds {
        let t = Instant::now();
        for (row, l) in x.chunks_exact(d).zip(labels.chunks_exact(2)) {
            let z = w[d] + row.iter().zip(&w[..d]).map(|(a, b)| a * b).sum::<f32>();
            let g = 0.01 * (1.0 / (1.0 + (-z).exp()) - l[0]);
            for (wj, xj) in w[..d].iter_mut().zip(row) {
                *wj -= g * xj;
            }
            w[d] -= g;
        }
        rates.push(16_384.0 / t.elapsed().as_secs_f64());
    }
    std::hint::black_box(&w);
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

fn main() -> Result<()> {
    let args = Args::parse();
    let cmd = std::env::args().collect::<Vec<_>>().join(" ");
    let mut cases = Vec::new();
    let mut device = String::new();
    for kind in [ModelKind::Logistic, ModelKind::Mlp] {
        for &d in &args.d {
            for &k in &args.k {
                let (case, dev) = measure(&args, kind, k, d)?;
                println!(
                    "{:?} K={} d={}: {:.0} samples/s, {:.3e} sample-variant updates/s; resident: train kernel {:.3e} updates/s, standardize {:.3e} samples/s ({dev})",
                    case.kind,
                    case.k,
                    case.d,
                    case.samples_per_s,
                    case.samples_per_s * case.k as f64,
                    case.train_kernel.unwrap_or(0.0) * case.k as f64,
                    case.standardize_kernel.unwrap_or(0.0),
                );
                device = dev;
                cases.push(case);
            }
        }
    }
    let gpu = args.device != DeviceChoice::Cpu;
    let mut table = String::from("| model | d | K | samples/s | sample-variant updates/s |");
    table.push_str(if gpu {
        " training kernel alone, updates/s | standardization kernel alone, samples/s |\n|---|---|---|---|---|---|---|\n"
    } else {
        "\n|---|---|---|---|---|\n"
    });
    for c in &cases {
        let model = match c.kind {
            ModelKind::Logistic => "logistic".to_string(),
            ModelKind::Mlp => format!("MLP, {} hidden", args.hidden),
        };
        table.push_str(&format!("| {model} | {} | {} | {:.0} | {:.3e} |", c.d, c.k, c.samples_per_s, c.samples_per_s * c.k as f64));
        if let (Some(t), Some(s)) = (c.train_kernel, c.standardize_kernel) {
            table.push_str(&format!(" {:.3e} | {s:.0} |", t * c.k as f64));
        }
        table.push('\n');
    }
    let mut extra = String::new();
    if args.device == DeviceChoice::Cpu {
        for &d in &args.d {
            let p = plain_loop(d as usize, args.seconds);
            let twin = cases.iter().find(|c| c.kind == ModelKind::Logistic && c.k == 1 && c.d == d).map(|c| c.samples_per_s).unwrap_or(0.0);
            extra.push_str(&format!(
                "- Upper limit, d = {d}: a plain per-sample SGD loop (one logistic model, no standardization or mini-batches) ran {p:.0} samples/s; the CPU twin with K = 1 ran {twin:.0} ({:.0}%).\n",
                100.0 * twin / p
            ));
        }
    }
    if args.river {
        for &d in &args.d {
            let out = std::process::Command::new("python3").arg("benchmarks/river_train.py").arg(d.to_string()).arg("20000").output()?;
            if !out.status.success() {
                return Err(anyhow!("river_train.py failed (python3 -m pip install river): {}", String::from_utf8_lossy(&out.stderr)));
            }
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
            let river = v["samples_per_s"].as_f64().unwrap_or(0.0);
            let ours = |k: usize| cases.iter().find(|c| c.kind == ModelKind::Logistic && c.k == k && c.d == d).map_or(0.0, |c| c.samples_per_s * k as f64);
            let best = args.k.iter().map(|k| ours(*k)).fold(0.0, f64::max);
            extra.push_str(&format!(
                "- River {} `LogisticRegression.learn_one` (SGD, no scaler), d = {d}: {river:.0} samples/s. vigil here: {:.0}x with one variant, {:.0}x in sample-variant updates with the best K.\n",
                v["river"].as_str().unwrap_or("?"),
                ours(1) / river,
                best / river
            ));
        }
    }
    let mut heading =
        format!("## Online training throughput: {}", if args.device == DeviceChoice::Cpu { "CPU twin".to_string() } else { format!("GPU, {device}") });
    if let Some(tag) = &args.tag {
        heading.push_str(&format!(", {tag}"));
    }
    let section = format!(
        "{heading} (measured {})\n\nMachine: {}. Device: {device}. Command: `{cmd}`.\nMini-batch {}, chunks of labeled samples per train call (GPU: 65,536 rows; CPU: sized to the work), median over the calls of a {} s run per case; half the variants SGD+momentum, half Adam. A GPU call includes the upload and a wait for completion; the last two columns rerun one kernel over the chunk already on the GPU (no transfer).\n\n{table}\n{extra}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        report::machine(),
        args.batch,
        args.seconds,
    );
    report::write_section(&args.out, &heading, &section)?;
    println!("wrote {}", args.out);
    Ok(())
}
