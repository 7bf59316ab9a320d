//! Drift monitoring end to end through Kafka: `vigil demo --drift-at 100000`
//! writes `drift` records that flag the shifted features and the concept drift
//! after the shift and nothing before it; the same demo without drift flags
//! nothing. The records are read back from the broker's `drift` topic.
//!
//! The demo job trains in event-time consistency and its monitor reads in a fixed
//! order (`model::gate`, `monitor::reorder`): the verdicts come from the data,
//! not from thread timing. The second test checks exactly that: the same drifted
//! stream paced and as a burst, with one worker and two, writes the same drift
//! records, every value to the bit.

use std::time::Duration;

use vigil::demo::generator::{GenConfig, Generator};
use vigil::demo::{run_demo, DemoOptions, DemoReport};
use vigil::gpu::DeviceChoice;
use vigil::monitor::DriftRecord;
use vigil::types::Control;

const EVENTS: u64 = 300_000;
const DRIFT_AT: u64 = 100_000;
const SEED: u64 = 7;
const BAD_RATIO: f64 = 0.01;

fn demo(drift_at: Option<u64>, runs: &std::path::Path) -> DemoReport {
    let opts = DemoOptions {
        events: EVENTS,
        rate: Some(25_000.0),
        bad_ratio: BAD_RATIO,
        drift_at,
        seed: SEED,
        linger: Duration::ZERO,
        workers: 1,
        partitions: 8,
        metrics_addr: None,
        device: Some(DeviceChoice::Cpu),
        online: true,
        runs_dir: runs.to_owned(),
        model_init: None,
        data_dir: None,
    };
    let report = run_demo(&opts, Control::new()).expect("the demo runs");
    assert_eq!(report.malformed_drift, 0, "every drift record parses");
    report
}

/// Event time of the generator's first drifted transaction, less the generator's
/// small out-of-order jitter (up to 3 s).
fn drift_time_ms() -> i64 {
    let mut g = Generator::new(GenConfig { seed: SEED, bad_ratio: BAD_RATIO, drift_at: Some(DRIFT_AT), ..GenConfig::default() });
    let mut last = i64::MIN;
    for _ in 0..DRIFT_AT {
        let r = g.next_transaction();
        if r.malformed.is_some() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(&r.payload).expect("well-formed");
        let ts = match &v["ts"] {
            serde_json::Value::String(s) => chrono::DateTime::parse_from_rfc3339(s).expect("RFC 3339").timestamp_millis(),
            other => other.as_i64().expect("epoch ms"),
        };
        last = last.max(ts);
    }
    last - 3_000
}

fn flags(r: &DemoReport) -> Vec<&DriftRecord> {
    r.drift.iter().filter(|d| d.drift).collect()
}

#[test]
fn demo_flags_features_and_concept_after_the_shift_and_nothing_without_it() {
    let runs = std::env::temp_dir().join(format!("vigil-drift-test-{}", std::process::id()));
    let shift = drift_time_ms();

    let drifted = demo(Some(DRIFT_AT), &runs);
    for kind in ["feature", "prediction", "concept", "fairness"] {
        assert!(drifted.drift.iter().any(|d| d.kind == kind), "{kind} records are written every interval");
    }
    let early: Vec<_> = flags(&drifted).into_iter().filter(|d| d.ts < shift).collect();
    assert!(early.is_empty(), "drift flagged before the shift at {shift}: {early:#?}");
    let flagged = |kind: &str, name: &str| flags(&drifted).iter().any(|d| d.kind == kind && (name.is_empty() || d.name == name));
    // the shift scales amounts by 1.5: the amount and every 1-minute amount feature move
    for name in ["amount", "amount_sum_1m", "amount_mean_1m", "amount_max_1m"] {
        assert!(flagged("feature", name), "feature {name} not flagged: {:#?}", flags(&drifted));
    }
    // the country mix does not change
    assert!(!flagged("feature", "country"));
    assert!(flagged("concept", ""), "no concept drift flagged: {:#?}", flags(&drifted));

    let steady = demo(None, &runs);
    assert!(steady.drift.iter().filter(|d| d.kind == "feature").count() > 50, "findings are written without drift too");
    assert!(flags(&steady).is_empty(), "drift flagged in a drift-free run: {:#?}", flags(&steady));
    let _ = std::fs::remove_dir_all(&runs);
}

/// The demo's records: transactions by partition (by key), and labels, each with
/// its position in publishing order (labels 2,000 events after their events).
fn positioned(events: u64, drift_at: u64) -> (Vec<std::sync::Arc<Vec<(usize, Vec<u8>)>>>, Vec<std::sync::Arc<Vec<(usize, Vec<u8>)>>>) {
    let mut g = Generator::new(GenConfig { seed: SEED, bad_ratio: BAD_RATIO, drift_at: Some(drift_at), ..GenConfig::default() });
    let (mut parts, mut labels, mut pos) = (vec![Vec::new(); 4], Vec::new(), 0);
    for _ in 0..events {
        let t = g.next_transaction();
        parts[(vigil::types::key_hash(&t.key) % 4) as usize].push((pos, t.payload));
        pos += 1;
        for l in g.due_labels() {
            labels.push((pos, l.payload));
            pos += 1;
        }
    }
    for l in g.remaining_labels() {
        labels.push((pos, l.payload));
        pos += 1;
    }
    (parts.into_iter().map(std::sync::Arc::new).collect(), vec![std::sync::Arc::new(labels)])
}

#[test]
fn drift_records_are_the_same_at_any_speed() {
    use vigil::source::{PacedSource, RecordSource};
    let (events, labels) = positioned(160_000, 60_000);
    let records = events.iter().map(|p| p.len()).sum::<usize>() + labels[0].len();
    let run = |workers: usize, per_ms: Option<f64>| {
        let mut job = vigil::demo::fraud_online_job();
        let o = job.model.online.as_mut().expect("online");
        o.device = DeviceChoice::Cpu;
        o.runs_dir = None;
        let clock = per_ms.map(|r| (std::time::Instant::now(), r));
        let (ev, lb) = (events.clone(), labels.clone());
        let sources: vigil::local::EventSources =
            std::sync::Arc::new(move |i, peers| Box::new(PacedSource::new("transactions", &ev, i, peers, clock)) as Box<dyn RecordSource>);
        let label_source: vigil::learner::service::LabelSourceFactory =
            Box::new(move || Ok(Box::new(PacedSource::new("labels", &lb, 0, 1, clock)) as Box<dyn RecordSource>));
        let drift = vigil::monitor::MemoryDriftSink::new();
        let sink = vigil::output::MemorySink::new();
        vigil::local::run_local_sources(&job, sources, label_source, workers, sink, vigil::metrics::Metrics::new(), Some(drift.clone())).expect("the job runs");
        let mut out: Vec<(i64, String, String, String, u64, bool)> =
            drift.records().into_iter().map(|d| (d.ts, d.kind, d.name, d.method, d.value.to_bits(), d.drift)).collect();
        out.sort();
        out
    };
    let burst = run(1, None);
    assert!(burst.iter().any(|r| r.1 == "prediction") && burst.iter().any(|r| r.1 == "concept"), "every kind is written");
    assert!(burst.iter().any(|r| r.5), "the drift is flagged");
    // paced over about two seconds, and with two workers
    for (workers, pace) in [(1, Some(records as f64 / 2_000.0)), (2, None)] {
        let other = run(workers, pace);
        let first = burst.iter().zip(&other).find(|(a, b)| a != b);
        assert!(
            first.is_none() && burst.len() == other.len(),
            "{workers} workers, paced {pace:?}: {} vs {} records, first difference {first:?}",
            burst.len(),
            other.len()
        );
    }
}
