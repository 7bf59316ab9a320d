//! The dynamic record: a decoded JSON event whose fields are read by name.
//!
//! A source with a declared schema decodes each payload once, checks it (types,
//! required fields, sizes; failures go to `dlq`), and hands on a [`Record`]: its
//! numeric fields (`f64`/`i64` in the schema) and its string fields, by name. The
//! key and the event time travel in the envelope ([`super::Rec`]).
//!
//! As JSON (sinks) a record is an object of its fields; between processes it
//! travels in a compact binary form.
//!
//! ```
//! use vigil::graph::Record;
//! let r = Record::from_fields("tx", [("amount", 12.5)], [("country", Some("FR"))]);
//! assert_eq!(r.f64("amount"), Some(12.5));
//! assert_eq!(r.str("country"), Some("FR"));
//! assert_eq!(r.str("city"), None);
//! assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"amount":12.5,"country":"FR"}"#);
//! ```

use std::sync::Arc;

use serde::de::Deserializer;
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// The field names of one source's records (shared by all its records).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    pub topic: String,
    pub numeric: Vec<String>,
    pub strings: Vec<String>,
}

/// A decoded event; see the module docs. Immutable, so a clone (a join pairing
/// it many times, a stream read by several operators) shares it.
#[derive(Clone, Debug, PartialEq)]
pub struct Record(Arc<Fields>);

#[derive(Debug, PartialEq)]
struct Fields {
    schema: Arc<Schema>,
    event_id: Option<String>,
    numeric: Vec<f64>,
    strings: Vec<Option<String>>,
}

impl Record {
    pub(crate) fn new(schema: Arc<Schema>, event_id: Option<String>, numeric: Vec<f64>, strings: Vec<Option<String>>) -> Self {
        Record(Arc::new(Fields { schema, event_id, numeric, strings }))
    }

    /// A record built by hand (tests, examples).
    pub fn from_fields<'a>(
        topic: &str,
        numeric: impl IntoIterator<Item = (&'a str, f64)>,
        strings: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Self {
        let (nn, nv): (Vec<String>, Vec<f64>) = numeric.into_iter().map(|(n, v)| (n.to_owned(), v)).unzip();
        let (sn, sv): (Vec<String>, Vec<Option<String>>) = strings.into_iter().map(|(n, v)| (n.to_owned(), v.map(str::to_owned))).unzip();
        Record::new(Arc::new(Schema { topic: topic.to_owned(), numeric: nn, strings: sn }), None, nv, sv)
    }

    /// The topic the record was read from.
    pub fn topic(&self) -> &str {
        &self.0.schema.topic
    }
    /// The event id field, where the source declares one.
    pub fn event_id(&self) -> Option<&str> {
        self.0.event_id.as_deref()
    }
    /// A numeric field; `None` when the schema has no such numeric field or the
    /// record left it out (or null).
    pub fn f64(&self, name: &str) -> Option<f64> {
        let i = self.0.schema.numeric.iter().position(|n| n == name)?;
        self.0.numeric.get(i).copied().filter(|v| !v.is_nan())
    }
    /// A string field; `None` when absent, null or not declared.
    pub fn str(&self, name: &str) -> Option<&str> {
        let i = self.0.schema.strings.iter().position(|n| n == name)?;
        self.0.strings.get(i)?.as_deref()
    }
}

/// The binary form: names and values side by side.
#[derive(Serialize, Deserialize)]
struct Compact {
    schema: Schema,
    event_id: Option<String>,
    numeric: Vec<f64>,
    strings: Vec<Option<String>>,
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            let mut map = s.serialize_map(None)?;
            for (name, v) in self.0.schema.numeric.iter().zip(&self.0.numeric) {
                map.serialize_entry(name, &(!v.is_nan()).then_some(*v))?;
            }
            for (name, v) in self.0.schema.strings.iter().zip(&self.0.strings) {
                map.serialize_entry(name, v)?;
            }
            map.end()
        } else {
            // names travel with each record between processes: simple, not small
            Compact { schema: (*self.0.schema).clone(), event_id: self.0.event_id.clone(), numeric: self.0.numeric.clone(), strings: self.0.strings.clone() }
                .serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            return Err(serde::de::Error::custom("a Record is read from JSON by a source's decoder, not by serde"));
        }
        let c = Compact::deserialize(d)?;
        Ok(Record::new(Arc::new(c.schema), c.event_id, c.numeric, c.strings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_crosses_processes_intact() {
        let r = Record::from_fields("tx", [("amount", 3.0), ("missing", f64::NAN)], [("country", None), ("city", Some("Lyon"))]);
        let bytes = bincode::serialize(&r).unwrap();
        let back: Record = bincode::deserialize(&bytes).unwrap();
        assert_eq!(back.f64("amount"), Some(3.0));
        assert_eq!(back.f64("missing"), None);
        assert_eq!(back.str("city"), Some("Lyon"));
        assert_eq!(back.str("country"), None);
        assert_eq!(serde_json::to_string(&back).unwrap(), r#"{"amount":3.0,"missing":null,"country":null,"city":"Lyon"}"#);
    }
}
