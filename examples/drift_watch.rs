//! Watching a stream for drift: `cargo run --release --example drift_watch`.
//!
//! Runs the online fraud job (`examples/fraud_online.toml`, whose `[monitor]`
//! section watches the amounts, the 1-minute features, the country mix, the
//! predictions, the population's errors and fairness across age bands) on the
//! embedded broker, over a synthetic stream whose fraud pattern and amounts shift
//! at event 100,000, and prints every alarm as it arrives on the `drift` topic,
//! the way a subscriber (an on-call bot, a retraining trigger) would see it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Message;
use vigil::demo::broker::EmbeddedBroker;
use vigil::demo::generator::GenConfig;
use vigil::demo::publish::{publish, PublishOptions, PublishProgress};
use vigil::gpu::DeviceChoice;
use vigil::kafka::KafkaOptions;
use vigil::metrics::Metrics;
use vigil::monitor::emit::format_ts;
use vigil::monitor::DriftRecord;
use vigil::run::{run_job, RunOptions};
use vigil::types::Control;

const EVENTS: u64 = 300_000;
const DRIFT_AT: u64 = 100_000;

/// Prints an alert when a finding starts flagging drift (and when it stops), and
/// every concept-drift detection, until `stop`.
fn watch(kafka: KafkaOptions, stop: Arc<AtomicBool>) -> anyhow::Result<usize> {
    let mut active: std::collections::HashMap<(String, String, String), bool> = std::collections::HashMap::new();
    let consumer: BaseConsumer = kafka.consumer_config_with(&[("group.id", "drift-watch-subscriber"), ("auto.offset.reset", "earliest")]).create()?;
    consumer.subscribe(&["drift"])?;
    let mut alarms = 0;
    let mut idle_after_stop = 0;
    while idle_after_stop < 10 {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let Some(Ok(r)) = m.payload().map(serde_json::from_slice::<DriftRecord>) else { continue };
                let was = active.insert((r.kind.clone(), r.name.clone(), r.method.clone()), r.drift).unwrap_or(false);
                let what = format!("{:<10} {:<16} {:<12} {:>9.4} vs {:<8.4} at {}", r.kind, r.name, r.method, r.value, r.threshold, format_ts(r.ts));
                if r.drift && (!was || r.kind == "concept") {
                    alarms += 1;
                    println!("ALERT    {what}");
                } else if was && !r.drift && r.kind != "concept" {
                    println!("resolved {what}");
                }
            }
            Some(Err(e)) => eprintln!("drift consumer: {e}"),
            None if stop.load(Ordering::Acquire) => idle_after_stop += 1,
            None => {}
        }
    }
    Ok(alarms)
}

fn main() -> anyhow::Result<()> {
    let broker = EmbeddedBroker::start(1)?;
    for (topic, partitions) in [("transactions", 16), ("labels", 8), ("scores", 32), ("scores_shadow", 48), ("dlq", 2), ("drift", 1)] {
        broker.create_topic(topic, partitions)?;
    }
    let kafka = KafkaOptions::new(&broker.bootstrap_servers());
    let mut job = vigil::demo::fraud_online_job();
    if let Some(o) = job.model.online.as_mut() {
        o.device = DeviceChoice::Cpu;
        o.runs_dir = None;
    }
    println!("watching `drift` on {}; the stream shifts at event {DRIFT_AT} of {EVENTS}", kafka.brokers);

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (kafka, stop) = (kafka.clone(), stop.clone());
        std::thread::spawn(move || watch(kafka, stop))
    };
    // publish at a steady rate while the job runs; the job stops at the end offsets
    let end = Arc::new(Mutex::new(None));
    let publisher = {
        let (kafka, end) = (kafka.clone(), end.clone());
        std::thread::spawn(move || -> anyhow::Result<()> {
            let gen = GenConfig { drift_at: Some(DRIFT_AT), bad_ratio: 0.01, ..GenConfig::default() };
            let opts =
                PublishOptions { topic: "transactions".into(), labels_topic: Some("labels".into()), logins_topic: None, events: EVENTS, rate: Some(25_000.0) };
            publish(&kafka, gen, &opts, &PublishProgress::default(), &Arc::new(AtomicBool::new(false)))?;
            let admin = kafka.admin_consumer("drift-watch-admin")?;
            let n = vigil::kafka::partition_count(&admin, "transactions", Duration::from_secs(10))?;
            let ends = vigil::kafka::end_offsets(&admin, "transactions", n)?;
            *end.lock().unwrap_or_else(|e| e.into_inner()) = Some(ends.into_iter().enumerate().map(|(p, o)| (p as u32, o)).collect());
            Ok(())
        })
    };
    let summary = run_job(job, &RunOptions::new(kafka.clone(), "drift-watch", 1), Metrics::new(), Control::new(), end);
    publisher.join().map_err(|_| anyhow::anyhow!("the publisher panicked"))??;
    stop.store(true, Ordering::Release);
    let alarms = watcher.join().map_err(|_| anyhow::anyhow!("the watcher panicked"))??;
    let summary = summary?;
    let records = summary.monitor.as_ref().map_or(0, |m| m.records);
    println!("{alarms} alarms; {records} feature and prediction findings written to `drift`");
    Ok(())
}
