//! Bad input never stops the job: each kind of bad record lands in the DLQ with its
//! reason, source position, original bytes (truncated past a limit) and hash, and
//! the good records around it are scored.

#[path = "support/dlq_cases.rs"]
mod dlq_cases;

use std::sync::Arc;

use base64::Engine;
use sha2::Digest;
use vigil::local::run_local;
use vigil::metrics::Metrics;
use vigil::output::{MemorySink, Topic};
use vigil::spec::{FieldType, JobBuilder};

#[test]
fn every_kind_of_bad_record_is_dead_lettered_with_its_reason() {
    let job = dlq_cases::job();
    let cases = dlq_cases::cases();
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
