//! Drift monitoring end to end through Kafka: `vigil demo --drift-at 100000`
//! writes `drift` records that flag the shifted features and the concept drift
//! after the shift and nothing before it; the same demo without drift flags
//! nothing. The records are read back from the broker's `drift` topic.
//!
//! The generator is paced (25,000 events/s): unpaced, the embedded broker hands
//! the whole stream over at once and scoring runs tens of thousands of events
//! ahead of training, so the champion's errors depend on thread timing.

use std::time::Duration;

use vigil::demo::{run_demo, DemoOptions, DemoReport};
use vigil::generator::{GenConfig, Generator};
use vigil::gpu::DeviceChoice;
use vigil::monitor::DriftRecord;
use vigil::pipeline::Control;

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
