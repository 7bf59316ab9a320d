//! The demo's transactions as Protobuf: their `.proto` definition, and a generated
//! JSON transaction turned into a message of it (encoded by prost-reflect, an
//! encoder independent of vigil's decoder). For the Protobuf tests and benchmarks,
//! which feed the same events to a job in both formats.
//!
//! ```
//! use vigil::demo::protobuf::{transaction_descriptor, transaction_message};
//! let desc = transaction_descriptor();
//! let json = br#"{"event_id":"e1","card_id":"c1","ts":1700000000000,"amount":12.5,"merchant":"m-00001","country":"DE"}"#;
//! let message = transaction_message(&desc, json).unwrap();
//! assert_eq!(message.len(), 38);
//! assert!(transaction_message(&desc, br#"{"card_id": 7}"#).is_none()); // does not fit the message
//! ```

use prost_reflect::prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor, Value};

use crate::spec::ProtobufSchema;

/// The message type: the event time a `google.protobuf.Timestamp` (the generator's
/// epoch millis and RFC 3339 texts alike), the optional strings with presence.
pub const TRANSACTION_PROTO: &str = r#"syntax = "proto3";
package demo;
import "google/protobuf/timestamp.proto";

message Transaction {
  optional string event_id = 1;
  string card_id = 2;
  google.protobuf.Timestamp ts = 3;
  double amount = 4;
  string merchant = 5;
  string country = 6;
  optional string device = 7;
  optional string age_band = 8;
}
"#;

/// [`TRANSACTION_PROTO`] as a source's schema.
pub fn transaction_schema() -> ProtobufSchema {
    ProtobufSchema::from_text(TRANSACTION_PROTO, Some("demo.Transaction"))
}

/// The compiled `demo.Transaction`.
pub fn transaction_descriptor() -> MessageDescriptor {
    crate::decode::protobuf::message(&transaction_schema()).expect("the demo's .proto compiles")
}

/// A JSON transaction as a `demo.Transaction` message; `None` when it does not
/// fit (not an object, a field missing or of another type, a time that is not
/// epoch millis or RFC 3339).
pub fn transaction_message(desc: &MessageDescriptor, payload: &[u8]) -> Option<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let mut m = DynamicMessage::new(desc.clone());
    for name in ["card_id", "merchant", "country"] {
        m.set_field_by_name(name, Value::String(v.get(name)?.as_str()?.to_owned()));
    }
    for name in ["event_id", "device", "age_band"] {
        match v.get(name) {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::String(s)) => m.set_field_by_name(name, Value::String(s.clone())),
            Some(_) => return None,
        }
    }
    m.set_field_by_name("amount", Value::F64(v.get("amount")?.as_f64()?));
    let ms = match v.get("ts")? {
        serde_json::Value::String(s) => chrono::DateTime::parse_from_rfc3339(s).ok()?.timestamp_millis(),
        n if n.is_i64() => n.as_i64()?,
        n => {
            let f = n.as_f64()?;
            if !f.is_finite() || f.abs() >= 9.0e15 {
                return None;
            }
            f.floor() as i64
        }
    };
    let ts_desc = desc.get_field_by_name("ts")?.kind();
    let mut ts = DynamicMessage::new(ts_desc.as_message()?.clone());
    ts.set_field_by_name("seconds", Value::I64(ms.div_euclid(1_000)));
    ts.set_field_by_name("nanos", Value::I32((ms.rem_euclid(1_000) * 1_000_000) as i32));
    m.set_field_by_name("ts", Value::Message(ts));
    Some(m.encode_to_vec())
}
