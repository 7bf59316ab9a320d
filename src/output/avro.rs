//! Outputs in Avro with a registered schema: the `scores`, `features` and `drift`
//! topics written as Confluent-framed Avro (magic byte 0, the schema's id in 4
//! bytes big-endian, the datum) instead of JSON, for consumers that read their
//! topics through a Schema Registry (Kafka Connect, ksqlDB, Flink's
//! `avro-confluent` format, Spark's `from_avro`).
//!
//! The engine's encoders write every record as JSON, one contract for both
//! engines (DESIGN.md); with `[sinks] format = "avro"` the Kafka producer
//! re-encodes the three topics' records just before it sends them, with the
//! schemas derived here from the job ([`score_schema`], [`features_schema`],
//! [`drift_schema`]), registered under `<topic>-value` (the registry's
//! TopicNameStrategy) when the job starts. A registry that refuses a schema (a
//! job whose features changed against a subject whose compatibility rule forbids
//! it) stops the start with the registry's message. The `dlq`, `shadow`,
//! `windows` and `joins` topics stay JSON.
//!
//! A value the JSON contract writes as `null` because it is not finite (a score
//! or a drift value of NaN) is written to Avro as NaN; a missing feature value
//! is the union's `null`.
//!
//! ```
//! # #![allow(deprecated)] // apache-avro's one-call datum reader
//! use vigil::output::avro::{score_schema, AvroOutputs, Shape};
//!
//! let names = vec!["tx_count_1m".to_string()];
//! let schema = apache_avro::Schema::parse_str(&score_schema(&names).unwrap()).unwrap();
//! let outputs = AvroOutputs::with_ids(&[("scores", Shape::Scores(names), 7)]).unwrap();
//! let json = br#"{"event_id":"e1","key":"c1","event_time":1700000000000,"source_partition":0,
//!   "source_offset":3,"score":0.25,"model":"fraud","model_version":"1","features":{"tx_count_1m":2.0}}"#;
//! let framed = outputs.encode("scores", json).unwrap().unwrap();
//! assert_eq!(&framed[..5], &[0, 0, 0, 0, 7]);
//! let value = apache_avro::from_avro_datum(&schema, &mut &framed[5..], None).unwrap();
//! let apache_avro::types::Value::Record(fields) = value else { panic!() };
//! assert_eq!(fields[5], ("score".to_string(), apache_avro::types::Value::Double(0.25)));
//! assert!(outputs.encode("dlq", b"{}").unwrap().is_none(), "other topics stay JSON");
//! ```

use std::borrow::Cow;
use std::fmt;

use anyhow::{bail, Context, Result};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::json;

use crate::decode::registry::Registry;
use crate::spec::SinkSpec;

/// Which of the engine's records a topic carries.
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    /// `scores` records; the job's feature names, in order.
    Scores(Vec<String>),
    /// `features` records; the job's feature names, in order.
    Features(Vec<String>),
    /// `drift` records (drift, quality and fairness findings).
    Drift,
}

impl Shape {
    /// The Avro schema (its JSON text) of this shape's records.
    pub fn schema(&self) -> Result<String> {
        match self {
            Shape::Scores(names) => score_schema(names),
            Shape::Features(names) => features_schema(names),
            Shape::Drift => Ok(drift_schema()),
        }
    }
}

/// Avro's rule for a name: `[A-Za-z_][A-Za-z0-9_]*`.
fn check_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        bail!("feature `{name}` cannot be an Avro field name (letters, digits and `_`, not starting with a digit): rename it, or write JSON outputs");
    }
    Ok(())
}

/// The record of the features' values: one nullable double per feature.
fn features_record(names: &[String]) -> Result<serde_json::Value> {
    let fields = names.iter().map(|n| check_name(n).map(|()| json!({"name": n, "type": ["null", "double"], "default": null}))).collect::<Result<Vec<_>>>()?;
    Ok(json!({"type": "record", "name": "FeatureValues", "fields": fields}))
}

fn timestamp() -> serde_json::Value {
    json!({"type": "long", "logicalType": "timestamp-millis"})
}

/// The schema of a `scores` record (`vigil.Score`), fields in the JSON
/// contract's order.
pub fn score_schema(feature_names: &[String]) -> Result<String> {
    Ok(json!({"type": "record", "name": "Score", "namespace": "vigil", "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "key", "type": "string"},
        {"name": "event_time", "type": timestamp()},
        {"name": "source_partition", "type": "int"},
        {"name": "source_offset", "type": "long"},
        {"name": "score", "type": "double"},
        {"name": "model", "type": "string"},
        {"name": "model_version", "type": "string"},
        {"name": "features", "type": features_record(feature_names)?},
    ]})
    .to_string())
}

/// The schema of a `features` record (`vigil.Features`).
pub fn features_schema(feature_names: &[String]) -> Result<String> {
    Ok(json!({"type": "record", "name": "Features", "namespace": "vigil", "fields": [
        {"name": "key", "type": "string"},
        {"name": "event_time", "type": timestamp()},
        {"name": "features", "type": features_record(feature_names)?},
    ]})
    .to_string())
}

/// The schema of a `drift` record (`vigil.Drift`).
pub fn drift_schema() -> String {
    json!({"type": "record", "name": "Drift", "namespace": "vigil", "fields": [
        {"name": "ts", "type": timestamp()},
        {"name": "kind", "type": "string"},
        {"name": "name", "type": "string"},
        {"name": "method", "type": "string"},
        {"name": "value", "type": "double"},
        {"name": "threshold", "type": "double"},
        {"name": "drift", "type": "boolean"},
    ]})
    .to_string()
}

/// One output topic written as Avro.
struct TopicCodec {
    topic: String,
    shape: Shape,
    /// The schema's id in the registry.
    id: u32,
}

/// The job's output topics that are written as Avro, with their schema ids.
pub struct AvroOutputs {
    topics: Vec<TopicCodec>,
}

impl AvroOutputs {
    /// The shapes of a job's Avro outputs: `scores`, and `features` and `drift`
    /// where the job writes them.
    pub fn shapes(sinks: &SinkSpec, feature_names: &[String]) -> Vec<(String, Shape)> {
        let mut v = vec![(sinks.scores.clone(), Shape::Scores(feature_names.to_vec()))];
        if let Some(t) = &sinks.features {
            v.push((t.clone(), Shape::Features(feature_names.to_vec())));
        }
        if let Some(t) = &sinks.drift {
            v.push((t.clone(), Shape::Drift));
        }
        v
    }

    /// Registers the schemas of a job's Avro outputs under `<topic>-value` and
    /// keeps their ids; `None` when the job writes JSON.
    pub fn register(sinks: &SinkSpec, feature_names: &[String]) -> Result<Option<AvroOutputs>> {
        let crate::spec::OutputFormat::Avro(settings) = &sinks.format else {
            return Ok(None);
        };
        let registry = Registry::new(settings);
        let mut topics = Vec::new();
        for (topic, shape) in Self::shapes(sinks, feature_names) {
            let subject = format!("{topic}-value");
            let id = registry
                .register(&subject, &shape.schema()?)
                .with_context(|| format!("registering the Avro schema of the `{topic}` topic (`[sinks] format = \"avro\"`)"))?;
            tracing::info!(topic, subject, id, registry = %registry.url(), "output topic written as Avro");
            topics.push(TopicCodec { topic, shape, id });
        }
        Ok(Some(AvroOutputs { topics }))
    }

    /// Outputs with schema ids already known (tests, and producers that registered
    /// the schemas themselves).
    pub fn with_ids(topics: &[(&str, Shape, u32)]) -> Result<AvroOutputs> {
        let topics = topics
            .iter()
            .map(|(t, shape, id)| shape.schema().map(|_| TopicCodec { topic: (*t).to_owned(), shape: shape.clone(), id: *id }))
            .collect::<Result<_>>()?;
        Ok(AvroOutputs { topics })
    }

    /// The framed Avro record of the JSON record `json` bound for `topic`, or
    /// `None` when that topic is written as JSON. An error is a record that does
    /// not follow the engine's JSON contract (a bug, never the input's fault).
    pub fn encode(&self, topic: &str, json: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(t) = self.topics.iter().find(|t| t.topic == topic) else {
            return Ok(None);
        };
        if json.is_empty() {
            return Ok(Some(Vec::new())); // a tombstone stays one
        }
        let mut out = Vec::with_capacity(json.len() / 2 + 8);
        out.push(0);
        out.extend_from_slice(&t.id.to_be_bytes());
        let written = match &t.shape {
            Shape::Scores(names) => write_score(&mut out, json, names),
            Shape::Features(names) => write_features(&mut out, json, names),
            Shape::Drift => write_drift(&mut out, json),
        };
        written.with_context(|| format!("re-encoding a `{topic}` record as Avro: {:.300}", String::from_utf8_lossy(json)))?;
        Ok(Some(out))
    }
}

// --- Avro's binary encoding (the specification's "Binary Encoding") ---

fn put_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_long(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

fn put_double(out: &mut Vec<u8>, v: Option<f64>) {
    out.extend_from_slice(&v.unwrap_or(f64::NAN).to_le_bytes());
}

/// A `["null", "double"]` union.
fn put_nullable(out: &mut Vec<u8>, v: Option<f64>) {
    match v {
        None => put_long(out, 0),
        Some(v) => {
            put_long(out, 1);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// The `features` object of a record, its entries in the order written.
struct FeatureValues<'a>(Vec<(Cow<'a, str>, Option<f64>)>);

impl<'de: 'a, 'a> Deserialize<'de> for FeatureValues<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = FeatureValues<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of feature values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some((k, value)) = map.next_entry::<Cow<'de, str>, Option<f64>>()? {
                    v.push((k, value));
                }
                Ok(FeatureValues(v))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// Writes the features' record: each declared feature's value (`null` where the
/// JSON has none); a name the schema lacks is an error.
fn put_features(out: &mut Vec<u8>, values: &FeatureValues<'_>, names: &[String]) -> Result<()> {
    let in_order = values.0.len() == names.len() && values.0.iter().zip(names).all(|((k, _), n)| k == n);
    if in_order {
        for (_, v) in &values.0 {
            put_nullable(out, *v);
        }
        return Ok(());
    }
    if let Some((k, _)) = values.0.iter().find(|(k, _)| !names.iter().any(|n| n == k)) {
        bail!("feature `{k}` is not in the registered schema");
    }
    for n in names {
        put_nullable(out, values.0.iter().find(|(k, _)| k == n).and_then(|(_, v)| *v));
    }
    Ok(())
}

fn write_score(out: &mut Vec<u8>, json: &[u8], names: &[String]) -> Result<()> {
    #[derive(Deserialize)]
    struct Score<'a> {
        #[serde(borrow)]
        event_id: Cow<'a, str>,
        #[serde(borrow)]
        key: Cow<'a, str>,
        event_time: i64,
        source_partition: i32,
        source_offset: i64,
        score: Option<f64>,
        #[serde(borrow)]
        model: Cow<'a, str>,
        #[serde(borrow)]
        model_version: Cow<'a, str>,
        #[serde(borrow)]
        features: FeatureValues<'a>,
    }
    let s: Score<'_> = serde_json::from_slice(json)?;
    put_str(out, &s.event_id);
    put_str(out, &s.key);
    put_long(out, s.event_time);
    put_long(out, s.source_partition.into());
    put_long(out, s.source_offset);
    put_double(out, s.score);
    put_str(out, &s.model);
    put_str(out, &s.model_version);
    put_features(out, &s.features, names)
}

fn write_features(out: &mut Vec<u8>, json: &[u8], names: &[String]) -> Result<()> {
    #[derive(Deserialize)]
    struct Features<'a> {
        #[serde(borrow)]
        key: Cow<'a, str>,
        event_time: i64,
        #[serde(borrow)]
        features: FeatureValues<'a>,
    }
    let f: Features<'_> = serde_json::from_slice(json)?;
    put_str(out, &f.key);
    put_long(out, f.event_time);
    put_features(out, &f.features, names)
}

fn write_drift(out: &mut Vec<u8>, json: &[u8]) -> Result<()> {
    #[derive(Deserialize)]
    struct Drift<'a> {
        ts: i64,
        #[serde(borrow)]
        kind: Cow<'a, str>,
        #[serde(borrow)]
        name: Cow<'a, str>,
        #[serde(borrow)]
        method: Cow<'a, str>,
        value: Option<f64>,
        threshold: Option<f64>,
        drift: bool,
    }
    let d: Drift<'_> = serde_json::from_slice(json)?;
    put_long(out, d.ts);
    put_str(out, &d.kind);
    put_str(out, &d.name);
    put_str(out, &d.method);
    put_double(out, d.value);
    put_double(out, d.threshold);
    out.push(u8::from(d.drift));
    Ok(())
}

#[cfg(test)]
#[allow(deprecated)] // apache-avro's one-call datum reader, the independent check
mod tests {
    use super::*;
    use apache_avro::types::Value;
    use apache_avro::{from_avro_datum, Schema};

    fn decode(shape: &Shape, framed: &[u8]) -> Value {
        let schema = Schema::parse_str(&shape.schema().unwrap()).unwrap();
        let mut rest = &framed[5..];
        let v = from_avro_datum(&schema, &mut rest, None).unwrap();
        assert!(rest.is_empty(), "the whole datum read");
        v
    }

    #[test]
    fn longs_are_zigzag_varints() {
        for (v, bytes) in
            [(0i64, vec![0u8]), (-1, vec![1]), (1, vec![2]), (-64, vec![0x7f]), (64, vec![0x80, 1]), (i64::MIN, vec![0xff; 9].into_iter().chain([1]).collect())]
        {
            let mut out = Vec::new();
            put_long(&mut out, v);
            assert_eq!(out, bytes, "{v}");
        }
    }

    #[test]
    fn features_out_of_order_or_missing_are_placed_by_name() {
        let names = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let shape = Shape::Features(names.clone());
        let outputs = AvroOutputs::with_ids(&[("f", shape.clone(), 1)]).unwrap();
        let framed = outputs.encode("f", br#"{"key":"k\"1","event_time":-5,"features":{"c":3.5,"a":null}}"#).unwrap().unwrap();
        let Value::Record(fields) = decode(&shape, &framed) else { panic!() };
        assert_eq!(fields[0].1, Value::String("k\"1".into()));
        assert_eq!(fields[1].1, Value::TimestampMillis(-5));
        let Value::Record(values) = &fields[2].1 else { panic!() };
        let got: Vec<_> = values.iter().map(|(_, v)| v.clone()).collect();
        let null = Value::Union(0, Box::new(Value::Null));
        assert_eq!(got, vec![null.clone(), null, Value::Union(1, Box::new(Value::Double(3.5)))]);
        assert!(outputs.encode("f", br#"{"key":"k","event_time":0,"features":{"zz":1}}"#).is_err(), "a name the schema lacks");
        assert!(outputs.encode("f", b"not json").is_err());
    }

    #[test]
    fn drift_records_keep_their_values_and_nan() {
        let outputs = AvroOutputs::with_ids(&[("drift", Shape::Drift, 9)]).unwrap();
        let r = crate::monitor::DriftRecord::new(1_700_000_000_000, "feature", "amount", "psi", f64::NAN, 0.2, true);
        let framed = outputs.encode("drift", &serde_json::to_vec(&r).unwrap()).unwrap().unwrap();
        let Value::Record(fields) = decode(&Shape::Drift, &framed) else { panic!() };
        assert_eq!(fields[1].1, Value::String("feature".into()));
        assert!(matches!(fields[4].1, Value::Double(v) if v.is_nan()));
        assert_eq!(fields[5].1, Value::Double(0.2));
        assert_eq!(fields[6].1, Value::Boolean(true));
    }

    #[test]
    fn a_feature_name_avro_cannot_hold_is_refused_by_name() {
        let e = score_schema(&["ok".into(), "amount-1h".into()]).unwrap_err().to_string();
        assert!(e.contains("`amount-1h`"), "{e}");
        assert!(check_name("_x9").is_ok() && check_name("9x").is_err() && check_name("").is_err());
    }
}
