//! The DLQ test's records: every kind of bad record with its reason, and good
//! ones around them, for the job of [`job`]. Shared by the DLQ test and the JSON
//! decoders' differential test.
#![allow(dead_code)]

use std::time::Duration;

use vigil::spec::{FieldType, JobBuilder, JobSpec};
use vigil_operators::Agg;

pub const T: i64 = 1_767_225_600_000;

pub fn good(t: i64) -> Vec<u8> {
    serde_json::json!({"card": "c1", "ts": t, "amount": 5.0, "country": "DE"}).to_string().into_bytes()
}

/// The job the cases are written for (a 1,200-byte size limit).
pub fn job() -> JobSpec {
    JobBuilder::new("dlq")
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
        .unwrap()
}

/// Each record with the reason it must be dead-lettered for, or "ok".
pub fn cases() -> Vec<(&'static str, Option<Vec<u8>>)> {
    let huge = format!("{{\"card\":\"c1\",\"ts\":{T},\"amount\":1,\"country\":\"{}\"}}", "x".repeat(5_000));
    let deep = format!("{}1{}", "[".repeat(300), "]".repeat(300));
    let mut flood = format!("{{\"card\":\"c3\",\"ts\":{},\"amount\":1,\"country\":\"DE\"", T + 61_000);
    for i in 0..40 {
        flood.push_str(&format!(",\"f{i}\":{i}"));
    }
    flood.push('}');
    let deep_field = format!("{{\"card\":\"c1\",\"ts\":{T},\"amount\":1,\"country\":\"DE\",\"x\":{}0{}}}", "[".repeat(200), "]".repeat(200));
    vec![
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
        // JSON's own edges, where two parsers could disagree
        ("not_json", Some(format!(r#"{{"card":"c\ud800","ts":{},"amount":5,"country":"DE"}}"#, T + 61_000).into_bytes())), // lone surrogate
        ("not_json", Some(format!("{{\"card\":\"c\u{1}\",\"ts\":{},\"amount\":5,\"country\":\"DE\"}}", T + 61_000).into_bytes())), // raw control character
        ("not_json", Some(format!(r#"{{"card":"c1","ts":{},"amount":05,"country":"DE"}}"#, T + 61_000).into_bytes())),     // leading zero
        ("not_json", Some(format!(r#"{{"card":"c1","ts":{},"amount":5,"country":"DE"}} x"#, T + 61_000).into_bytes())),    // trailing characters
        ("not_json", Some(format!(r#"{{"card":"c1","ts":{},"amount":5,"country":"DE",}}"#, T + 61_000).into_bytes())),     // trailing comma
        ("ok", Some(format!(r#"{{"c\u0061rd":"c\ud83d\ude00\n","ts":{},"amount":-0,"country":"D\u00c9"}}"#, T + 61_000).into_bytes())), // escapes in names and values
        ("ok", Some(format!(" \n\t{{ \"card\" : \"c5\" ,\r\n\"ts\":{} , \"amount\" : 1.5e2 , \"country\":\"DE\" }}\n ", T + 61_000).into_bytes())), // whitespace everywhere
    ]
}
