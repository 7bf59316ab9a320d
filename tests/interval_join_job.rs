//! Property test: interval joins through the whole job (decode, watermarks,
//! exchange by key, joins, the `joins` topic) on random streams with one and two
//! workers and several partitions, against a naive oracle over the accepted
//! events: every pair within the interval exactly once, and (left outer join)
//! every left event without a match once, with the events' times, fields and the
//! delay between them. Streams have out-of-order events, ties, pairs exactly on
//! the bounds, late and malformed records (the DLQ's, never joined), and events
//! without the `on` field.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{oracle, Expected, OracleJob};
use proptest::prelude::*;
use vigil::local::run_local;
use vigil::metrics::Metrics;
use vigil::output::{MemorySink, Topic};
use vigil::spec::{FieldType, IntervalJoinDecl, JobBuilder, JobSpec};
use vigil_operators::Agg;

const BASE: i64 = 1_767_225_600_000; // 2026-01-01

fn job() -> JobSpec {
    JobBuilder::new("joins")
        .source_topic("in")
        .key_field("k")
        .event_time_field("t")
        .event_id_field("id")
        .allowed_lateness(Duration::from_millis(2_000))
        .field("action", FieldType::Str)
        .optional_field("video", FieldType::Str)
        .optional_field("watch", FieldType::F64)
        .window_feature("n_3s", Agg::Count, None, Duration::from_secs(3))
        .interval_join(
            IntervalJoinDecl::new("like_after_view").left("action", "view").right("action", "like").between_ms(-1_000, 3_000).on("video").emit_unmatched(),
        )
        .interval_join(IntervalJoinDecl::new("repeat_within_1s").within(Duration::from_secs(1)))
        .joins_sink("joins")
        .build()
        .unwrap()
}

/// One generated record: key, clock step, how far back its time lies, action, video, defect.
type Spec = (u8, u8, u8, u8, Option<u8>, u8);

fn render(records: &[Spec], partitions: usize) -> Vec<Vec<Option<Vec<u8>>>> {
    let mut out = vec![Vec::new(); partitions];
    let mut clock = BASE;
    for (i, &(key, step, back, action, video, defect)) in records.iter().enumerate() {
        clock += [0, 0, 500, 1_000, 2_000, 3_000][step as usize % 6]; // ties are common
        let t = clock - [0, 0, 0, 500, 1_000, 2_000, 2_500, 4_000][back as usize % 8];
        let action = ["view", "like", "share"][action as usize % 3];
        let mut obj = serde_json::json!({"k": format!("key-{key}"), "t": t, "id": format!("e{i}"), "action": action, "watch": i});
        if let Some(v) = video {
            obj["video"] = format!("v{}", v % 2).into();
        }
        let payload = match defect % 16 {
            0 => Some(b"{not json".to_vec()),
            1 => None,
            2 => {
                obj["t"] = 631_152_000_000i64.into(); // 1990
                Some(obj.to_string().into_bytes())
            }
            _ => Some(obj.to_string().into_bytes()),
        };
        out[key as usize % partitions].push(payload);
    }
    out
}

/// An accepted event as the oracle sees it.
struct Accepted {
    at: (u32, i64),
    key: String,
    time: i64,
    action: String,
    video: Option<String>,
    watch: f64,
}

/// (join, key, left (partition, offset), right (partition, offset) or none)
type Row = (String, String, (u32, i64), Option<(u32, i64)>);

fn expected_rows(input: &[Vec<Option<Vec<u8>>>]) -> (Vec<Row>, HashMap<(u32, i64), Accepted>) {
    let oracle_job = OracleJob {
        key: "k".into(),
        numeric: vec!["watch".into()],
        time: "t".into(),
        lateness_ms: 2_000,
        max_bytes: 64 * 1024,
        max_future_ms: 3_600_000,
        features: vec![],
    };
    let verdicts = oracle(&oracle_job, input, (vigil::types::now_us() / 1000) as i64);
    let mut accepted: Vec<Accepted> = Vec::new();
    for ((p, o), verdict) in verdicts {
        if let Expected::Scored(_) = verdict {
            let raw: serde_json::Value = serde_json::from_slice(input[p as usize][o as usize].as_deref().unwrap()).unwrap();
            accepted.push(Accepted {
                at: (p, o),
                key: raw["k"].as_str().unwrap().to_owned(),
                time: raw["t"].as_i64().unwrap(),
                action: raw["action"].as_str().unwrap().to_owned(),
                video: raw["video"].as_str().map(str::to_owned),
                watch: raw["watch"].as_f64().unwrap(),
            });
        }
    }
    let mut rows = Vec::new();
    for l in &accepted {
        // like_after_view: right - left in [-1s, 3s], same video (present), left outer
        if l.action == "view" {
            let mut matched = false;
            for r in accepted.iter().filter(|r| r.key == l.key && r.action == "like" && l.video.is_some() && r.video == l.video) {
                if (-1_000..=3_000).contains(&(r.time - l.time)) {
                    rows.push(("like_after_view".to_owned(), l.key.clone(), l.at, Some(r.at)));
                    matched = true;
                }
            }
            if !matched {
                rows.push(("like_after_view".to_owned(), l.key.clone(), l.at, None));
            }
        }
        // repeat_within_1s: any two events of the key, the second within [0, 1s] (itself too)
        for r in accepted.iter().filter(|r| r.key == l.key && (0..=1_000).contains(&(r.time - l.time))) {
            rows.push(("repeat_within_1s".to_owned(), l.key.clone(), l.at, Some(r.at)));
        }
    }
    rows.sort();
    (rows, accepted.into_iter().map(|a| (a.at, a)).collect())
}

fn run(input: &[Vec<Option<Vec<u8>>>], workers: usize) -> Vec<serde_json::Value> {
    let sink = MemorySink::new();
    let topic = input.iter().map(|p| Arc::new(p.clone())).collect();
    run_local(&job(), &topic, workers, sink.clone(), Metrics::new()).unwrap();
    let mut joins = Vec::new();
    for (topic, key, payload) in sink.take() {
        if topic == Topic::Joins {
            let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
            assert_eq!(v["key"].as_str().unwrap().as_bytes(), &key[..], "joins are keyed by the entity key");
            joins.push(v);
        }
    }
    joins
}

fn check(input: &[Vec<Option<Vec<u8>>>], workers: usize) -> Result<(), TestCaseError> {
    let (want, accepted) = expected_rows(input);
    let joins = run(input, workers);
    let at = |side: &serde_json::Value| (side["source_partition"].as_u64().unwrap() as u32, side["source_offset"].as_i64().unwrap());
    let mut got: Vec<Row> = Vec::new();
    for j in &joins {
        let left = at(&j["left"]);
        let right = (!j["right"].is_null()).then(|| at(&j["right"]));
        prop_assert_eq!(j["matched"].as_bool(), Some(right.is_some()));
        for (side, pos) in [(&j["left"], Some(left)), (&j["right"], right)] {
            let Some(pos) = pos else { continue };
            let a = accepted.get(&pos).ok_or_else(|| TestCaseError::fail(format!("{j}: not an accepted event")))?;
            prop_assert_eq!(side["event_time"].as_i64(), Some(a.time));
            prop_assert_eq!(side["fields"]["watch"].as_f64(), Some(a.watch));
            let id = format!("e{}", a.watch);
            prop_assert_eq!(side["event_id"].as_str(), Some(id.as_str()));
        }
        if let Some(r) = right {
            prop_assert_eq!(j["delay_ms"].as_i64(), Some(accepted[&r].time - accepted[&left].time));
        }
        got.push((j["join"].as_str().unwrap().to_owned(), j["key"].as_str().unwrap().to_owned(), left, right));
    }
    got.sort();
    prop_assert_eq!(got, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn joins_through_the_job_match_the_oracle(
        records in prop::collection::vec((0u8..4, 0u8..6, 0u8..8, 0u8..3, prop::option::weighted(0.85, 0u8..2), 0u8..255), 0..150),
        partitions in 1usize..4,
        workers in 1usize..3,
    ) {
        let input = render(&records, partitions);
        check(&input, workers)?;
    }
}

/// Hand-checked: the bounds are inclusive, the `on` field must agree, and a view
/// without a like is written once, unmatched.
#[test]
fn bounds_and_unmatched_views() {
    let rec = |t: i64, action: &str, video: &str, watch: i64| {
        Some(serde_json::json!({"k": "u", "t": BASE + t, "id": format!("e{watch}"), "action": action, "video": video, "watch": watch}).to_string().into_bytes())
    };
    let input = vec![vec![
        rec(0, "view", "a", 0),     // liked at 3000 (the upper bound)
        rec(3_000, "like", "a", 1), //
        rec(5_000, "view", "b", 2), // the like at 4000 is 1000 before it: the lower bound
        rec(4_000, "like", "b", 3), //
        rec(9_000, "view", "a", 4), // the like at 12001 is too late; the one at 10000 is for `b`
        rec(10_000, "like", "b", 5),
        rec(12_001, "like", "a", 6),
    ]];
    let joins = run(&input, 1);
    let views: Vec<(i64, Option<i64>)> = joins
        .iter()
        .filter(|j| j["join"] == "like_after_view")
        .map(|j| (j["left"]["source_offset"].as_i64().unwrap(), j["right"]["source_offset"].as_i64()))
        .collect();
    assert_eq!(views, vec![(1 - 1, Some(1)), (2, Some(3)), (4, None)]);
    check(&input, 2).unwrap();
}
