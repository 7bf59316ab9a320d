//! The output contracts: JSON encoders for `scores` and `dlq` records (DESIGN.md),
//! and the sink that carries them away.
//!
//! Encoders write into a reused buffer; they are on the hot path (one per event).

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::types::Rejection;

pub mod avro;

/// Which output topic a record belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    Scores,
    Dlq,
    /// The optional `features` topic.
    Features,
    /// The optional shadow topic (challengers' scores).
    Shadow,
    /// The optional topic of closed windows (features that emit on close).
    Windows,
    /// The optional topic of the interval joins' output.
    Joins,
}

/// Where workers hand finished records, with the checkpoint epoch of the input
/// they come from. Implementations must not block for long: the Kafka sink
/// enqueues into librdkafka's buffer. An empty payload is a tombstone (a record
/// with a null value: on a compacted topic, the key's deletion).
pub trait OutputSink: Send + Sync {
    fn send(&self, topic: Topic, key: &[u8], payload: &[u8], epoch: u64);
}

/// A sink that keeps records in memory (tests, benchmarks, examples).
#[derive(Default)]
pub struct MemorySink {
    records: Mutex<Vec<(Topic, Vec<u8>, Vec<u8>)>>,
}

impl MemorySink {
    pub fn new() -> Arc<Self> {
        Arc::new(MemorySink::default())
    }
    /// Takes every record sent so far.
    pub fn take(&self) -> Vec<(Topic, Vec<u8>, Vec<u8>)> {
        std::mem::take(&mut *self.records.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl OutputSink for MemorySink {
    fn send(&self, topic: Topic, key: &[u8], payload: &[u8], _epoch: u64) {
        self.records.lock().unwrap_or_else(|e| e.into_inner()).push((topic, key.to_vec(), payload.to_vec()));
    }
}

/// A sink that counts and drops (throughput benchmarks of the compute path).
#[derive(Default)]
pub struct NullSink;

impl OutputSink for NullSink {
    fn send(&self, _: Topic, _: &[u8], _: &[u8], _: u64) {}
}

/// Where a score came from, for the `scores` record.
pub struct ScoreContext<'a> {
    pub event_id: Option<&'a str>,
    pub key: &'a str,
    pub event_time_ms: i64,
    pub partition: u32,
    pub offset: i64,
    pub score: f64,
}

/// Encodes `scores` records for one job: the parts that never change (topic, model,
/// feature names) are escaped once, up front.
pub struct ScoreEncoder {
    topic: String,
    /// `,"model":"..","model_version":"..","features":{`
    model_part: Vec<u8>,
    /// `"name":` per feature, JSON-escaped.
    feature_keys: Vec<Vec<u8>>,
}

impl ScoreEncoder {
    pub fn new(topic: &str, model: &str, model_version: &str, feature_names: &[String]) -> Self {
        let mut model_part = b",\"model\":".to_vec();
        write_str(&mut model_part, model);
        model_part.extend_from_slice(b",\"model_version\":");
        write_str(&mut model_part, model_version);
        model_part.extend_from_slice(b",\"features\":{");
        let feature_keys = feature_names
            .iter()
            .map(|n| {
                let mut k = Vec::new();
                write_str(&mut k, n);
                k.push(b':');
                k
            })
            .collect();
        ScoreEncoder { topic: topic.to_owned(), model_part, feature_keys }
    }

    /// Writes one `scores` record into `buf`: `{"event_id","key","event_time",
    /// "source_partition","source_offset","score","model","model_version","features":{..}}`.
    /// Missing feature values (and any non-finite value) are written as `null`.
    /// Changes the `model` and `model_version` written from now on.
    pub fn set_model(&mut self, model: &str, model_version: &str) {
        let mut model_part = b",\"model\":".to_vec();
        write_str(&mut model_part, model);
        model_part.extend_from_slice(b",\"model_version\":");
        write_str(&mut model_part, model_version);
        model_part.extend_from_slice(b",\"features\":{");
        self.model_part = model_part;
    }

    pub fn encode(&self, buf: &mut Vec<u8>, ctx: &ScoreContext<'_>, values: &[Option<f64>]) {
        buf.clear();
        buf.extend_from_slice(b"{\"event_id\":");
        match ctx.event_id {
            Some(id) => write_str(buf, id),
            None => {
                let _ = write!(buf, "\"{}-{}-{}\"", self.topic, ctx.partition, ctx.offset);
            }
        }
        buf.extend_from_slice(b",\"key\":");
        write_str(buf, ctx.key);
        let _ = write!(buf, ",\"event_time\":{},\"source_partition\":{},\"source_offset\":{},\"score\":", ctx.event_time_ms, ctx.partition, ctx.offset);
        write_f64(buf, Some(ctx.score));
        buf.extend_from_slice(&self.model_part);
        for (i, (key, value)) in self.feature_keys.iter().zip(values).enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(key);
            write_f64(buf, *value);
        }
        buf.extend_from_slice(b"}}");
    }
}

/// Writes one closed window into `buf`: `{"key","feature","window","window_start","window_end","value","count"}`
/// (times in epoch ms; `window_end` exclusive: a session's last event plus the gap).
/// The shadow topic's record: `{"event_id", "key", "event_time", "model",
/// "served_version", "challengers": [{"version", "score"}]}`, the scores of
/// every variant but the served one.
pub fn encode_shadow<'a>(
    buf: &mut Vec<u8>,
    event_id: Option<&str>,
    key: &str,
    event_time: i64,
    model: &str,
    served_version: &str,
    challengers: impl Iterator<Item = (&'a str, f32)>,
) {
    #[derive(Serialize)]
    struct Challenger<'a> {
        version: &'a str,
        score: f32,
    }
    #[derive(Serialize)]
    struct Shadow<'a> {
        event_id: Option<&'a str>,
        key: &'a str,
        event_time: i64,
        model: &'a str,
        served_version: &'a str,
        challengers: Vec<Challenger<'a>>,
    }
    buf.clear();
    let challengers = challengers.map(|(version, score)| Challenger { version, score }).collect();
    let record = Shadow { event_id, key, event_time, model, served_version, challengers };
    let _ = serde_json::to_writer(&mut *buf, &record);
}

pub fn encode_window(buf: &mut Vec<u8>, key: &str, feature: &str, kind: &str, start: i64, end: i64, value: Option<f64>, count: u64) {
    buf.clear();
    buf.extend_from_slice(b"{\"key\":");
    write_str(buf, key);
    buf.extend_from_slice(b",\"feature\":");
    write_str(buf, feature);
    buf.extend_from_slice(b",\"window\":");
    write_str(buf, kind);
    let _ = write!(buf, ",\"window_start\":{start},\"window_end\":{end},\"value\":");
    write_f64(buf, value);
    let _ = write!(buf, ",\"count\":{count}}}");
}

/// Writes one `joins` record: `{"join","key","matched","delay_ms","left":{..},"right":{..}|null}`,
/// each side `{"event_id","event_time","source_partition","source_offset","fields":{..}}`
/// with the event's numeric fields (`fields` names them, in order).
pub fn encode_join(
    buf: &mut Vec<u8>,
    join: &str,
    key: &str,
    left: &vigil_operators::interval_join::JoinRecord,
    right: Option<&vigil_operators::interval_join::JoinRecord>,
    fields: &[String],
) {
    let side = |buf: &mut Vec<u8>, r: &vigil_operators::interval_join::JoinRecord| {
        buf.extend_from_slice(b"{\"event_id\":");
        match &r.event_id {
            Some(id) => write_str(buf, id),
            None => buf.extend_from_slice(b"null"),
        }
        let _ = write!(buf, ",\"event_time\":{},\"source_partition\":{},\"source_offset\":{},\"fields\":{{", r.time, r.partition, r.offset);
        for (i, (name, v)) in fields.iter().zip(&r.values).enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            write_str(buf, name);
            buf.push(b':');
            write_f64(buf, Some(*v));
        }
        buf.extend_from_slice(b"}}");
    };
    buf.clear();
    buf.extend_from_slice(b"{\"join\":");
    write_str(buf, join);
    buf.extend_from_slice(b",\"key\":");
    write_str(buf, key);
    match right {
        Some(r) => {
            let _ = write!(buf, ",\"matched\":true,\"delay_ms\":{},\"left\":", r.time - left.time);
            side(buf, left);
            buf.extend_from_slice(b",\"right\":");
            side(buf, r);
        }
        None => {
            buf.extend_from_slice(b",\"matched\":false,\"delay_ms\":null,\"left\":");
            side(buf, left);
            buf.extend_from_slice(b",\"right\":null");
        }
    }
    buf.push(b'}');
}

fn write_str(buf: &mut Vec<u8>, s: &str) {
    // serde_json escapes correctly; writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, s);
}

fn write_f64(buf: &mut Vec<u8>, v: Option<f64>) {
    match v {
        Some(v) if v.is_finite() => {
            let _ = serde_json::to_writer(&mut *buf, &v);
        }
        _ => buf.extend_from_slice(b"null"),
    }
}

impl ScoreEncoder {
    /// Writes one `features` record into `buf`: `{"key","event_time","features":{..}}`.
    pub fn encode_features(&self, buf: &mut Vec<u8>, key: &str, event_time_ms: i64, values: &[Option<f64>]) {
        buf.clear();
        buf.extend_from_slice(b"{\"key\":");
        write_str(buf, key);
        let _ = write!(buf, ",\"event_time\":{event_time_ms},\"features\":{{");
        for (i, (k, value)) in self.feature_keys.iter().zip(values).enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(k);
            write_f64(buf, *value);
        }
        buf.extend_from_slice(b"}}");
    }
}

/// Payload bytes kept in a DLQ record, beyond which the payload is truncated.
pub const DLQ_PAYLOAD_LIMIT: usize = 4096;

/// A `dlq` record.
#[derive(Serialize)]
pub struct DlqRecord<'a> {
    pub source_topic: &'a str,
    pub source_partition: u32,
    pub source_offset: i64,
    pub reason: &'static str,
    pub detail: &'a str,
    /// The original bytes, base64, cut at [`DLQ_PAYLOAD_LIMIT`] bytes.
    pub payload_b64: String,
    /// Full length of the original payload.
    pub payload_len: usize,
    /// SHA-256 of the full original payload, hex.
    pub payload_sha256: String,
    pub payload_truncated: bool,
}

/// Encodes the DLQ record for a rejected payload.
pub fn encode_dlq(topic: &str, partition: u32, offset: i64, payload: Option<&[u8]>, rejection: &Rejection) -> Vec<u8> {
    let payload = payload.unwrap_or_default();
    let kept = &payload[..payload.len().min(DLQ_PAYLOAD_LIMIT)];
    let detail: String = rejection.detail.chars().take(512).collect();
    let record = DlqRecord {
        source_topic: topic,
        source_partition: partition,
        source_offset: offset,
        reason: rejection.reason.as_str(),
        detail: &detail,
        payload_b64: base64::engine::general_purpose::STANDARD.encode(kept),
        payload_len: payload.len(),
        payload_sha256: hex(&Sha256::digest(payload)),
        payload_truncated: kept.len() < payload.len(),
    };
    serde_json::to_vec(&record).unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Reason;

    #[test]
    fn score_record_is_valid_json_with_nulls() {
        let mut buf = Vec::new();
        let ctx = ScoreContext { event_id: None, key: "c\"1", event_time_ms: 5, partition: 2, offset: 9, score: 0.25 };
        ScoreEncoder::new("tx", "m", "1", &["a".into(), "b\"".into()]).encode(&mut buf, &ctx, &[Some(1.5), None]);
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["event_id"], "tx-2-9");
        assert_eq!(v["key"], "c\"1");
        assert_eq!(v["features"]["a"], 1.5);
        assert!(v["features"]["b\""].is_null());
        assert_eq!(v["model"], "m");
        let enc = ScoreEncoder::new("tx", "m", "1", &["a".into(), "b\"".into()]);
        enc.encode_features(&mut buf, "k", 7, &[Some(2.5), None]);
        let f: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(f, serde_json::json!({"key": "k", "event_time": 7, "features": {"a": 2.5, "b\"": null}}));
        assert_eq!(v["score"], 0.25);
    }

    #[test]
    fn dlq_record_truncates_and_hashes() {
        let payload = vec![b'x'; DLQ_PAYLOAD_LIMIT + 10];
        let r = encode_dlq("tx", 1, 7, Some(&payload), &Rejection::new(Reason::Oversize, "big"));
        let v: serde_json::Value = serde_json::from_slice(&r).unwrap();
        assert_eq!(v["payload_len"], DLQ_PAYLOAD_LIMIT + 10);
        assert_eq!(v["payload_truncated"], true);
        assert_eq!(v["reason"], "oversize");
        assert_eq!(v["payload_sha256"].as_str().unwrap().len(), 64);
    }
}
