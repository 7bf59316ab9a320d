//! The demo's transactions as Avro: their writer schema, and a generated JSON
//! transaction turned into a datum of it. For the Avro tests and benchmarks, which
//! feed the same events to a job in both formats.
//!
//! ```
//! use vigil::demo::avro::{transaction_datum, transaction_schema};
//! let schema = transaction_schema();
//! let json = br#"{"event_id":"e1","card_id":"c1","ts":1700000000000,"amount":12.5,"merchant":"m-00001","country":"DE"}"#;
//! let datum = transaction_datum(&schema, json).unwrap();
//! assert_eq!(datum.len(), 35);
//! assert!(transaction_datum(&schema, br#"{"card_id": 7}"#).is_none()); // does not fit the schema
//! ```

use apache_avro::types::Value;
use apache_avro::Schema;

/// The writer schema: the time in a union of long, double and string, as the
/// generator writes epoch millis or RFC 3339 text.
pub const TRANSACTION_SCHEMA: &str = r#"{"type": "record", "name": "Transaction", "namespace": "demo", "fields": [
  {"name": "event_id", "type": ["null", "string"]},
  {"name": "card_id", "type": "string"},
  {"name": "ts", "type": ["long", "double", "string"]},
  {"name": "amount", "type": "double"},
  {"name": "merchant", "type": "string"},
  {"name": "country", "type": "string"},
  {"name": "device", "type": ["null", "string"], "default": null},
  {"name": "age_band", "type": ["null", "string"], "default": null}]}"#;

/// [`TRANSACTION_SCHEMA`], parsed.
pub fn transaction_schema() -> Schema {
    Schema::parse_str(TRANSACTION_SCHEMA).expect("the demo's schema parses")
}

/// A JSON transaction as a datum of `schema` ([`transaction_schema`]); `None` when
/// it does not fit (not an object, a field missing or of another type).
pub fn transaction_datum(schema: &Schema, payload: &[u8]) -> Option<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let text = |name: &str| v.get(name).and_then(|x| x.as_str()).map(str::to_owned);
    let optional = |name: &str| match v.get(name) {
        None | Some(serde_json::Value::Null) => Some(Value::Union(0, Box::new(Value::Null))),
        Some(serde_json::Value::String(s)) => Some(Value::Union(1, Box::new(Value::String(s.clone())))),
        Some(_) => None,
    };
    let ts = match v.get("ts")? {
        serde_json::Value::String(s) => Value::Union(2, Box::new(Value::String(s.clone()))),
        n if n.is_i64() => Value::Union(0, Box::new(Value::Long(n.as_i64()?))),
        n => Value::Union(1, Box::new(Value::Double(n.as_f64()?))),
    };
    let record = Value::Record(vec![
        ("event_id".into(), optional("event_id")?),
        ("card_id".into(), Value::String(text("card_id")?)),
        ("ts".into(), ts),
        ("amount".into(), Value::Double(v.get("amount")?.as_f64()?)),
        ("merchant".into(), Value::String(text("merchant")?)),
        ("country".into(), Value::String(text("country")?)),
        ("device".into(), optional("device")?),
        ("age_band".into(), optional("age_band")?),
    ]);
    apache_avro::writer::datum::GenericDatumWriter::builder(schema).build().ok()?.write_value_to_vec(record).ok()
}
