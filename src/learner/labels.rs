//! Decoding label records: `{"<id field>": "...", "<label field>": true}`.
//!
//! Labels are untrusted input like events: a record that is not a JSON object of
//! bounded size, lacks the id or has a label that is not a boolean (or 0/1, or the
//! strings "true"/"false") is counted as `malformed` and skipped.

use crate::types::key_hash;

/// Labels larger than this are malformed.
pub const MAX_LABEL_BYTES: usize = 16 * 1024;

/// (hash of the event id, label), or why the record is malformed.
pub fn decode_label(payload: Option<&[u8]>, id_field: &str, label_field: &str) -> Result<(u64, bool), &'static str> {
    let (obj, label) = label_object(payload, label_field)?;
    let id = match obj.get(id_field) {
        Some(serde_json::Value::String(s)) => key_hash(s),
        Some(serde_json::Value::Number(n)) => key_hash(&n.to_string()),
        _ => return Err("missing_id"),
    };
    Ok((id, label))
}

/// (event id, label, the optional time field in epoch ms), or why the record is
/// malformed; for offline exports, which need the id itself.
pub fn parse_label(payload: Option<&[u8]>, id_field: &str, label_field: &str, time_field: Option<&str>) -> Result<(String, bool, Option<i64>), &'static str> {
    let (obj, label) = label_object(payload, label_field)?;
    let id = match obj.get(id_field) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => return Err("missing_id"),
    };
    let time = match time_field.map(|f| obj.get(f)) {
        None | Some(None | Some(serde_json::Value::Null)) => None,
        Some(Some(v)) => Some(time_ms(v).ok_or("bad_timestamp")?),
    };
    Ok((id, label, time))
}

/// The time in `field` of a label record (epoch ms or RFC 3339), or why it has none.
pub fn label_time(payload: Option<&[u8]>, field: &str) -> Result<i64, &'static str> {
    let bytes = payload.ok_or("no payload")?;
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|_| "not_json")?;
    match value.get(field) {
        None | Some(serde_json::Value::Null) => Err("missing_time"),
        Some(v) => time_ms(v).ok_or("bad_timestamp"),
    }
}

/// Epoch ms or RFC 3339, as event times are read.
fn time_ms(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9e15).map(|f| f as i64)),
        serde_json::Value::String(s) => chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis()),
        _ => None,
    }
}

/// The record as a JSON object, and its label.
fn label_object(payload: Option<&[u8]>, label_field: &str) -> Result<(serde_json::Map<String, serde_json::Value>, bool), &'static str> {
    let bytes = payload.ok_or("no payload")?;
    if bytes.len() > MAX_LABEL_BYTES {
        return Err("oversize");
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|_| "not_json")?;
    let serde_json::Value::Object(obj) = value else { return Err("not_object") };
    let label = match obj.get(label_field) {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::Number(n)) if n.as_f64() == Some(0.0) => false,
        Some(serde_json::Value::Number(n)) if n.as_f64() == Some(1.0) => true,
        Some(serde_json::Value::String(s)) if s == "true" || s == "1" => true,
        Some(serde_json::Value::String(s)) if s == "false" || s == "0" => false,
        Some(_) => return Err("bad_label"),
        None => return Err("missing_label"),
    };
    Ok((obj, label))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_labels_and_rejects_garbage() {
        let ok = |s: &str| decode_label(Some(s.as_bytes()), "event_id", "is_fraud");
        assert_eq!(ok(r#"{"event_id":"e-1","is_fraud":true}"#), Ok((key_hash("e-1"), true)));
        assert_eq!(ok(r#"{"event_id":17,"is_fraud":0}"#), Ok((key_hash("17"), false)));
        assert_eq!(ok(r#"{"event_id":"e-2","is_fraud":"true"}"#), Ok((key_hash("e-2"), true)));
        assert_eq!(ok(r#"{"event_id":"e-2","is_fraud":0.5}"#), Err("bad_label"));
        assert_eq!(ok(r#"{"is_fraud":true}"#), Err("missing_id"));
        assert_eq!(ok(r#"{"event_id":"e"}"#), Err("missing_label"));
        assert_eq!(ok(r#"[1]"#), Err("not_object"));
        assert_eq!(ok("\u{0}\u{1}"), Err("not_json"));
        assert_eq!(decode_label(None, "a", "b"), Err("no payload"));
        let parse = |s: &str| parse_label(Some(s.as_bytes()), "event_id", "is_fraud", Some("label_ts"));
        assert_eq!(parse(r#"{"event_id":"e-1","is_fraud":1,"label_ts":1700000000000}"#), Ok(("e-1".into(), true, Some(1_700_000_000_000))));
        assert_eq!(parse(r#"{"event_id":7,"is_fraud":false,"label_ts":"2023-11-14T22:13:20Z"}"#), Ok(("7".into(), false, Some(1_700_000_000_000))));
        assert_eq!(parse(r#"{"event_id":"e","is_fraud":true}"#), Ok(("e".into(), true, None)));
        assert_eq!(parse(r#"{"event_id":"e","is_fraud":true,"label_ts":"yesterday"}"#), Err("bad_timestamp"));
        assert_eq!(ok(&format!(r#"{{"event_id":"{}","is_fraud":true}}"#, "x".repeat(MAX_LABEL_BYTES))), Err("oversize"));
    }
}
