//! What event-time consistency costs and buys (`model::gate`): the demo's fraud
//! job trained online over the demo stream (labels 2,000 events after their
//! events), in memory, with `consistency = "latest"` and `"event_time"`:
//! - as a burst (a backfill: the whole stream readable at once): throughput, the
//!   share of events scored by the untrained model, the served ROC-AUC, the most
//!   events held at once and the peak RSS growth;
//! - paced (records handed out over wall time at `--rate` events/s): the
//!   consume-to-score latency (p50, p99) and the served ROC-AUC.
//!
//! `cargo run --release -p vigil-benchmarks --bin event-time-bench -- --events 400000`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use report::{machine, write_section};
use vigil::demo::generator::{GenConfig, Generator};
use vigil::learner::service::LabelSourceFactory;
use vigil::learner::Consistency;
use vigil::local::{run_local_sources, EventSources};
use vigil::metrics::Metrics;
use vigil::output::{MemorySink, Topic};
use vigil::source::{PacedSource, RecordSource};
use vigil::spec::JobSpec;

#[path = "../report.rs"]
mod report;
use report::median;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 400_000)]
    events: usize,
    /// Events per second of wall time in the paced runs (the demo's event time
    /// runs at 200 events/s: 20,000/s replays it 100 times faster than real time).
    #[arg(long, default_value_t = 20_000.0)]
    rate: f64,
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    #[arg(long, default_value = "benchmarks/RESULTS.md")]
    results: String,
}

const PARTITIONS: usize = 8;

type Parts = Vec<Arc<Vec<(usize, Vec<u8>)>>>;

/// Events by partition and labels, each with its position in publishing order;
/// and each event id's label.
fn stream(n: usize) -> (Parts, Parts, std::collections::HashMap<String, bool>, usize) {
    let mut g = Generator::new(GenConfig { seed: 5, ..GenConfig::default() });
    let mut events = vec![Vec::new(); PARTITIONS];
    let (mut labels, mut truth) = (Vec::new(), std::collections::HashMap::new());
    let mut pos = 0;
    let mut add_labels = |ls: Vec<vigil::demo::generator::Generated>, pos: &mut usize| {
        for l in ls {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&l.payload) {
                if let (Some(id), Some(y)) = (v["event_id"].as_str(), v["is_fraud"].as_bool()) {
                    truth.insert(id.to_owned(), y);
                }
            }
            labels.push((*pos, l.payload));
            *pos += 1;
        }
    };
    for _ in 0..n {
        let t = g.next_transaction();
        events[(vigil::types::key_hash(&t.key) % PARTITIONS as u64) as usize].push((pos, t.payload));
        pos += 1;
        add_labels(g.due_labels(), &mut pos);
    }
    add_labels(g.remaining_labels(), &mut pos);
    (events.into_iter().map(Arc::new).collect(), vec![Arc::new(labels)], truth, pos)
}

fn job(consistency: Consistency) -> Result<JobSpec> {
    let text = std::fs::read_to_string("examples/fraud_online.toml")?;
    let mut job = JobSpec::from_toml(&text)?;
    job.monitor = None;
    job.sinks.drift = None;
    let o = job.model.online.as_mut().expect("online");
    o.runs_dir = None;
    o.device = vigil::gpu::DeviceChoice::Cpu;
    o.consistency = consistency;
    Ok(job)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// A quantile of a Prometheus histogram, interpolated within its bucket.
fn quantile(h: &prometheus::Histogram, q: f64) -> f64 {
    use prometheus::core::Collector;
    let metric = h.collect()[0].get_metric()[0].get_histogram().clone();
    let total = metric.get_sample_count() as f64;
    let (mut prev_count, mut prev_bound) = (0.0, 0.0);
    for b in metric.get_bucket() {
        let (count, bound) = (b.cumulative_count() as f64, b.upper_bound());
        if count >= q * total {
            let share = if count > prev_count { (q * total - prev_count) / (count - prev_count) } else { 1.0 };
            return prev_bound + share * (bound - prev_bound);
        }
        (prev_count, prev_bound) = (count, bound);
    }
    f64::INFINITY
}

struct Outcome {
    events_per_s: f64,
    untrained_share: f64,
    auc: f64,
    max_held: i64,
    rss_growth_mib: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn run(events: &Parts, labels: &Parts, truth: &std::collections::HashMap<String, bool>, c: Consistency, per_ms: Option<f64>) -> Result<Outcome> {
    let job = job(c)?;
    let clock = per_ms.map(|r| (Instant::now(), r));
    let (ev, lb) = (events.clone(), labels.clone());
    let sources: EventSources = Arc::new(move |i, peers| Box::new(PacedSource::new("transactions", &ev, i, peers, clock)) as Box<dyn RecordSource>);
    let label_source: LabelSourceFactory = Box::new(move || Ok(Box::new(PacedSource::new("labels", &lb, 0, 1, clock)) as Box<dyn RecordSource>));
    let sink = MemorySink::new();
    let metrics = Metrics::new();
    let rss0 = rss_kib();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (m, stop) = (metrics.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut held, mut rss) = (0i64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                held = held.max(m.model.held_events.get());
                rss = rss.max(rss_kib());
                std::thread::sleep(Duration::from_millis(2));
            }
            (held, rss)
        })
    };
    let started = Instant::now();
    run_local_sources(&job, sources, label_source, 1, sink.clone(), metrics.clone(), None)?;
    let secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let (max_held, rss_peak) = watcher.join().expect("watcher");
    let (mut scored, mut untrained, mut items) = (0usize, 0usize, Vec::new());
    for (topic, _, payload) in sink.take() {
        if topic != Topic::Scores {
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(&payload)?;
        scored += 1;
        if v["model_version"].as_str().is_some_and(|m| m.ends_with("@0")) {
            untrained += 1;
        }
        if let Some(y) = v["event_id"].as_str().and_then(|id| truth.get(id)) {
            items.push((v["score"].as_f64().unwrap_or(0.5) as f32, *y, 1.0f32));
        }
    }
    Ok(Outcome {
        events_per_s: scored as f64 / secs,
        untrained_share: untrained as f64 / scored.max(1) as f64,
        auc: vigil_operators::learn::quality::roc_auc(&items).unwrap_or(f64::NAN),
        max_held,
        rss_growth_mib: rss_peak.saturating_sub(rss0) as f64 / 1024.0,
        p50_ms: quantile(&metrics.latency, 0.5) * 1e3,
        p99_ms: quantile(&metrics.latency, 0.99) * 1e3,
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    let (events, labels, truth, records) = stream(args.events);
    let per_ms = args.rate * records as f64 / args.events as f64 / 1000.0;
    let mut table = String::from(
        "| mode | input | events/s | scored by the untrained model | served ROC-AUC | most events held | RSS growth (MiB) | latency p50 / p99 (ms) |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (name, c) in [("latest", Consistency::Latest), ("event_time", Consistency::EventTime)] {
        for (input, pace) in [("burst", None), ("paced", Some(per_ms))] {
            let runs: Vec<Outcome> = (0..args.repeat).map(|_| run(&events, &labels, &truth, c, pace)).collect::<Result<_>>()?;
            let m = |f: &dyn Fn(&Outcome) -> f64| median(runs.iter().map(f).collect());
            let ms = |v: f64| if v.is_finite() { format!("{v:.1}") } else { "> 2500".into() };
            let row = format!(
                "| {name} | {input} | {:.0} | {:.1}% | {:.4} | {:.0} | {:.0} | {} / {} |\n",
                m(&|o| o.events_per_s),
                100.0 * m(&|o| o.untrained_share),
                m(&|o| o.auc),
                m(&|o| o.max_held as f64),
                m(&|o| o.rss_growth_mib),
                ms(m(&|o| o.p50_ms)),
                ms(m(&|o| o.p99_ms)),
            );
            eprint!("{row}");
            table.push_str(&row);
        }
    }
    let heading = "## Event-time consistency: backfill and live";
    let section = format!(
        "{heading} (measured {})\n\nMachine: {}. Command: `cargo run --release -p vigil-benchmarks --bin event-time-bench -- --events {} --rate {}` \
         (median of {} runs each). The demo's fraud job (`examples/fraud_online.toml`, CPU twin, no monitor) trained online over the demo stream \
         ({} events in 8 partitions, labels 2,000 events after their events, revealed 15 s of event time after them), in memory, one worker. \
         *burst*: the whole stream readable at once (a backfill); *paced*: records handed out at {} events/s of wall time (the stream's event \
         time runs at 200 events/s, so 1 s of wall time is {:.0} s of event time). Latency is consume-to-score (the `vigil_consume_to_score_seconds` \
         histogram, interpolated in its buckets).\n\n{table}\n\
         Event-time consistency holds a score until the model of its step exists, which needs the input's watermark (the allowed lateness, 5 s \
         of event time here) and the labels' watermark (newest reveal time less their lateness) past the step: at real-time speed that is about \
         lateness + one step (6 s here) of added latency; replayed 100 times faster it is tens of milliseconds. In exchange a backfill serves \
         what the live run served (tests/event_time_learning.rs: identical scores paced and burst, 1 and 2 workers).\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine(),
        args.events,
        args.rate,
        args.repeat,
        args.events,
        args.rate,
        args.rate / 200.0,
    );
    write_section(&args.results, heading, &section)?;
    println!("{section}");
    Ok(())
}
