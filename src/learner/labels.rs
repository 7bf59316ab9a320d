//! Decoding label records: `{"<id field>": "...", "<label field>": true}`.
//!
//! Labels are untrusted input like events: a record that is not a JSON object of
//! bounded size, lacks the id or has a label that is not a boolean (or 0/1, or the
//! strings "true"/"false") is counted as `malformed` and skipped.

use crate::pipeline::key_hash;

/// Labels larger than this are malformed.
pub const MAX_LABEL_BYTES: usize = 16 * 1024;

/// (hash of the event id, label), or why the record is malformed.
pub fn decode_label(payload: Option<&[u8]>, id_field: &str, label_field: &str) -> Result<(u64, bool), &'static str> {
    let bytes = payload.ok_or("no payload")?;
    if bytes.len() > MAX_LABEL_BYTES {
        return Err("oversize");
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|_| "not_json")?;
    let obj = value.as_object().ok_or("not_object")?;
    let id = match obj.get(id_field) {
        Some(serde_json::Value::String(s)) => key_hash(s),
        Some(serde_json::Value::Number(n)) => key_hash(&n.to_string()),
        _ => return Err("missing_id"),
    };
    let label = match obj.get(label_field) {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::Number(n)) if n.as_f64() == Some(0.0) => false,
        Some(serde_json::Value::Number(n)) if n.as_f64() == Some(1.0) => true,
        Some(serde_json::Value::String(s)) if s == "true" || s == "1" => true,
        Some(serde_json::Value::String(s)) if s == "false" || s == "0" => false,
        Some(_) => return Err("bad_label"),
        None => return Err("missing_label"),
    };
    Ok((id, label))
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
        assert_eq!(ok(&format!(r#"{{"event_id":"{}","is_fraud":true}}"#, "x".repeat(MAX_LABEL_BYTES))), Err("oversize"));
    }
}
