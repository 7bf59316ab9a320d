//! The demo's drift alarms over many seeds: the whole fraud job of `vigil demo`
//! (`examples/fraud_online.toml`: features, the model trained online in event-time
//! consistency, feature, prediction, concept and fairness monitoring) over the
//! demo's stream, drift-free and with `--drift-at`, in memory and deterministic
//! (the same seed gives the same alarms at any speed). Writes its section of
//! `benchmarks/RESULTS.md`.
//!
//! `cargo run --release -p vigil-benchmarks --bin demo-alarms -- --seeds 20`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use report::{machine, write_section};
use vigil::demo::generator::{GenConfig, Generator};
use vigil::local::run_local_monitored;
use vigil::metrics::Metrics;
use vigil::monitor::DriftRecord;
use vigil::output::MemorySink;
use vigil::spec::JobSpec;

#[path = "../report.rs"]
mod report;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 20)]
    seeds: u64,
    #[arg(long, default_value_t = 300_000)]
    events: u64,
    #[arg(long, default_value_t = 100_000)]
    drift_at: u64,
    #[arg(long, default_value = "benchmarks/RESULTS.md")]
    results: String,
    /// Run this seed only and print its alarms (for investigation; writes nothing).
    #[arg(long)]
    only: Option<u64>,
}

/// The demo's records: transactions by partition (8, by key), labels in order;
/// and the event time of the first drifted transaction less the generator's jitter.
fn stream(events: u64, seed: u64, drift_at: Option<u64>) -> (vigil::local::MemoryTopic, vigil::local::MemoryTopic, i64) {
    let mut g = Generator::new(GenConfig { seed, bad_ratio: 0.01, drift_at, ..GenConfig::default() });
    let mut parts: Vec<Vec<Option<Vec<u8>>>> = vec![Vec::new(); 8];
    let mut labels = Vec::new();
    let mut shift = i64::MAX;
    for i in 0..events {
        let t = g.next_transaction();
        if drift_at.is_some_and(|d| i + 1 >= d) && shift == i64::MAX {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&t.payload) {
                shift = v["ts"].as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()).map_or(i64::MAX, |d| d.timestamp_millis() - 3_000);
            }
        }
        parts[(vigil::types::key_hash(&t.key) % 8) as usize].push(Some(t.payload));
        labels.extend(g.due_labels().into_iter().map(|l| Some(l.payload)));
    }
    labels.extend(g.remaining_labels().into_iter().map(|l| Some(l.payload)));
    (parts.into_iter().map(Arc::new).collect(), vec![Arc::new(labels)], shift)
}

fn job() -> Result<JobSpec> {
    let mut job = JobSpec::from_toml(&std::fs::read_to_string("examples/fraud_online.toml")?)?;
    let o = job.model.online.as_mut().expect("online");
    o.runs_dir = None;
    o.device = vigil::gpu::DeviceChoice::Cpu;
    Ok(job)
}

/// Every alarm of one run.
fn alarms(events: u64, seed: u64, drift_at: Option<u64>) -> Result<(Vec<DriftRecord>, u64, i64)> {
    let (input, labels, shift) = stream(events, seed, drift_at);
    let (_, monitored) = run_local_monitored(&job()?, &input, &labels, 1, MemorySink::new(), Metrics::new(), None)?;
    let m = monitored.expect("the job is monitored");
    Ok((m.alarms, m.records, shift))
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(seed) = args.only {
        for drift_at in [None, Some(args.drift_at)] {
            let (alarms, _, shift) = alarms(args.events, seed, drift_at)?;
            println!("seed {seed}, drift at {drift_at:?} (shift at {shift}):");
            alarms.iter().for_each(|a| println!("  {a:?}"));
        }
        return Ok(());
    }
    let started = Instant::now();
    let mut rows = String::new();
    let (mut steady_alarms, mut early_alarms, mut records) = (0usize, 0usize, 0u64);
    let mut flagged: BTreeMap<String, u64> = BTreeMap::new();
    for seed in 1..=args.seeds {
        let (steady, n1, _) = alarms(args.events, seed, None)?;
        let (drifted, n2, shift) = alarms(args.events, seed, Some(args.drift_at))?;
        records += n1 + n2;
        let early: Vec<&DriftRecord> = drifted.iter().filter(|d| d.ts < shift).collect();
        steady_alarms += steady.len();
        early_alarms += early.len();
        let mut after: Vec<String> = drifted.iter().filter(|d| d.ts >= shift).map(|d| format!("{}/{}", d.kind, d.name)).collect();
        after.sort();
        after.dedup();
        for a in &after {
            *flagged.entry(a.clone()).or_default() += 1;
        }
        let names = |v: &[&DriftRecord]| {
            v.iter().map(|d| format!("{}/{}/{} ({:.3} > {:.3})", d.kind, d.name, d.method, d.value, d.threshold)).collect::<Vec<_>>().join(", ")
        };
        let row = format!(
            "| {seed} | {} | {} | {} |\n",
            if steady.is_empty() { "none".to_owned() } else { names(&steady.iter().collect::<Vec<_>>()) },
            if early.is_empty() { "none".to_owned() } else { names(&early) },
            after.join(", ")
        );
        eprint!("{row}");
        rows.push_str(&row);
    }
    let mut summary = String::new();
    for (name, n) in &flagged {
        summary.push_str(&format!("{name} {n}/{}; ", args.seeds));
    }
    let heading = "## The demo's drift alarms over seeds";
    let section = format!(
        "{heading} (measured {})\n\nMachine: {}. Command: `cargo run --release -p vigil-benchmarks --bin demo-alarms -- --seeds {} --events {} --drift-at {}` \
         ({:.0} s). The whole job of `vigil demo` (`examples/fraud_online.toml`: features, the model trained online in event-time consistency \
         on the CPU twin, feature, prediction, concept and fairness monitoring with the job's defaults) over the demo's stream (1% malformed \
         records, labels 2,000 events after their events), in memory, one worker; deterministic: a seed gives the same alarms at any speed. \
         Each seed runs drift-free and with the drift at event {} (three times the fraud, amounts x1.5, card testers slow down). \
         {} drift records in all.\n\n\
         **Drift-free runs: {steady_alarms} alarms over {} seeds. Drifted runs: {early_alarms} alarms before the shift.** \
         Flagged after the shift (seeds): {summary}\n\n\
         | seed | drift-free: alarms | drifted: alarms before the shift | drifted: flagged after the shift (kind/name) |\n|---|---|---|---|\n{rows}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine(),
        args.seeds,
        args.events,
        args.drift_at,
        started.elapsed().as_secs_f64(),
        args.drift_at,
        records,
        args.seeds,
    );
    write_section(&args.results, heading, &section)?;
    println!("{section}");
    Ok(())
}
