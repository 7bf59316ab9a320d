//! Demo tooling, apart from the engine: `vigil demo` (this file: an embedded
//! broker, the synthetic card-transaction generator and the fraud job, in one
//! process; any Kafka client can read the topics while it runs and while it
//! lingers; at the end the accounting invariant is checked from the topics
//! themselves), and what tests, benchmarks and examples use to make data:
//!
//! - [`broker`]: an embedded Kafka-protocol broker (librdkafka's mock cluster);
//! - [`generator`]: card transactions, logins and delayed labels, seeded, with
//!   malformed records and concept drift on demand;
//! - [`feed_generator`]: an engagement feed (views, likes, shares);
//! - [`mod@publish`]: the generator's records to Kafka, paced or as fast as it goes;
//! - [`record`]: recorded streams for the learner's deterministic replay.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::demo::broker::EmbeddedBroker;
use crate::demo::generator::GenConfig;
use crate::demo::publish::{publish, PublishOptions, PublishProgress};
use crate::metrics::Metrics;
use crate::run::{run_job, RunOptions};
use crate::spec::JobSpec;
use crate::types::Control;

/// The demo's transactions as Avro (`demo/avro.rs`).
pub mod avro;
pub mod broker;
pub mod feed_generator;
pub mod generator;
pub mod protobuf;
pub mod publish;
pub mod record;

/// The demo job with fixed weights, parsed from `examples/fraud_job.toml` (built
/// into the binary).
pub fn fraud_job() -> JobSpec {
    JobSpec::from_toml(include_str!("../../examples/fraud_job.toml")).expect("the bundled job spec is valid")
}

/// The demo job trained online, parsed from `examples/fraud_online.toml`.
pub fn fraud_online_job() -> JobSpec {
    JobSpec::from_toml(include_str!("../../examples/fraud_online.toml")).expect("the bundled job spec is valid")
}

#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub events: u64,
    pub rate: Option<f64>,
    pub bad_ratio: f64,
    pub drift_at: Option<u64>,
    pub seed: u64,
    pub linger: Duration,
    pub workers: usize,
    pub partitions: i32,
    pub metrics_addr: Option<SocketAddr>,
    /// Overrides the online job's device.
    pub device: Option<crate::gpu::DeviceChoice>,
    /// Train online (the default) or score with fixed weights.
    pub online: bool,
    pub runs_dir: std::path::PathBuf,
    /// Start every variant from this champion file.
    pub model_init: Option<std::path::PathBuf>,
    /// Where the offline log (Parquet) goes; none: not logged.
    pub data_dir: Option<std::path::PathBuf>,
}

/// What a demo run leaves for callers (tests) beyond its printed summary.
#[derive(Clone, Debug, Default)]
pub struct DemoReport {
    /// Every record of the `drift` topic, read back from the broker.
    pub drift: Vec<crate::monitor::DriftRecord>,
    /// Records of the `drift` topic that did not parse (should be none).
    pub malformed_drift: usize,
}

pub fn run_demo(opts: &DemoOptions, control: Arc<Control>) -> Result<DemoReport> {
    let mut job = if opts.online { fraud_online_job() } else { fraud_job() };
    if let Some(online) = job.model.online.as_mut() {
        if let Some(d) = opts.device {
            online.device = d;
        }
        online.runs_dir = Some(opts.runs_dir.clone());
        online.init = opts.model_init.clone();
    }
    let broker = EmbeddedBroker::start(1)?;
    let labels = "labels";
    let input_parts = create_topics(&broker, &job, labels, opts)?;
    let addr = broker.bootstrap_servers();
    let metrics = Metrics::new();
    let store = crate::store::FeatureStore::new(job.features.iter().map(|f| f.name().to_owned()).collect());
    let metrics_url = match opts.metrics_addr {
        Some(a) => Some(crate::http::serve(a, metrics.clone(), Some(store.clone()))?),
        None => None,
    };
    println!("vigil demo: embedded Kafka broker at {addr}");
    println!(
        "  topics: {} ({input_parts} partitions, input), {labels} (labels, delayed), {} (scores), {} (dead letters)",
        job.source.topic, job.sinks.scores, job.sinks.dlq
    );
    println!("  subscribe with any Kafka client, e.g.: kcat -b {addr} -C -t {} -o beginning", job.sinks.scores);
    if let Some(m) = metrics_url {
        println!("  dashboard: http://{m}/");
        println!("  metrics: http://{m}/metrics");
        println!("  features: http://{m}/features/c-000001 (any card id)");
    }

    let kafka = broker.kafka_options();
    let gen_progress = Arc::new(PublishProgress::default());
    let end = Arc::new(Mutex::new(None));
    let generator = {
        let kafka = kafka.clone();
        let progress = gen_progress.clone();
        let control = control.clone();
        let end = end.clone();
        let gen = GenConfig { seed: opts.seed, bad_ratio: opts.bad_ratio, drift_at: opts.drift_at, ..GenConfig::default() };
        let publish_opts =
            PublishOptions { topic: job.source.topic.clone(), labels_topic: Some(labels.into()), logins_topic: None, events: opts.events, rate: opts.rate };
        let topic = job.source.topic.clone();
        std::thread::Builder::new().name("vigil-generator".into()).spawn(move || -> Result<()> {
            publish(&kafka, gen, &publish_opts, &progress, control.shutdown_flag())?;
            // Everything is published: the job stops once it has read up to here.
            let admin = kafka.admin_consumer("vigil-demo")?;
            let n = crate::kafka::partition_count(&admin, &topic, Duration::from_secs(10))?;
            let ends = crate::kafka::end_offsets(&admin, &topic, n)?;
            *end.lock().unwrap_or_else(|e| e.into_inner()) = Some(ends.into_iter().enumerate().map(|(p, o)| (p as u32, o)).collect());
            Ok(())
        })?
    };

    let started = Instant::now();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let display = spawn_progress(metrics.clone(), gen_progress.clone(), opts.events, done.clone());
    let run_opts = RunOptions { store: Some(store), data_dir: opts.data_dir.clone(), ..RunOptions::new(kafka.clone(), "vigil-demo", opts.workers) };
    let summary = run_job(job.clone(), &run_opts, metrics.clone(), control.clone(), end);
    done.store(true, Ordering::SeqCst);
    let _ = display.join();
    generator.join().map_err(|_| anyhow::anyhow!("the generator panicked"))?.context("the generator failed")?;
    let summary = summary?;
    let elapsed = started.elapsed().as_secs_f64();

    let scored = metrics.scores_out.get();
    let dlq = metrics.dlq_total();
    println!();
    println!("vigil demo summary");
    println!("  generated {} transactions and {} labels", gen_progress.events.load(Ordering::Relaxed), gen_progress.labels.load(Ordering::Relaxed));
    println!("  scored {scored}, dead-lettered {dlq}, in {elapsed:.1} s ({:.0} events/s end to end)", (scored + dlq) as f64 / elapsed);
    let latency = &metrics.latency;
    println!("  mean consume-to-score latency {:.2} ms", 1000.0 * latency.get_sample_sum() / latency.get_sample_count().max(1) as f64);

    print_accounting(&kafka, &job, &summary)?;
    print_outcomes(&summary, &job, opts.data_dir.as_deref(), &addr);
    let mut out = DemoReport::default();
    if let Some(topic) = &job.sinks.drift {
        for r in crate::kafka::read::read_topic(&kafka, topic, Duration::from_secs(10))? {
            match r.payload.as_deref().map(serde_json::from_slice::<crate::monitor::DriftRecord>) {
                Some(Ok(d)) => out.drift.push(d),
                _ => out.malformed_drift += 1,
            }
        }
        println!("  {}: {} records read back ({} flag drift)", topic, out.drift.len(), out.drift.iter().filter(|d| d.drift).count());
    }

    if !opts.linger.is_zero() {
        println!("broker stays up for {} s at {addr}: kcat -b {addr} -C -t {} -e", opts.linger.as_secs(), job.sinks.scores);
        std::thread::sleep(opts.linger);
    }
    drop(broker);
    Ok(out)
}

/// The demo's topics on the embedded broker, sized so that the whole run fits
/// (it keeps about 5 MB per partition and silently drops the oldest records
/// past it); returns the input topic's partitions.
fn create_topics(broker: &EmbeddedBroker, job: &JobSpec, labels: &str, opts: &DemoOptions) -> Result<i32> {
    let fit = |bytes_per_record: f64, records: f64, min: i32| min.max((records * bytes_per_record / 4.0e6).ceil() as i32);
    let n = opts.events as f64;
    let input_parts = fit(200.0, n, opts.partitions);
    for (topic, parts) in [
        (job.source.topic.as_str(), input_parts),
        (labels, fit(120.0, n, opts.partitions)),
        (&job.sinks.scores, fit(600.0, n, opts.partitions)),
        (&job.sinks.dlq, fit(6_000.0, n * opts.bad_ratio, 4)),
    ] {
        broker.create_topic(topic, parts)?;
    }
    if let Some(shadow) = &job.sinks.shadow {
        broker.create_topic(shadow, fit(900.0, n, opts.partitions))?;
    }
    if let Some(drift) = &job.sinks.drift {
        broker.create_topic(drift, 1)?;
    }
    Ok(input_parts)
}

/// Checks and prints the accounting invariant, read back from the topics.
fn print_accounting(kafka: &crate::kafka::KafkaOptions, job: &JobSpec, summary: &crate::run::RunSummary) -> Result<()> {
    let report = crate::accounting::check(kafka, &job.source.topic, &job.sinks.scores, &job.sinks.dlq, Some(&summary.committed))?;
    println!(
        "  accounting from the topics: {} input offsets -> {} in {}, {} in {}",
        report.inputs, report.scored, job.sinks.scores, report.dead_lettered, job.sinks.dlq
    );
    for (reason, n) in &report.dlq_by_reason {
        println!("    dlq {reason}: {n}");
    }
    if !report.holds() {
        bail!(
            "accounting invariant violated: {} missing, {} duplicated, {} unexpected (first missing: {:?})",
            report.missing.len(),
            report.duplicated.len(),
            report.unexpected,
            report.missing.first()
        );
    }
    println!("  every input offset is in exactly one of {} and {}", job.sinks.scores, job.sinks.dlq);
    Ok(())
}

/// What learning, monitoring and the offline log did.
fn print_outcomes(summary: &crate::run::RunSummary, job: &JobSpec, data_dir: Option<&std::path::Path>, addr: &str) {
    if let Some(l) = &summary.learner {
        print!("{}", crate::summary::learning(l, &job));
    }
    if let Some(m) = &summary.monitor {
        print!("{}", crate::summary::monitoring(m, &job));
    }
    if let (Some(o), Some(dir)) = (&summary.offline, data_dir) {
        println!(
            "  offline log: {} feature rows in {} Parquet files under {} (training table: vigil features export --data-dir {} --labels labels --brokers {addr})",
            o.rows,
            o.files,
            crate::offline::log::log_dir(dir).display(),
            dir.display()
        );
    }
}

fn spawn_progress(metrics: Arc<Metrics>, gen: Arc<PublishProgress>, total: u64, done: Arc<std::sync::atomic::AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let tty = std::io::stderr().is_terminal();
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}").unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()));
        if !tty {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let (mut last, mut last_t, mut ticks) = (0u64, Instant::now(), 0u64);
        while !done.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(250));
            ticks += 1;
            let scored = metrics.scores_out.get();
            let dlq = metrics.dlq_total();
            let now = Instant::now();
            let rate = (scored + dlq - last) as f64 / now.duration_since(last_t).as_secs_f64();
            (last, last_t) = (scored + dlq, now);
            let lag = metrics.total_lag();
            let msg = format!("generated {} | {rate:>8.0} ev/s | scored {scored} | dlq {dlq} | lag {lag}", gen.events.load(Ordering::Relaxed));
            bar.set_position(scored + dlq);
            bar.set_message(msg.clone());
            if !tty && ticks % 8 == 0 {
                eprintln!("{msg}");
            }
        }
        bar.finish_and_clear();
    })
}
