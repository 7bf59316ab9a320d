//! The cost of window-level data-quality expectations on the graph: the fraud
//! job (`examples/fraud_job.toml`, fixed weights) through `job_graph` in memory,
//! without and with four window-level expectations on its source (the not-null
//! rate of `device`, duplicate `event_id`s per 5 minutes, freshness, and volume
//! per minute), with 1 and 2 workers; and the upper limit, a plain loop doing
//! the same window counting over values already decoded (the time, whether
//! `device` is there, the id's hash) with the same `WindowJudge`. Runs
//! interleaved; ratios are medians of each run's rate over the run just before it.
//!
//! `cargo run --release -p vigil-benchmarks --bin quality-bench -- --events 1000000 --runs 5`
//! writes its section of `benchmarks/RESULTS.md`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use vigil::demo::generator::{GenConfig, Generator};
use vigil::graph::LocalRun;
use vigil::monitor::quality::{window_ms, window_start, Counts, WindowJudge};
use vigil::spec::{Check, Expectation, JobSpec};

#[path = "../report.rs"]
mod report;
use report::median;
use report::{machine, write_section};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Print, do not write RESULTS.md.
    #[arg(long)]
    dry_run: bool,
}

fn expectations() -> Vec<Expectation> {
    vec![
        Expectation::not_null_rate("device_present", "device", 0.5),
        Expectation::unique("unique_events", "event_id", 0.0).per(Duration::from_secs(300)),
        Expectation::freshness("fresh", Duration::from_secs(3600), 0.5),
        Expectation::volume("per_minute", 100, 1_000_000),
    ]
}

/// Events/s of the job on the graph, and the quality records written.
fn graph(job: &JobSpec, parts: &[Vec<Vec<u8>>], workers: usize, events: usize) -> Result<(f64, u64)> {
    let (j, topic) = (job.clone(), job.source.topic.clone());
    let run = LocalRun::new(workers).count_only().topic(&topic, parts.to_vec());
    let t = Instant::now();
    let out = run.run(move |g| vigil::graph::job::job_graph(g, &j))?;
    Ok((events as f64 / t.elapsed().as_secs_f64(), out.written.get("drift").copied().unwrap_or(0)))
}

/// One decoded event, as the plain loop sees it.
struct Row {
    time: i64,
    device: bool,
    id: u64,
}

/// Events/s of a plain loop counting the same windows (batches of 1024, as the
/// operator's input comes), judged by the same `WindowJudge`.
fn plain_loop(rows: &[Row]) -> (f64, usize) {
    let exps = expectations();
    let lens: Vec<i64> = exps.iter().map(window_ms).collect();
    let now = (vigil::types::now_us() / 1000) as i64;
    let t = Instant::now();
    let mut judge = WindowJudge::new(exps.clone());
    let mut found = 0;
    for batch in rows.chunks(1024) {
        let mut counts: BTreeMap<(usize, i64), Counts> = BTreeMap::new();
        for r in batch {
            for (i, e) in exps.iter().enumerate() {
                let c = counts.entry((i, window_start(r.time, lens[i]))).or_default();
                c.records += 1;
                match e.check {
                    Check::NotNullRate { .. } => c.hits += r.device as u64,
                    Check::Unique { .. } => c.ids.push(r.id),
                    Check::Freshness { max_lag, .. } => c.hits += (now - r.time > max_lag.as_millis() as i64) as u64,
                    _ => {}
                }
            }
        }
        for ((i, s), c) in &counts {
            judge.add(*i, *s, c);
        }
        let watermark = batch.iter().map(|r| r.time).max().unwrap_or(0) - 5000;
        found += judge.close_before(watermark).len();
    }
    found += judge.finish().len();
    (rows.len() as f64 / t.elapsed().as_secs_f64(), found)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let bare = JobSpec::from_toml(&std::fs::read_to_string("examples/fraud_job.toml")?)?;
    let mut checked = bare.clone();
    checked.source.expectations.extend(expectations());
    checked.sinks.drift = Some("drift".into());
    vigil::spec::check_expectations(&checked.source)?;
    let mut gen = Generator::new(GenConfig::default());
    let mut parts: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 8];
    let mut rows = Vec::with_capacity(args.events);
    for _ in 0..args.events {
        let g = gen.next_transaction();
        let v: serde_json::Value = serde_json::from_slice(&g.payload).unwrap_or_default();
        let time = v["ts"].as_i64().or_else(|| v["ts"].as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()).map(|t| t.timestamp_millis()));
        rows.push(Row { time: time.unwrap_or(0), device: !v["device"].is_null(), id: vigil::types::key_hash(v["event_id"].as_str().unwrap_or("")) });
        parts[(vigil::types::key_hash(&g.key) % 8) as usize].push(g.payload);
    }
    // per workers (1, 2): rates of [graph, graph + expectations]; and the plain loop
    let mut rates = vec![vec![Vec::new(); 2]; 2];
    let mut plain = Vec::new();
    let (mut records, mut plain_found) = (0, 0);
    for run in 0..args.runs {
        for (i, workers) in [1usize, 2].into_iter().enumerate() {
            rates[i][0].push(graph(&bare, &parts, workers, args.events)?.0);
            let (r, n) = graph(&checked, &parts, workers, args.events)?;
            rates[i][1].push(r);
            records = n;
        }
        let (r, n) = plain_loop(&rows);
        plain.push(r);
        plain_found = n;
        println!(
            "run {run}: {:?}, plain {:.0}",
            rates.iter().map(|w| w.iter().map(|v| v.last().copied().unwrap_or(0.0) as u64).collect::<Vec<_>>()).collect::<Vec<_>>(),
            r
        );
    }
    let paired = |w: usize| median(rates[w][1].iter().zip(&rates[w][0]).map(|(x, y)| x / y).collect());
    let k = |x: f64| format!("{:.0}K", x / 1000.0);
    let mut rows_md = String::new();
    for (w, workers) in [1, 2].into_iter().enumerate() {
        rows_md.push_str(&format!("| {workers} | {} | {} | {:.2}x |\n", k(median(rates[w][0].clone())), k(median(rates[w][1].clone())), paired(w)));
    }
    let section = format!(
        "## Window-level data-quality expectations (measured {})\n\n\
         Machine: {}. Command: `cargo run --release -p vigil-benchmarks --bin quality-bench -- --events {} --runs {}`. \
         The fraud job (`examples/fraud_job.toml`, fixed weights) through `job_graph` in memory, {} generated transactions over 8 partitions, outputs \
         encoded and dropped, without and with four window-level expectations on its source (`device` not-null rate per minute, duplicate `event_id`s \
         per 5 minutes, freshness per minute, volume per minute); each configuration run {} times, interleaved; rates are medians, ratios the median \
         of each run over the run just before it. Quality records written per run: {records}.\n\n\
         | workers | graph | graph + 4 window expectations | ratio |\n|---:|---:|---:|---:|\n{rows_md}\n\
         Upper limit, a plain loop doing the same counting over values already decoded (time, `device` present, the id's hash), in batches of 1,024, \
         judged by the same `WindowJudge`: {} events/s ({plain_found} findings). On the graph every worker counts its share per window and batch \
         (a map entry per window and expectation, the ids' hashes for `unique`) and sends the counts to worker 0, which merges and judges them.\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine(),
        args.events,
        args.runs,
        args.events,
        args.runs,
        k(median(plain)),
    );
    println!("{section}");
    if !args.dry_run {
        write_section("benchmarks/RESULTS.md", "## Window-level data-quality expectations", &section)?;
    }
    Ok(())
}
