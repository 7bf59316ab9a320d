//! Property test: the whole job (decode, watermarks, exchange, features) on random
//! streams, with one and two workers, against an independent naive oracle that
//! recomputes every event's features from scratch.
//!
//! Streams have out-of-order events, ties within a batch, events exactly on window
//! and lateness boundaries, late and implausible (ancient, far-future) timestamps,
//! malformed records and absent optional values. Tumbling, hopping and session
//! windows are checked as of every event, and the windows that emit on close
//! against the oracle's windows over the accepted events, each written once.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{compare, observed, oracle, OracleFeature, OracleJob};
use proptest::prelude::*;
use vigil::local::run_local;
use vigil::metrics::Metrics;
use vigil::output::{MemorySink, Topic};
use vigil::spec::{FieldType, JobBuilder, JobSpec, Window};
use vigil_operators::{Agg, DecayKind, Emit, WindowKind};

const BASE: i64 = 1_767_225_600_000; // 2026-01-01

fn job() -> JobSpec {
    JobBuilder::new("prop")
        .source_topic("in")
        .key_field("k")
        .event_time_field("t")
        .allowed_lateness(Duration::from_millis(2_000))
        .max_future(Duration::from_secs(3600))
        .optional_field("amount", FieldType::F64)
        .field("note", FieldType::Str)
        .optional_field("merchant", FieldType::Str)
        .window_feature("n_3s", Agg::Count, None, Duration::from_secs(3))
        .window_feature("sum_3s", Agg::Sum, Some("amount"), Duration::from_secs(3))
        .window_feature("min_3s", Agg::Min, Some("amount"), Duration::from_secs(3))
        .window_feature("mean_10s", Agg::Mean, Some("amount"), Duration::from_secs(10))
        .window_feature("max_10s", Agg::Max, Some("amount"), Duration::from_secs(10))
        .window_feature("n_10s", Agg::Count, None, Duration::from_secs(10))
        .window_feature("var_3s", Agg::Variance, Some("amount"), Duration::from_secs(3))
        .window_feature("std_10s", Agg::Std, Some("amount"), Duration::from_secs(10))
        .decayed_feature("engagement", DecayKind::Count, None, Duration::from_secs(4), None)
        .decayed_feature("spend_decayed", DecayKind::Sum, Some("amount"), Duration::from_secs(2), None)
        .decayed_feature("amount_decayed_avg", DecayKind::Avg, Some("amount"), Duration::from_secs(8), None)
        .prev_value_feature("prev_amount", "amount", Duration::from_secs(5))
        .time_since_prev_feature("since_prev", Duration::from_secs(5))
        .windowed_feature("n_tumbling_4s", Agg::Count, None, Window::Tumbling(Duration::from_secs(4)), Emit::OnUpdate)
        .windowed_feature("sum_tumbling_4s", Agg::Sum, Some("amount"), Window::Tumbling(Duration::from_secs(4)), Emit::OnClose)
        .windowed_feature(
            "mean_hopping_6s",
            Agg::Mean,
            Some("amount"),
            Window::Hopping { size: Duration::from_secs(6), hop: Duration::from_secs(2) },
            Emit::OnUpdate,
        )
        .windowed_feature(
            "max_hopping_6s",
            Agg::Max,
            Some("amount"),
            Window::Hopping { size: Duration::from_secs(6), hop: Duration::from_secs(2) },
            Emit::OnClose,
        )
        .windowed_feature("n_session", Agg::Count, None, Window::Session { gap: Duration::from_millis(1_500) }, Emit::OnClose)
        .windowed_feature("min_session", Agg::Min, Some("amount"), Window::Session { gap: Duration::from_millis(1_500) }, Emit::OnUpdate)
        .distinct_count_feature("merchants_5s", "merchant", Duration::from_secs(5))
        .distinct_count_feature("notes_5s", "note", Duration::from_secs(5))
        .approx_distinct_feature("merchants_approx_30s", "merchant", Duration::from_secs(30), Duration::from_secs(5), 6)
        .ratio_to_mean_feature("amount_vs_20s_mean", "amount", Duration::from_secs(20), Duration::from_secs(4))
        .windows_sink("windows")
        .weight("n_3s", 0.5)
        .weight("amount", 0.01)
        .features_sink("features")
        .build()
        .unwrap()
}

fn oracle_job() -> OracleJob {
    let w = |name: &str, agg, field: Option<&str>, window_ms| OracleFeature::Window { name: name.into(), agg, field: field.map(String::from), window_ms };
    let kind =
        |name: &str, agg, field: Option<&str>, kind, size_ms| OracleFeature::Kind { name: name.into(), agg, field: field.map(String::from), kind, size_ms };
    OracleJob {
        key: "k".into(),
        numeric: vec!["amount".into()],
        time: "t".into(),
        lateness_ms: 2_000,
        max_bytes: 64 * 1024,
        max_future_ms: 3_600_000,
        features: vec![
            w("n_3s", "count", None, 3_000),
            w("sum_3s", "sum", Some("amount"), 3_000),
            w("min_3s", "min", Some("amount"), 3_000),
            w("mean_10s", "mean", Some("amount"), 10_000),
            w("max_10s", "max", Some("amount"), 10_000),
            w("n_10s", "count", None, 10_000),
            w("var_3s", "variance", Some("amount"), 3_000),
            w("std_10s", "std", Some("amount"), 10_000),
            OracleFeature::Decayed { name: "engagement".into(), kind: DecayKind::Count, field: None, half_life_ms: 4_000 },
            OracleFeature::Decayed { name: "spend_decayed".into(), kind: DecayKind::Sum, field: Some("amount".into()), half_life_ms: 2_000 },
            OracleFeature::Decayed { name: "amount_decayed_avg".into(), kind: DecayKind::Avg, field: Some("amount".into()), half_life_ms: 8_000 },
            OracleFeature::PrevValue { name: "prev_amount".into(), field: "amount".into(), ttl_ms: 5_000 },
            OracleFeature::SincePrev { name: "since_prev".into(), ttl_ms: 5_000 },
            kind("n_tumbling_4s", "count", None, WindowKind::Tumbling, 4_000),
            kind("sum_tumbling_4s", "sum", Some("amount"), WindowKind::Tumbling, 4_000),
            kind("mean_hopping_6s", "mean", Some("amount"), WindowKind::Hopping { hop_ms: 2_000 }, 6_000),
            kind("max_hopping_6s", "max", Some("amount"), WindowKind::Hopping { hop_ms: 2_000 }, 6_000),
            kind("n_session", "count", None, WindowKind::Session { gap_ms: 1_500 }, 0),
            kind("min_session", "min", Some("amount"), WindowKind::Session { gap_ms: 1_500 }, 0),
            OracleFeature::Distinct { name: "merchants_5s".into(), field: "merchant".into(), window_ms: 5_000 },
            OracleFeature::Distinct { name: "notes_5s".into(), field: "note".into(), window_ms: 5_000 },
            OracleFeature::ApproxDistinct { name: "merchants_approx_30s".into(), field: "merchant".into(), window_ms: 30_000, pane_ms: 5_000, precision: 6 },
            OracleFeature::RatioToMean { name: "amount_vs_20s_mean".into(), field: "amount".into(), window_ms: 20_000, pane_ms: 4_000 },
        ],
    }
}

/// One generated record: key, clock step, how far back its time lies, amount, defect.
type Spec = (u8, u8, u8, Option<i32>, u8);

fn render(records: &[Spec], partitions: usize) -> Vec<Vec<Option<Vec<u8>>>> {
    let mut out = vec![Vec::new(); partitions];
    let mut clock = BASE;
    for &(key, step, back, amount, defect) in records {
        clock += [0, 0, 500, 1_000, 2_000, 3_000][step as usize % 6]; // ties are common
        let t = clock - [0, 0, 0, 500, 1_000, 2_000, 2_500, 4_000][back as usize % 8];
        let k = format!("key-{key}");
        let mut obj = serde_json::json!({"k": k, "t": t, "note": "x"});
        if let Some(a) = amount {
            obj["amount"] = a.into();
            obj["merchant"] = format!("m{}", a % 4).into(); // few merchants: repeats
        }
        let payload: Option<Vec<u8>> = match defect % 24 {
            0 => Some(b"{not json".to_vec()),
            1 => None,
            2 => {
                let mut b = obj.to_string().into_bytes();
                b.insert(3, 0xfe);
                Some(b)
            }
            3 => {
                obj.as_object_mut().unwrap().remove("k");
                Some(obj.to_string().into_bytes())
            }
            4 => {
                obj["amount"] = "lots".into();
                Some(obj.to_string().into_bytes())
            }
            5 => {
                obj["t"] = 631_152_000_000i64.into(); // 1990
                Some(obj.to_string().into_bytes())
            }
            6 => {
                obj["t"] = 4_102_444_800_000i64.into(); // 2100
                Some(obj.to_string().into_bytes())
            }
            7 => Some(b"[1,2]".to_vec()),
            _ => Some(obj.to_string().into_bytes()),
        };
        out[key as usize % partitions].push(payload);
    }
    out
}

/// (scores, dlq, closed windows)
type Outputs = (Vec<serde_json::Value>, Vec<serde_json::Value>, Vec<serde_json::Value>);

fn run(partitions: &[Vec<Option<Vec<u8>>>], workers: usize) -> Outputs {
    let sink = MemorySink::new();
    let topic = partitions.iter().map(|p| Arc::new(p.clone())).collect();
    run_local(&job(), &topic, workers, sink.clone(), Metrics::new()).unwrap();
    let (mut scores, mut dlq, mut windows) = (Vec::new(), Vec::new(), Vec::new());
    // Every score has its features record (written on arrival, before the score),
    // in the same order per key: scores and features records pair up first-in first-out.
    let mut pending: std::collections::HashMap<String, (std::collections::VecDeque<serde_json::Value>, std::collections::VecDeque<serde_json::Value>)> =
        Default::default();
    let mut pair = |v: serde_json::Value, is_score: bool| {
        let (scored, featured) = pending.entry(v["key"].as_str().unwrap().to_owned()).or_default();
        let (mine, other) = if is_score { (scored, featured) } else { (featured, scored) };
        match other.pop_front() {
            Some(o) => assert_eq!((&v["key"], &v["event_time"], &v["features"]), (&o["key"], &o["event_time"], &o["features"])),
            None => mine.push_back(v),
        }
    };
    for (topic, _key, payload) in sink.take() {
        if payload.is_empty() && topic == Topic::Features {
            continue; // a tombstone: the key left state
        }
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        match topic {
            Topic::Scores => {
                pair(v.clone(), true);
                scores.push(v)
            }
            Topic::Dlq => dlq.push(v),
            Topic::Features => pair(v, false),
            Topic::Shadow => panic!("this job has no shadow topic"),
            Topic::Windows => windows.push(v),
            Topic::Joins => panic!("this job has no joins"),
        }
    }
    drop(pair);
    assert!(pending.values().all(|(s, f)| s.is_empty() && f.is_empty()), "every score has its features record");
    (scores, dlq, windows)
}

/// Every closed window written, against the oracle's windows over the accepted
/// events (read back from the input at the scored offsets): each once, with its
/// final aggregate.
fn check_closed_windows(input: &[Vec<Option<Vec<u8>>>], scores: &[serde_json::Value], windows: &[serde_json::Value]) -> Result<(), String> {
    let accepted: Vec<(String, i64, Option<f64>)> = scores
        .iter()
        .map(|s| {
            let (p, o) = (s["source_partition"].as_u64().unwrap() as usize, s["source_offset"].as_u64().unwrap() as usize);
            let raw: serde_json::Value = serde_json::from_slice(input[p][o].as_deref().unwrap()).unwrap();
            (s["key"].as_str().unwrap().to_owned(), s["event_time"].as_i64().unwrap(), raw["amount"].as_f64())
        })
        .collect();
    for (name, agg, kind, size) in [
        ("sum_tumbling_4s", "sum", WindowKind::Tumbling, 4_000),
        ("max_hopping_6s", "max", WindowKind::Hopping { hop_ms: 2_000 }, 6_000),
        ("n_session", "count", WindowKind::Session { gap_ms: 1_500 }, 0),
    ] {
        let expected = common::closed_windows(agg, kind, size, &accepted);
        let mut got = std::collections::BTreeMap::new();
        for w in windows.iter().filter(|w| w["feature"] == name) {
            let at = (w["key"].as_str().unwrap().to_owned(), w["window_start"].as_i64().unwrap(), w["window_end"].as_i64().unwrap());
            if got.insert(at.clone(), w["value"].as_f64()).is_some() {
                return Err(format!("{name}: window {at:?} written twice"));
            }
            if w["window"] != kind.name() {
                return Err(format!("{name}: {w} is not a {} window", kind.name()));
            }
        }
        if got != expected {
            return Err(format!("{name}: closed windows {got:?}, oracle {expected:?}"));
        }
    }
    Ok(())
}

fn now_ms() -> i64 {
    (vigil::types::now_us() / 1000) as i64
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn features_match_the_naive_oracle(
        records in prop::collection::vec((0u8..6, 0u8..6, 0u8..8, prop::option::weighted(0.9, 0i32..100), 0u8..255), 0..150),
        partitions in 1usize..4,
        workers in 1usize..3,
    ) {
        let input = render(&records, partitions);
        let expected = oracle(&oracle_job(), &input, now_ms());
        let (scores, dlq, windows) = run(&input, workers);
        let got = observed(&scores, &dlq);
        if let Err(diff) = compare(&expected, &got) {
            prop_assert!(false, "{}", diff);
        }
        if let Err(diff) = check_closed_windows(&input, &scores, &windows) {
            prop_assert!(false, "{}", diff);
        }
    }
}

/// Hand-checked case: window boundaries and ties, in one partition.
#[test]
fn window_boundaries_are_half_open() {
    let rec = |t: i64, a: i32| Some(serde_json::json!({"k": "a", "t": BASE + t, "amount": a, "note": ""}).to_string().into_bytes());
    // times 0, 0 (tie), 3000 (exactly W=3s after 0: the 0s leave), 2999 (out of order, in lateness)
    let input = vec![vec![rec(0, 1), rec(0, 2), rec(3_000, 4), rec(2_999, 8)]];
    let (scores, dlq, _) = run(&input, 1);
    assert!(dlq.is_empty());
    let n3: Vec<f64> = scores.iter().map(|s| s["features"]["n_3s"].as_f64().unwrap()).collect();
    let sum3: Vec<f64> = scores.iter().map(|s| s["features"]["sum_3s"].as_f64().unwrap()).collect();
    assert_eq!(n3, vec![1.0, 2.0, 1.0, 3.0]);
    assert_eq!(sum3, vec![1.0, 3.0, 4.0, 11.0]);
    // the event at 2999 sees 0, 0 and itself, not the earlier-offset 3000 (which is in its future)
    let since: Vec<Option<f64>> = scores.iter().map(|s| s["features"]["since_prev"].as_f64()).collect();
    assert_eq!(since, vec![None, Some(0.0), Some(3.0), Some(-0.001)]);
}
