//! `learn-compare`: accuracy of online learning on the demo stream, against River
//! and against a fixed model fitted offline, with concept drift.
//!
//! One seeded demo stream (the generator of `vigil demo`, optionally with
//! `--drift-at`) goes through the fraud job's features; the learner is replayed
//! deterministically over it (`learner::replay`: scored in blocks of 256 with the
//! current snapshot, labels revealed `--label-delay` events later). River's
//! `StandardScaler | LogisticRegression` gets the exact inputs vigil served, in the
//! same order, with the same label delay (`benchmarks/river_compare.py`).
//!
//! Run: `cargo run --release -p vigil-benchmarks --bin learn-compare -- --drift-at 100000`

#[path = "../report.rs"]
mod report;

use std::io::Write;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use clap::Parser;
use vigil::demo::fraud_online_job;
use vigil::demo::record::{demo_stream, record_stream};
use vigil::gpu::DeviceChoice;
use vigil::learner::replay::{offline_baseline, replay, window_quality};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    #[arg(long)]
    drift_at: Option<u64>,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    #[arg(long, default_value_t = 2_000)]
    label_delay: usize,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    device: DeviceChoice,
    /// Rolling window for the curves, in events.
    #[arg(long, default_value_t = 10_000)]
    window: usize,
    /// Skip River (when it is not installed: `python3 -m pip install river`).
    #[arg(long)]
    no_river: bool,
    /// Overrides the job's mini-batch size.
    #[arg(long)]
    batch: Option<u32>,
    /// Overrides the job's learning-rate grid.
    #[arg(long, value_delimiter = ',')]
    lr: Option<Vec<f32>>,
    /// Scoring block (events scored between snapshots).
    #[arg(long, default_value_t = 256)]
    block: usize,
    #[arg(long, default_value = "benchmarks/RESULTS.md")]
    out: String,
}

struct Curve {
    name: String,
    preds: Vec<f32>,
    samples_per_s: Option<f64>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let cmd = std::env::args().collect::<Vec<_>>().join(" ");
    let job = fraud_online_job();
    let (payloads, labels) = demo_stream(args.events, args.seed, args.drift_at);
    let events = record_stream(&job, payloads, &labels)?;
    let online = job.model.online.clone().context("the demo job trains online")?;
    let mut tuned = online.clone();
    tuned.device = args.device;
    tuned.runs_dir = None;
    if let Some(b) = args.batch {
        tuned.batch = b;
    }
    if let Some(lr) = &args.lr {
        tuned.space.lr = lr.clone();
    }
    let t = Instant::now();
    let tuned_run = replay(tuned.clone(), &events, args.label_delay, args.block)?;
    let tuned_rate = events.len() as f64 / t.elapsed().as_secs_f64();
    let mut single = tuned.clone();
    single.variants = 1;
    single.space.lr = vec![0.01];
    single.space.l2 = vec![0.0];
    single.space.pos_weight = vec![1.0];
    let t = Instant::now();
    let single_run = replay(single, &events, args.label_delay, args.block)?;
    let single_rate = events.len() as f64 / t.elapsed().as_secs_f64();
    let fit_n = args.drift_at.map_or(events.len() / 5, |d| (d as usize / 2).min(events.len()));
    let baseline = offline_baseline(&events, fit_n).map_err(|e| anyhow!("{e}"))?;

    let mut curves = vec![
        Curve { name: format!("vigil, {} variants + PBT (champion served)", tuned.variants), preds: tuned_run.served.clone(), samples_per_s: Some(tuned_rate) },
        Curve { name: "vigil, 1 variant (Adam 0.01, untuned)".into(), preds: single_run.served, samples_per_s: Some(single_rate) },
        Curve { name: format!("fixed logistic regression fitted offline on the first {fit_n} events"), preds: baseline, samples_per_s: None },
    ];
    if !args.no_river {
        let csv = std::env::temp_dir().join(format!("vigil-stream-{}.csv", std::process::id()));
        {
            let mut f = std::io::BufWriter::new(std::fs::File::create(&csv)?);
            for (e, x) in events.iter().zip(&tuned_run.served_x) {
                let row: Vec<String> = x.iter().map(|v| v.to_string()).collect();
                writeln!(f, "{},{}", row.join(","), e.label.map_or(-1, |y| y as i32))?;
            }
        }
        let out = std::process::Command::new("python3").arg("benchmarks/river_compare.py").arg(&csv).arg(args.label_delay.to_string()).output()?;
        let _ = std::fs::remove_file(&csv);
        if !out.status.success() {
            return Err(anyhow!("river_compare.py failed (python3 -m pip install river): {}", String::from_utf8_lossy(&out.stderr)));
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let preds: Vec<f32> = v["preds"].as_array().context("river preds")?.iter().map(|p| p.as_f64().unwrap_or(0.0) as f32).collect();
        let secs = v["seconds"].as_f64().unwrap_or(1.0);
        curves.push(Curve {
            name: format!("River {} StandardScaler → LogisticRegression (SGD 0.01)", v["river"].as_str().unwrap_or("?")),
            preds,
            samples_per_s: Some(events.len() as f64 / secs),
        });
    }

    let n = events.len();
    let w = args.window;
    let drift = args.drift_at.map(|d| d as usize);
    let mut table = String::from("| model | ROC-AUC, all | PR-AUC, all |");
    if drift.is_some() {
        table.push_str(" ROC-AUC before drift | after drift (first window) | events to recover within 0.02 |");
    }
    table.push_str(" predict+learn events/s |\n|---|---|---|");
    if drift.is_some() {
        table.push_str("---|---|---|");
    }
    table.push_str("---|\n");
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    for c in &curves {
        let (auc, ap) = window_quality(&c.preds, &events, w.min(n / 10), n);
        table.push_str(&format!("| {} | {} | {} |", c.name, fmt(auc), fmt(ap)));
        if let Some(d) = drift {
            let (pre, _) = window_quality(&c.preds, &events, d.saturating_sub(w), d);
            let (post, _) = window_quality(&c.preds, &events, d, d + w);
            // first window end (in steps of w/10) at which the rolling AUC is back
            let step = (w / 10).max(1);
            let recover = pre.and_then(|p| {
                (d + w..=n).step_by(step).find(|&end| window_quality(&c.preds, &events, end - w, end).0.is_some_and(|a| a >= p - 0.02)).map(|end| end - d)
            });
            table.push_str(&format!(" {} | {} | {} |", fmt(pre), fmt(post), recover.map_or("not within the run".into(), |r| r.to_string())));
        }
        table.push_str(&format!(" {} |\n", c.samples_per_s.map_or("-".into(), |r| format!("{r:.0}"))));
        println!("{}: AUC {}", c.name, fmt(auc));
    }
    let heading = format!("## Online learning accuracy: the demo stream{}", if drift.is_some() { " with drift" } else { "" });
    let section = format!(
        "{heading} (measured {})\n\nMachine: {}. Command: `{cmd}`.\n{} events (seed {}, drift at {:?}), {} scored (malformed and late records are not); labels revealed {} events after their event; rolling windows of {w} events; the first {} events are left out of the 'all' columns (warm-up). vigil: the learner replayed deterministically on the {} ({}), scoring blocks of 256 events with the current snapshot (the job's scorers between snapshots); River scores and learns per event, on the inputs vigil served (imputed with vigil's running means), with the same label delay. Throughput is the whole predict+learn loop over the stream (vigil with K variants trains all K).\n\n{table}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        report::machine(),
        args.events,
        args.seed,
        args.drift_at,
        n,
        args.label_delay,
        w.min(n / 10),
        format!("{:?}", args.device).to_lowercase(),
        tuned_run.device,
    );
    report::write_section(&args.out, &heading, &section)?;
    println!("wrote {}", args.out);
    Ok(())
}
