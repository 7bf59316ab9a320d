//! Bad input never stops the job: each kind of bad record lands in the DLQ with its
//! reason, source position, original bytes (truncated past a limit) and hash, and
//! the good records around it are scored.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use sha2::Digest;
use vigil::local::run_local;
use vigil::metrics::Metrics;
use vigil::output::{MemorySink, Topic};
use vigil::spec::{FieldType, JobBuilder};
use vigil_operators::Agg;

const T: i64 = 1_767_225_600_000;

fn good(t: i64) -> Vec<u8> {
    serde_json::json!({"card": "c1", "ts": t, "amount": 5.0, "country": "DE"}).to_string().into_bytes()
}

#[test]
fn every_kind_of_bad_record_is_dead_lettered_with_its_reason() {
    let job = JobBuilder::new("dlq")
        .source_topic("tx")
        .key_field("card")
        .event_time_field("ts")
        .allowed_lateness(Duration::from_secs(5))
        .max_message_bytes(1_200)
        .optional_field("device", FieldType::Str)
        .field("amount", FieldType::F64)
        .field("country", FieldType::Str)
        .window_feature("n", Agg::Count, None, Duration::from_secs(60))
        .build()
        .unwrap();
    let huge = format!("{{\"card\":\"c1\",\"ts\":{T},\"amount\":1,\"country\":\"{}\"}}", "x".repeat(5_000));
    let deep = format!("{}1{}", "[".repeat(300), "]".repeat(300));
    let mut flood = format!("{{\"card\":\"c3\",\"ts\":{},\"amount\":1,\"country\":\"DE\"", T + 61_000);
    for i in 0..40 {
        flood.push_str(&format!(",\"f{i}\":{i}"));
    }
    flood.push('}');
    let deep_field = format!("{{\"card\":\"c1\",\"ts\":{T},\"amount\":1,\"country\":\"DE\",\"x\":{}0{}}}", "[".repeat(200), "]".repeat(200));
    let cases: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("ok", Some(good(T))),
        ("not_json", Some(b"hello".to_vec())),
        ("not_json", Some(br#"{"card":"c1","ts":1767225600000,"amount":5"#.to_vec())), // truncated
        ("not_object", Some(deep.into_bytes())),                                       // deep, but an array
        ("ok", Some(deep_field.into_bytes())),                                         // deep nesting in an unknown field is skipped without recursion
        ("not_json", Some(format!(r#"{{"card":"c1","ts":{T},"amount":1e999,"country":"DE"}}"#).into_bytes())),
        ("not_json", Some(format!(r#"{{"card":"c1","ts":{T},"amount":NaN,"country":"DE"}}"#).into_bytes())),
        ("empty", Some(Vec::new())),
        ("empty", None),
        ("invalid_utf8", Some(vec![b'{', 0xc3, 0x28, b'}'])),
        ("oversize", Some(huge.clone().into_bytes())),
        ("not_object", Some(b"[1,2,3]".to_vec())),
        ("not_object", Some(b"\"just a string\"".to_vec())),
        ("wrong_type", Some(format!(r#"{{"card":"c1","ts":{T},"amount":"5","country":"DE"}}"#).into_bytes())),
        ("wrong_type", Some(format!(r#"{{"card":{{"id":1}},"ts":{T},"amount":5,"country":"DE"}}"#).into_bytes())),
        ("wrong_type", Some(format!(r#"{{"card":"c1","ts":{T},"amount":5,"country":7}}"#).into_bytes())),
        ("missing_field", Some(format!(r#"{{"ts":{T},"amount":5,"country":"DE"}}"#).into_bytes())),
        ("missing_field", Some(format!(r#"{{"card":null,"ts":{T},"amount":5,"country":"DE"}}"#).into_bytes())),
        ("missing_field", Some(format!(r#"{{"card":"c1","ts":{T},"country":"DE"}}"#).into_bytes())),
        ("missing_field", Some(br#"{"card":"c1","amount":5,"country":"DE"}"#.to_vec())),
        ("duplicate_field", Some(format!(r#"{{"card":"c1","ts":{T},"amount":5,"amount":6,"country":"DE"}}"#).into_bytes())),
        ("bad_key", Some(format!(r#"{{"card":"","ts":{T},"amount":5,"country":"DE"}}"#).into_bytes())),
        ("bad_timestamp", Some(br#"{"card":"c1","ts":5,"amount":5,"country":"DE"}"#.to_vec())),
        ("bad_timestamp", Some(br#"{"card":"c1","ts":4102444800000,"amount":5,"country":"DE"}"#.to_vec())),
        ("bad_timestamp", Some(br#"{"card":"c1","ts":"yesterday","amount":5,"country":"DE"}"#.to_vec())),
        ("bad_timestamp", Some(br#"{"card":"c1","ts":true,"amount":5,"country":"DE"}"#.to_vec())),
        ("ok", Some(good(T + 60_000))),
        ("late", Some(good(T + 60_000 - 5_001))),
        ("ok", Some(format!(r#"{{"card":"c1","ts":"2026-01-01T00:01:00.500Z","amount":5,"country":"DE","extra":[1,{{"a":2}}]}}"#).into_bytes())),
        ("ok", Some(format!(r#"{{"card":42,"ts":{},"amount":5,"country":"DE"}}"#, T + 61_000).into_bytes())), // integer key
        ("not_json", Some(format!(r#"{{"card":"c1","ts":{T},"amount":Infinity,"country":"DE"}}"#).into_bytes())),
        ("not_json", Some(format!(r#"{{"card":"c1","ts":{T},"amount":-Infinity,"country":"DE"}}"#).into_bytes())),
        ("out_of_range", Some(format!(r#"{{"card":"c1","ts":{},"amount":1e300,"country":"DE"}}"#, T + 61_000).into_bytes())),
        ("out_of_range", Some(format!(r#"{{"card":"c1","ts":{},"amount":-123456789012345678,"country":"DE"}}"#, T + 61_000).into_bytes())),
        ("bad_timestamp", Some(br#"{"card":"c1","ts":99999999999999999999,"amount":5,"country":"DE"}"#.to_vec())),
        // a field that changes type mid-stream: the same field, now a string
        ("wrong_type", Some(format!(r#"{{"card":"c1","ts":{},"amount":{{"value":5}},"country":"DE"}}"#, T + 61_000).into_bytes())),
        // the schema gains fields (unknown, counted) and loses optional ones: accepted
        ("ok", Some(format!(r#"{{"card":"c2","ts":{},"amount":5,"country":"DE","device":"d1","promo":"x"}}"#, T + 61_000).into_bytes())),
        // a flood of distinct unknown field names: accepted, metrics stay capped
        ("ok", Some(flood.into_bytes())),
    ];
    let kinds: std::collections::BTreeSet<_> = cases.iter().map(|c| c.0).filter(|k| *k != "ok").collect();
    assert!(kinds.len() >= 8, "covers {} reasons", kinds.len());
    assert!(cases.len() >= 30, "{} hostile and edge records", cases.len());

    let input = vec![Arc::new(cases.iter().map(|c| c.1.clone()).collect::<Vec<_>>())];
    let sink = MemorySink::new();
    let metrics = Metrics::new();
    run_local(&job, &input, 1, sink.clone(), metrics.clone()).unwrap();
    let out = sink.take();
    let mut by_offset = std::collections::HashMap::new();
    for (topic, _, payload) in &out {
        let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
        let prev = by_offset.insert(v["source_offset"].as_i64().unwrap(), (*topic, v));
        assert!(prev.is_none(), "one output per input");
    }
    assert_eq!(by_offset.len(), cases.len());
    for (offset, (want, payload)) in cases.iter().enumerate() {
        let (topic, v) = &by_offset[&(offset as i64)];
        if *want == "ok" {
            assert_eq!(*topic, Topic::Scores, "offset {offset}: {v}");
            continue;
        }
        assert_eq!(*topic, Topic::Dlq, "offset {offset} should be dead-lettered: {v}");
        assert_eq!(v["reason"], *want, "offset {offset}: {v}");
        assert_eq!(v["source_topic"], "tx");
        assert_eq!(v["source_partition"], 0);
        let original = payload.clone().unwrap_or_default();
        assert_eq!(v["payload_len"], original.len());
        assert_eq!(v["payload_sha256"].as_str().unwrap(), format!("{:x}", sha2::Sha256::digest(&original)));
        let kept = base64::engine::general_purpose::STANDARD.decode(v["payload_b64"].as_str().unwrap()).unwrap();
        assert!(original.starts_with(&kept) && kept.len() == original.len().min(vigil::output::DLQ_PAYLOAD_LIMIT));
        assert!(!v["detail"].as_str().unwrap().is_empty());
    }
    // the metrics agree with the topic
    let text = metrics.render();
    for reason in &kinds {
        let n = cases.iter().filter(|c| c.0 == *reason).count();
        assert!(text.contains(&format!("vigil_dlq_total{{reason=\"{reason}\"}} {n}")), "{reason}: {text}");
    }
    assert!(text.contains("vigil_unknown_fields_total{field=\"extra\"} 1"), "{text}");
    assert!(text.contains("vigil_unknown_fields_total{field=\"f39\"} 1"), "{text}");
}

#[test]
fn random_bytes_never_panic_the_decoder() {
    use proptest::prelude::*;
    let job = JobBuilder::new("fuzz").key_field("k").event_time_field("t").field("a", FieldType::F64).optional_field("s", FieldType::Str).build().unwrap();
    let decoder = vigil::decode::Decoder::new(&job);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 20_000, ..ProptestConfig::default() });
    // raw bytes, and JSON-ish text built from the characters that matter
    let bytes = prop::collection::vec(any::<u8>(), 0..300);
    let jsonish = prop::collection::vec(prop::sample::select(br#"{}[]":,0123456789.eE+-ktasnul\ "#.to_vec()), 0..200);
    for strategy in [bytes.boxed(), jsonish.boxed()] {
        runner
            .run(&strategy, |b| {
                let _ = decoder.decode(Some(&b), &mut |_| {});
                Ok(())
            })
            .unwrap();
    }
}
