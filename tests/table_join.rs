//! Stream-table joins on the embedded broker: tables kept from compacted topics
//! (upserts, tombstone deletes, malformed records skipped) enrich the fraud job's
//! events, by the event key (cards) and by a string field (merchants).
//! - bootstrap: the table topics are read to their end before the first event is
//!   scored, so every score carries the final state of its rows;
//! - live: an update or delete published while the job runs is seen by the events
//!   scored after it, and never changes a score written before it.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use vigil::demo::broker::EmbeddedBroker;
use vigil::demo::generator::GenConfig;
use vigil::demo::publish::{never, publish, PublishOptions, PublishProgress};
use vigil::kafka::read::read_topic;
use vigil::kafka::KafkaOptions;
use vigil::metrics::Metrics;
use vigil::run::{run_job, RunOptions};
use vigil::spec::JobSpec;
use vigil::types::Control;

fn job() -> JobSpec {
    let base = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/fraud_job.toml")).unwrap();

    JobSpec::from_toml(&(base + common::TABLE_LOOKUPS)).unwrap()
}

/// Key -> payload (None: tombstone), in order.
type Records = Vec<(String, Option<String>)>;

fn produce(kafka: &KafkaOptions, topic: &str, records: &Records) {
    let producer: BaseProducer = kafka.client_config_with(&[]).create().unwrap();
    for (k, v) in records {
        let mut r = BaseRecord::to(topic).key(k.as_bytes());
        if let Some(v) = v {
            r = r.payload(v.as_bytes());
        }
        producer.send(r).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// What the table must hold after `records`: the last valid write per key.
fn replay(records: &Records, column: &str) -> HashMap<String, Option<f64>> {
    let mut table: HashMap<String, Option<f64>> = HashMap::new();
    for (k, v) in records {
        match v {
            None => {
                table.remove(k);
            }
            Some(text) => {
                let Ok(serde_json::Value::Object(o)) = serde_json::from_str::<serde_json::Value>(text) else { continue };
                if o.values().any(|v| !v.is_number() && !v.is_null()) {
                    continue; // a column of the wrong type: the record is skipped
                }
                table.insert(k.clone(), o.get(column).and_then(|v| v.as_f64()));
            }
        }
    }
    table
}

fn card_records() -> Records {
    let mut r: Records = Vec::new();
    for i in 0..5000 {
        r.push((format!("c-{i:06}"), Some(format!(r#"{{"limit": {i}, "tier": {}}}"#, i % 3))));
    }
    for i in (0..5000).step_by(5) {
        r.push((format!("c-{i:06}"), Some(format!(r#"{{"limit": {}}}"#, 1000 + i))));
        // overwrite, no tier
    }
    for i in (0..5000).step_by(7) {
        r.push((format!("c-{i:06}"), None)); // delete
    }
    for i in (0..5000).step_by(11) {
        r.push((format!("c-{i:06}"), Some("oops".into()))); // not JSON: skipped
    }
    for i in (0..5000).step_by(13) {
        r.push((format!("c-{i:06}"), Some(r#"{"limit": "high"}"#.into()))); // wrong type: skipped
    }
    for i in (0..5000).step_by(14) {
        r.push((format!("c-{i:06}"), Some(format!(r#"{{"limit": {}, "tier": 9}}"#, 2000 + i))));
        // back after the delete
    }
    r
}

fn merchant_records() -> Records {
    let mut r: Records = (0..200).map(|i| (format!("m-{i:05}"), Some(format!(r#"{{"risk": {}}}"#, i % 10)))).collect();
    r.extend((0..200).step_by(3).map(|i| (format!("m-{i:05}"), None)));
    r
}

#[test]
fn tables_bootstrap_then_follow_upserts_and_deletes() {
    let broker = EmbeddedBroker::start(1).unwrap();
    for (t, p) in [("transactions", 4), ("scores", 4), ("dlq", 2), ("card_profiles", 3), ("merchant_risk", 2)] {
        broker.create_topic(t, p).unwrap();
    }
    let kafka = broker.kafka_options();
    let (cards, merchants) = (card_records(), merchant_records());
    produce(&kafka, "card_profiles", &cards);
    produce(&kafka, "merchant_risk", &merchants);
    let opts = PublishOptions { topic: "transactions".into(), labels_topic: None, logins_topic: None, events: 20_000, rate: None };
    publish(&kafka, GenConfig::default(), &opts, &PublishProgress::default(), &never()).unwrap();

    // bootstrap: a bounded run over the published events
    let metrics = Metrics::new();
    run_job(job(), &RunOptions { until_end: true, ..RunOptions::new(kafka.clone(), "tables", 2) }, metrics.clone(), Control::new(), Arc::new(Mutex::new(None)))
        .unwrap();
    let (limit, tier, risk) = (replay(&cards, "limit"), replay(&cards, "tier"), replay(&merchants, "risk"));
    let rejected = metrics.table_records.with_label_values(&["cards", "rejected"]).get();
    assert_eq!(rejected, (0..5000).step_by(11).count() as u64 + (0..5000).step_by(13).count() as u64);
    assert_eq!(metrics.table_rows.with_label_values(&["cards"]).get(), limit.len() as i64);
    let scores = read_topic(&kafka, "scores", Duration::from_secs(60)).unwrap();
    let raw: HashMap<String, serde_json::Value> = read_topic(&kafka, "transactions", Duration::from_secs(60))
        .unwrap()
        .iter()
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(r.payload.as_deref()?).ok())
        .map(|v| (v["event_id"].as_str().unwrap_or_default().to_owned(), v))
        .collect();
    let (mut with_card, mut with_merchant) = (0, 0);
    for s in &scores {
        let v: serde_json::Value = serde_json::from_slice(s.payload.as_deref().unwrap()).unwrap();
        let card = v["key"].as_str().unwrap();
        let f = &v["features"];
        assert_eq!(f["card_limit"].as_f64(), limit.get(card).copied().flatten(), "{card}");
        assert_eq!(f["card_tier"].as_f64(), tier.get(card).copied().flatten(), "{card}");
        let merchant = raw[v["event_id"].as_str().unwrap()]["merchant"].as_str().unwrap();
        assert_eq!(f["merchant_risk"].as_f64(), risk.get(merchant).copied().flatten(), "{merchant}");
        with_card += f["card_limit"].is_number() as usize;
        with_merchant += f["merchant_risk"].is_number() as usize;
    }
    assert!(with_card > 500 && with_merchant > 500, "the tables matched events: {with_card} by card, {with_merchant} by merchant");
    // a card with a row and several scored events: the live phase deletes its row
    let mut per_card: HashMap<String, usize> = HashMap::new();
    for s in &scores {
        let v: serde_json::Value = serde_json::from_slice(s.payload.as_deref().unwrap()).unwrap();
        if v["features"]["card_limit"].is_number() {
            *per_card.entry(v["key"].as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    let target = per_card.iter().max_by_key(|(k, n)| (**n, (*k).clone())).map(|(k, _)| k.clone()).unwrap();

    // live: the job runs on; table changes are seen by the events scored after them
    let metrics = Metrics::new();
    let control = Control::new();
    let runner = {
        let (kafka, metrics, control) = (kafka.clone(), metrics.clone(), control.clone());
        std::thread::spawn(move || run_job(job(), &RunOptions::new(kafka, "tables-live", 1), metrics, control, Arc::new(Mutex::new(None))))
    };
    let wait = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // the live job rescores the published events first (its group has no offsets yet)
    let n1 = scores.len() as u64;
    wait("the rescoring", &|| metrics.scores_out.get() >= n1);
    let upserts = metrics.table_records.with_label_values(&["cards", "upsert"]).get();
    let changes: Records = vec![("c-999990".into(), Some(r#"{"limit": 77, "tier": 1}"#.into())), (target.clone(), None)];
    produce(&kafka, "card_profiles", &changes);
    wait("the table update", &|| {
        metrics.table_records.with_label_values(&["cards", "upsert"]).get() > upserts && metrics.table_records.with_label_values(&["cards", "delete"]).get() > 0
    });
    let event = |id: &str, card: &str| {
        (
            card.to_string(),
            Some(format!(r#"{{"event_id": "{id}", "card_id": "{card}", "ts": {}, "amount": 12.5, "merchant": "m-00001", "country": "DE"}}"#, now_ms())),
        )
    };
    produce(&kafka, "transactions", &vec![event("live-1", "c-999990"), event("live-2", &target)]);
    wait("the live events' scores", &|| metrics.scores_out.get() >= n1 + 2);
    control.request_shutdown();
    runner.join().unwrap().unwrap();
    let scores = read_topic(&kafka, "scores", Duration::from_secs(60)).unwrap();
    let live: HashMap<String, serde_json::Value> = scores
        .iter()
        .map(|s| serde_json::from_slice::<serde_json::Value>(s.payload.as_deref().unwrap()).unwrap())
        .filter(|v| v["event_id"].as_str().is_some_and(|id| id.starts_with("live-")))
        .map(|v| (v["event_id"].as_str().unwrap().to_owned(), v))
        .collect();
    assert_eq!(live["live-1"]["features"]["card_limit"].as_f64(), Some(77.0), "an upsert seen by a later event");
    assert_eq!(live["live-2"]["features"]["card_limit"].as_f64(), None, "a delete seen by a later event");
    // the earlier scores of the deleted card (both runs, before the delete) keep the value they were scored with
    let earlier: Vec<serde_json::Value> = scores
        .iter()
        .map(|s| serde_json::from_slice::<serde_json::Value>(s.payload.as_deref().unwrap()).unwrap())
        .filter(|v| v["key"] == target.as_str() && !v["event_id"].as_str().unwrap().starts_with("live-"))
        .collect();
    assert!(earlier.len() >= 2 * per_card[&target], "{target}: {} earlier scores", earlier.len());
    assert!(earlier.iter().all(|v| v["features"]["card_limit"].as_f64() == limit[&target] && limit[&target].is_some()));
}

fn now_ms() -> i64 {
    (vigil::types::now_us() / 1000) as i64
}
