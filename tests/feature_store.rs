//! The online feature store: after a job has read its input, `GET /features/{key}`
//! answers every key with exactly the features of its latest scored event (the last
//! record for that key in `scores`, and in the `features` upsert topic),
//! `POST /features` answers a batch, unknown keys get 404 / null.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vigil::demo::broker::EmbeddedBroker;
use vigil::demo::fraud_job;
use vigil::demo::generator::GenConfig;
use vigil::demo::publish::{never, publish, PublishOptions, PublishProgress};
use vigil::kafka::read::read_topic;
use vigil::metrics::Metrics;
use vigil::run::{run_job, RunOptions};
use vigil::store::FeatureStore;
use vigil::types::Control;

fn http(addr: &str, request: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).unwrap().parse().unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

#[test]
fn lookups_return_each_keys_latest_features() {
    let broker = EmbeddedBroker::start(1).unwrap();
    for (t, p) in [("transactions", 8), ("scores", 8), ("dlq", 2), ("features", 8)] {
        broker.create_topic(t, p).unwrap();
    }
    let kafka = broker.kafka_options();
    let opts = PublishOptions { topic: "transactions".into(), labels_topic: None, logins_topic: None, events: 30_000, rate: None };
    publish(&kafka, GenConfig { bad_ratio: 0.01, ..GenConfig::default() }, &opts, &PublishProgress::default(), &never()).unwrap();

    let mut job = fraud_job();
    job.sinks.features = Some("features".into());
    let store = FeatureStore::new(job.features.iter().map(|f| f.name().to_owned()).collect());
    let metrics = Metrics::new();
    let addr = vigil::http::serve("127.0.0.1:0".parse().unwrap(), metrics.clone(), Some(store.clone())).unwrap().to_string();
    let run = RunOptions { until_end: true, store: Some(store.clone()), ..RunOptions::new(kafka.clone(), "store", 2) };
    run_job(job, &run, metrics, Control::new(), Arc::new(Mutex::new(None))).unwrap();

    // The latest score record of every key, in offset order.
    let mut latest: HashMap<String, (u32, i64, serde_json::Value)> = HashMap::new();
    for r in read_topic(&kafka, "scores", Duration::from_secs(60)).unwrap() {
        let v: serde_json::Value = serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap();
        let key = v["key"].as_str().unwrap().to_owned();
        let pos = (v["source_partition"].as_u64().unwrap() as u32, v["source_offset"].as_i64().unwrap());
        if latest.get(&key).is_none_or(|l| (l.0, l.1) < pos) {
            latest.insert(key, (pos.0, pos.1, v));
        }
    }
    assert_eq!(store.len(), latest.len());
    // The features topic's last record per key is the same vector (offset order).
    let mut upserts: HashMap<String, serde_json::Value> = HashMap::new();
    let mut count = 0;
    for r in read_topic(&kafka, "features", Duration::from_secs(60)).unwrap() {
        let v: serde_json::Value = serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap();
        assert_eq!(r.key.as_deref(), v["key"].as_str().map(str::as_bytes), "keyed by entity");
        upserts.insert(v["key"].as_str().unwrap().to_owned(), v);
        count += 1;
    }
    let scored: usize = read_topic(&kafka, "scores", Duration::from_secs(60)).unwrap().len();
    assert_eq!(count, scored, "one features record per score");
    assert_eq!(upserts.len(), latest.len());
    for (key, (_, _, score)) in &latest {
        assert_eq!(upserts[key]["features"], score["features"], "{key}");
        assert_eq!(upserts[key]["event_time"], score["event_time"]);
    }
    for (key, (_, _, score)) in latest.iter().take(300) {
        let (status, body) = http(&addr, &format!("GET /features/{key} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
        assert_eq!(status, 200, "{key}: {body}");
        let got: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(got["key"], score["key"]);
        assert_eq!(got["event_time"], score["event_time"]);
        assert_eq!(got["features"], score["features"], "{key}");
    }
    let (status, _) = http(&addr, "GET /features/no-such-card HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 404);

    let keys: Vec<&String> = latest.keys().take(50).collect();
    let mut ask: Vec<serde_json::Value> = keys.iter().map(|k| serde_json::Value::from(k.as_str())).collect();
    ask.push("no-such-card".into());
    let body = serde_json::json!({ "keys": ask }).to_string();
    let (status, answer) = http(
        &addr,
        &format!("POST /features HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()),
    );
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let features = answer["features"].as_array().unwrap();
    assert_eq!(features.len(), 51);
    for (k, f) in keys.iter().zip(features) {
        assert_eq!(f["features"], latest[*k].2["features"]);
    }
    assert!(features[50].is_null());
}

/// Keys that leave state (idle past their TTL) get a tombstone on the `features`
/// topic, so that the compacted topic holds what the store holds; a key that
/// comes back gets a new vector after its tombstone.
#[test]
fn expired_keys_get_tombstones_on_the_features_topic() {
    use vigil::output::{MemorySink, Topic};
    use vigil::spec::JobBuilder;
    let job = JobBuilder::new("ttl")
        .source_topic("in")
        .key_field("k")
        .event_time_field("t")
        .allowed_lateness(Duration::from_secs(0))
        .window_feature("n_1s", vigil_operators::Agg::Count, None, Duration::from_secs(1))
        .features_sink("features")
        .build()
        .unwrap();
    let t0 = 1_767_225_600_000i64;
    let rec = |k: &str, t: i64| Some(serde_json::json!({"k": k, "t": t}).to_string().into_bytes());
    // `old` and `back` once at the start; 70,000 events of 100 busy keys over
    // 70 s (a sweep every 65,536 events drops keys idle past the 1 s TTL); then
    // `back` once more
    let mut input = vec![rec("old", t0), rec("back", t0)];
    input.extend((0..70_000).map(|i| rec(&format!("busy-{}", i % 100), t0 + 10_000 + i)));
    input.push(rec("back", t0 + 80_000));
    let sink = MemorySink::new();
    vigil::local::run_local(&job, &vec![Arc::new(input)], 1, sink.clone(), Metrics::new()).unwrap();
    let mut per_key: HashMap<String, Vec<bool>> = HashMap::new(); // true: a tombstone
    for (topic, key, payload) in sink.take() {
        if topic == Topic::Features {
            per_key.entry(String::from_utf8(key).unwrap()).or_default().push(payload.is_empty());
        }
    }
    assert_eq!(per_key["old"], vec![false, true], "a vector, then its deletion");
    // deleted then a new vector, or (the sweep and its return in one batch)
    // never deleted: either way its last record is its vector
    let back = &per_key["back"];
    assert!(*back == [false, true, false] || *back == [false, false], "{back:?}");
    assert!(per_key["busy-7"].iter().all(|t| !t), "busy keys never expire");
}
