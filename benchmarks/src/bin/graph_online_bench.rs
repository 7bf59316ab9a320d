//! What checkpoints cost an online job on the graph: the demo's fraud job
//! trained online (`examples/fraud_online.toml`, CPU trainer, `latest`
//! consistency) built as a graph (`job_graph`), in memory, without checkpoints
//! and with a checkpoint every 8 epochs of 1,024 records per partition (each
//! one the feature state, the sources' positions and the learner's state, and
//! the sealing rule: a labeled prediction trains only once a checkpoint covers
//! its epoch). Runs interleaved; rates are medians, ratios the median of each
//! run over the run just before it.
//!
//! `cargo run --release -p vigil-benchmarks --bin graph-online-bench -- --events 500000 --runs 3`
//! writes its section of `benchmarks/RESULTS.md`.

use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use vigil::demo::generator::{GenConfig, Generator};
use vigil::graph::LocalRun;
use vigil::learner::LearnerSummary;
use vigil::spec::JobSpec;

#[path = "../report.rs"]
mod report;
use report::median;
use report::{machine, write_section};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 500_000)]
    events: usize,
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Print, do not write RESULTS.md.
    #[arg(long)]
    dry_run: bool,
}

const EVERY: u64 = 8;

/// The demo's online job on the CPU trainer, scoring with the newest model.
fn online_job() -> Result<JobSpec> {
    let mut job = JobSpec::from_toml(&std::fs::read_to_string("examples/fraud_online.toml")?)?;
    let online = job.model.online.as_mut().expect("an online model");
    online.device = vigil::gpu::DeviceChoice::Cpu;
    online.consistency = vigil::learner::Consistency::Latest;
    online.runs_dir = None;
    job.monitor = None;
    job.sinks.drift = None;
    Ok(job)
}

/// The same job with its model's fixed weights (no learner).
fn fixed_job(online: &JobSpec) -> JobSpec {
    let mut job = online.clone();
    job.model.online = None;
    job
}

/// What one run measured.
struct Run {
    rate: f64,
    learner: Option<LearnerSummary>,
    checkpoints: usize,
    /// The newest checkpoint's learner state and all of its files, in bytes.
    learner_bytes: u64,
    checkpoint_bytes: u64,
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |d| d.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum())
}

/// One run of `job`, with checkpoints or not.
fn run(job: &JobSpec, tx: &[Vec<Vec<u8>>], labels: &[Vec<Vec<u8>>], workers: usize, checkpoints: bool) -> Result<Run> {
    let j = job.clone();
    let dir = tempfile::tempdir()?;
    let mut r = LocalRun::new(workers).count_only().topic(&job.source.topic, tx.to_vec()).topic("labels", labels.to_vec());
    if checkpoints {
        r = r.checkpoints(dir.path(), EVERY);
    }
    let events: usize = tx.iter().map(Vec::len).sum();
    let t = Instant::now();
    let out = r.run(move |g| vigil::graph::job::job_graph(g, &j))?;
    let rate = events as f64 / t.elapsed().as_secs_f64();
    let newest = out.checkpoints.last().map(|e| dir.path().join(format!("epoch-{e}")));
    let learner_bytes = newest.as_ref().and_then(|d| std::fs::metadata(d.join(format!("learner-{}.p0", job.model.name))).ok()).map_or(0, |m| m.len());
    let checkpoint_bytes = newest.as_ref().map_or(0, |d| dir_bytes(d));
    Ok(Run { rate, learner: out.learners.values().next().cloned(), checkpoints: out.checkpoints.len(), learner_bytes, checkpoint_bytes })
}

fn main() -> Result<()> {
    let args = Args::parse();
    let job = online_job()?;
    let mut gen = Generator::new(GenConfig::default());
    let mut tx: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 8];
    let mut labels: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 2];
    for _ in 0..args.events {
        let g = gen.next_transaction();
        tx[(vigil::types::key_hash(&g.key) % 8) as usize].push(g.payload);
        for l in gen.due_labels() {
            labels[(vigil::types::key_hash(&l.key) % 2) as usize].push(l.payload);
        }
    }
    for l in gen.remaining_labels() {
        labels[(vigil::types::key_hash(&l.key) % 2) as usize].push(l.payload);
    }
    let fixed = fixed_job(&job);
    // per job (online, fixed weights) and workers (1, 2): rates without and with checkpoints
    let mut rates = vec![vec![vec![Vec::new(); 2]; 2]; 2];
    let mut last = Vec::new();
    let mut bytes = [(0u64, 0u64); 2];
    for r in 0..args.runs {
        for (j, spec) in [&job, &fixed].into_iter().enumerate() {
            for (i, workers) in [1usize, 2].into_iter().enumerate() {
                // which of the two goes first alternates
                let order = if r % 2 == 0 { [false, true] } else { [true, false] };
                for checkpoints in order {
                    let m = run(spec, &tx, &labels, workers, checkpoints)?;
                    rates[j][i][checkpoints as usize].push(m.rate);
                    println!(
                        "run {r}, {} job, {workers} workers, checkpoints {checkpoints}: {:.0} events/s, {} checkpoints of {} bytes (learner {}), learner {:?}",
                        ["online", "fixed"][j],
                        m.rate,
                        m.checkpoints,
                        m.checkpoint_bytes,
                        m.learner_bytes,
                        m.learner.as_ref().map(|l| &l.counts)
                    );
                    if checkpoints {
                        bytes[j] = (m.checkpoint_bytes, m.learner_bytes);
                    }
                    if let (true, Some(l)) = (r + 1 == args.runs, m.learner) {
                        last.push((workers, checkpoints, l, m.checkpoints));
                    }
                }
            }
        }
    }
    let paired = |j: usize, w: usize| median(rates[j][w][1].iter().zip(&rates[j][w][0]).map(|(x, y)| x / y).collect());
    let k = |x: f64| format!("{:.0}K", x / 1000.0);
    let mut rows = String::new();
    for (j, name) in ["online (learner in the checkpoints)", "fixed weights"].into_iter().enumerate() {
        for (w, workers) in [1, 2].into_iter().enumerate() {
            rows.push_str(&format!(
                "| {name} | {workers} | {} | {} | {:.2}x |\n",
                k(median(rates[j][w][0].clone())),
                k(median(rates[j][w][1].clone())),
                paired(j, w)
            ));
        }
    }
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1 << 20) as f64);
    let sizes = format!(
        "The newest checkpoint of the online job: {} ({} of it the learner's state: pending predictions with their inputs and every variant's score, \
         validation windows, the model); of the job with fixed weights: {}.",
        mib(bytes[0].0),
        mib(bytes[0].1),
        mib(bytes[1].0)
    );
    // the time a run lost per checkpoint, on one worker
    let written = last.iter().find(|l| l.1).map_or(1, |l| l.3).max(1) as f64;
    let lost = |j: usize| {
        let (without, with) = (median(rates[j][0][0].clone()), median(rates[j][0][1].clone()));
        (args.events as f64 / with - args.events as f64 / without) / written * 1000.0
    };
    let cost = format!(
        "On one worker each checkpoint cost the run {:.0} ms (online) and {:.0} ms (fixed weights): the workers serialize their feature state whole \
         at every checkpoint, and here one comes every ~65,000 events, every 0.1-0.3 s; `vigil run` checkpoints every 10 s by default, where the \
         same cost is {:.1}% and {:.1}% of a worker's time.",
        lost(0),
        lost(1),
        lost(0) / 100.0,
        lost(1) / 100.0
    );
    let mut learners = String::new();
    for (workers, checkpoints, l, n) in &last {
        learners.push_str(&format!(
            "| {workers} | {} | {} | {} | {} | {} | {} |\n",
            if *checkpoints { "yes" } else { "no" },
            n,
            l.counts.joined,
            l.counts.trained,
            l.held_at_end,
            l.champion_quality.roc_auc.map_or("-".into(), |a| format!("{a:.3}")),
        ));
    }
    let section = format!(
        "## Graph API: an online job's checkpoints (measured {})\n\n\
         Machine: {}. Command: `cargo run --release -p vigil-benchmarks --bin graph-online-bench -- --events {} --runs {}`. \
         The demo's fraud job trained online (`examples/fraud_online.toml`: 9 features, 8 logistic variants with population-based training \
         on the CPU trainer, `consistency = \"latest\"`, no monitor) built as a graph (`job_graph`), {} generated transactions over 8 partitions \
         and their labels over 2, in memory, outputs encoded and dropped; without checkpoints, and with one every {EVERY} epochs of 1,024 records \
         per partition into a temporary directory (the feature state, the sources' positions and the learner's state; a labeled prediction trains \
         only once a checkpoint covers its epoch). Each configuration run {} times, interleaved; rates are medians, ratios the median of each run \
         over the run just before or after it.\n\n\
         The same job with its model's fixed weights (no learner) beside it: what checkpoints cost without the learner.\n\n\
         | job | workers | without checkpoints | with checkpoints | ratio |\n|---|---:|---:|---:|---:|\n{rows}\n{sizes} {cost}\n\n\
         The learners of the last run (labels joined; samples trained; joined samples still waiting for their epoch's checkpoint at the end; \
         the champion's ROC-AUC over its validation window):\n\n\
         | workers | checkpoints | written | joined | trained | held at end | champion AUC |\n|---:|---|---:|---:|---:|---:|---:|\n{learners}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine(),
        args.events,
        args.runs,
        args.events,
        args.runs,
    );
    println!("{section}");
    if !args.dry_run {
        write_section("benchmarks/RESULTS.md", "## Graph API: an online job's checkpoints", &section)?;
    }
    Ok(())
}
