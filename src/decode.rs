//! Decoding and validating one record's bytes against the job's schema.
//!
//! Every byte here is untrusted: size is checked before anything is parsed, UTF-8
//! before JSON, and the JSON is read by a schema-driven serde visitor that never
//! builds a generic value tree. Avro and Protobuf records (the source's `format`) are
//! read by [`avro`] and [`protobuf`] into the same [`Decoded`] with the same verdicts. Any failure becomes a
//! [`Rejection`] with a reason from a closed set; nothing in this module panics on
//! input.

pub mod avro;
mod expect;
mod fill;
pub mod protobuf;
pub mod registry;
pub mod schema_cache;

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::Deserializer;

use crate::spec::{FieldType, JobSpec, SourceSpec};
use crate::types::{Reason, Rejection};

/// A decoded record, before time validation.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    pub key: String,
    pub event_id: Option<String>,
    pub time_ms: i64,
    /// One value per numeric schema field, in schema order; NaN when absent.
    pub numeric: Vec<f64>,
    /// The string fields the job keeps (`JobSpec::kept_strings`), in that order.
    pub strings: Vec<Option<String>>,
}

/// Largest accepted magnitude of a numeric field: window sums are exact fixed point
/// (1e-6 units in i128), which stays exact for 1e17 such values.
pub const MAX_ABS_VALUE: f64 = 1e15;
/// Longest accepted key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// Longest unknown field name reported to metrics.
const MAX_REPORTED_NAME: usize = 64;

/// What a top-level name means for the decoder.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Slot {
    Key,
    Time,
    EventId,
    Field { index: usize, ty: FieldType, numeric: Option<usize>, kept: Option<usize> },
}

/// A schema compiled for fast decoding.
pub struct Decoder {
    slots: rustc_hash::FxHashMap<String, Slot>,
    required: Vec<(usize, String)>,
    fields: usize,
    numeric: usize,
    kept: usize,
    max_bytes: usize,
    /// Set for an Avro source.
    avro: Option<avro::AvroDecoder>,
    /// Set for a Protobuf source.
    protobuf: Option<protobuf::ProtobufDecoder>,
    /// The source's data-quality expectations, if it has any.
    pub(crate) expect: Option<expect::Expectations>,
}

impl Decoder {
    pub fn new(job: &JobSpec) -> Self {
        Decoder::for_source(&job.source, &job.kept_strings())
    }

    /// A decoder for one source that keeps the string fields named in `kept_names`
    /// (in that order) in [`Decoded::strings`].
    pub fn for_source(s: &SourceSpec, kept_names: &[String]) -> Self {
        let mut slots = rustc_hash::FxHashMap::default();
        slots.insert(s.key_field.clone(), Slot::Key);
        slots.insert(s.event_time_field.clone(), Slot::Time);
        if let Some(id) = &s.event_id_field {
            slots.insert(id.clone(), Slot::EventId);
        }
        let mut numeric = 0;
        let mut required = Vec::new();
        for (index, f) in s.fields.iter().enumerate() {
            let slot_numeric = f.ty.is_numeric().then(|| {
                numeric += 1;
                numeric - 1
            });
            let kept = kept_names.iter().position(|k| *k == f.name);
            slots.insert(f.name.clone(), Slot::Field { index, ty: f.ty, numeric: slot_numeric, kept });
            if !f.optional {
                required.push((index, f.name.clone()));
            }
        }
        let mut decoder = Decoder {
            slots,
            required,
            fields: s.fields.len(),
            numeric,
            kept: kept_names.len(),
            max_bytes: s.max_message_bytes,
            avro: None,
            protobuf: None,
            expect: expect::Expectations::new(s),
        };
        if let crate::spec::SourceFormat::Avro(schemas) = &s.format {
            decoder.avro = Some(avro::AvroDecoder::new(schemas, &decoder, &s.topic));
        }
        if let crate::spec::SourceFormat::Protobuf(schema) = &s.format {
            decoder.protobuf = Some(protobuf::ProtobufDecoder::new(schema, &decoder, &s.topic));
        }
        decoder
    }

    /// Counts the source's expectation failures in `metrics`
    /// (`vigil_expectation_failures_total`).
    pub fn count_expectations(&self, metrics: &crate::metrics::Metrics) {
        if let Some(e) = &self.expect {
            e.count_with(metrics);
        }
    }

    /// The payload if it is neither empty nor over the size limit.
    pub fn check_size<'p>(&self, payload: Option<&'p [u8]>) -> Result<&'p [u8], Rejection> {
        let bytes = match payload {
            None | Some([]) => return Err(Rejection::new(Reason::Empty, "empty payload")),
            Some(b) => b,
        };
        if bytes.len() > self.max_bytes {
            return Err(Rejection::new(Reason::Oversize, format!("{} bytes exceeds the limit of {}", bytes.len(), self.max_bytes)));
        }
        Ok(bytes)
    }

    /// Decodes one payload. `unknown` is called with the name of each top-level field
    /// that the schema does not declare (names cut to 64 bytes).
    pub fn decode(&self, payload: Option<&[u8]>, unknown: &mut dyn FnMut(&str)) -> Result<Decoded, Rejection> {
        let bytes = self.check_size(payload)?;
        if let Some(avro) = &self.avro {
            return avro.decode(bytes, self, unknown);
        }
        if let Some(protobuf) = &self.protobuf {
            return protobuf.decode(bytes, self, unknown);
        }
        let text = std::str::from_utf8(bytes).map_err(|e| Rejection::new(Reason::InvalidUtf8, format!("invalid UTF-8: {e}")))?;
        let mut failure = None;
        let mut de = serde_json::Deserializer::from_str(text);
        let seed = RecordSeed { decoder: self, failure: &mut failure, unknown };
        let record = seed.deserialize(&mut de).and_then(|r| de.end().map(|_| r));
        match record {
            // the expectations decide once the whole text is known to be valid
            Ok((record, judged)) => match &self.expect {
                Some(e) => e.settle(judged).map(|_| record),
                None => Ok(record),
            },
            Err(e) => Err(failure.unwrap_or_else(|| Rejection::new(Reason::NotJson, e.to_string()))),
        }
    }
}

struct RecordSeed<'a, 'u> {
    decoder: &'a Decoder,
    failure: &'a mut Option<Rejection>,
    unknown: &'u mut dyn FnMut(&str),
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, '_> {
    type Value = (Decoded, expect::Judged);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_, '_> {
    type Value = (Decoded, expect::Judged);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let dec = self.decoder;
        let fail = |failure: &mut Option<Rejection>, reason, detail: String| {
            *failure = Some(Rejection::new(reason, detail.clone()));
            de::Error::custom(detail)
        };
        let mut key: Option<String> = None;
        let mut time: Option<Result<i64, String>> = None;
        let mut event_id: Option<String> = None;
        let mut seen = vec![false; dec.fields];
        let (mut seen_key, mut seen_time, mut seen_id) = (false, false, false);
        let mut numeric = vec![f64::NAN; dec.numeric];
        let mut strings: Vec<Option<String>> = vec![None; dec.kept];
        let mut judged = expect::Judged::default();

        while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let Some(slot) = dec.slots.get(name.as_ref()).copied() else {
                let cut = floor_char_boundary(&name, MAX_REPORTED_NAME);
                (self.unknown)(&name[..cut]);
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let once = match slot {
                Slot::Key => std::mem::replace(&mut seen_key, true),
                Slot::Time => std::mem::replace(&mut seen_time, true),
                Slot::EventId => std::mem::replace(&mut seen_id, true),
                Slot::Field { index, .. } => std::mem::replace(&mut seen[index], true),
            };
            if once {
                return Err(fail(self.failure, Reason::DuplicateField, format!("field `{name}` appears twice")));
            }
            let value: Scalar = map.next_value()?;
            match slot {
                Slot::Key | Slot::EventId => {
                    let text = match value {
                        Scalar::Str(s) => s.into_owned(),
                        Scalar::Int(i) => i.to_string(),
                        Scalar::Null if matches!(slot, Slot::EventId) => continue,
                        Scalar::Null => return Err(fail(self.failure, Reason::MissingField, format!("`{name}` is null"))),
                        other => return Err(fail(self.failure, Reason::WrongType, format!("`{name}` is {}, expected a string or integer", other.kind()))),
                    };
                    if text.is_empty() || text.len() > MAX_KEY_BYTES {
                        return Err(fail(self.failure, Reason::BadKey, format!("`{name}` has {} bytes (1..={MAX_KEY_BYTES} allowed)", text.len())));
                    }
                    if matches!(slot, Slot::Key) {
                        key = Some(text)
                    } else {
                        event_id = Some(text)
                    }
                }
                Slot::Time => {
                    time = Some(match value {
                        Scalar::Int(ms) => Ok(ms),
                        Scalar::Float(ms) if ms.is_finite() && ms.abs() < 9.0e15 => Ok(ms.floor() as i64),
                        Scalar::Float(ms) => Err(format!("epoch millis {ms} out of range")),
                        Scalar::Str(s) => {
                            chrono::DateTime::parse_from_rfc3339(&s).map(|t| t.timestamp_millis()).map_err(|e| format!("`{s:.40}` is not RFC 3339: {e}"))
                        }
                        Scalar::Null => return Err(fail(self.failure, Reason::MissingField, format!("`{name}` is null"))),
                        other => Err(format!("event time is {}, expected epoch millis or RFC 3339", other.kind())),
                    });
                }
                Slot::Field { index, ty, numeric: slot_numeric, kept } => {
                    let ok = match (ty, &value) {
                        (_, Scalar::Null) => {
                            seen[index] = false; // null counts as absent
                            true
                        }
                        (FieldType::F64, Scalar::Int(_) | Scalar::Float(_)) => true,
                        (FieldType::I64, Scalar::Int(_)) => true,
                        (FieldType::Str, Scalar::Str(_)) | (FieldType::Bool, Scalar::Bool) => true,
                        _ => false,
                    };
                    if !ok {
                        return Err(fail(self.failure, Reason::WrongType, format!("`{name}` is {}, expected {ty:?}", value.kind())));
                    }
                    if let Some(n) = slot_numeric {
                        let v = match value {
                            Scalar::Int(i) => i as f64,
                            Scalar::Float(f) => f,
                            _ => f64::NAN,
                        };
                        if v.abs() > MAX_ABS_VALUE {
                            return Err(fail(self.failure, Reason::OutOfRange, format!("`{name}` is {v:e}, beyond ±{MAX_ABS_VALUE:e}")));
                        }
                        if let (Some(e), false) = (&dec.expect, v.is_nan()) {
                            e.number(index, v, &mut judged);
                        }
                        numeric[n] = v;
                    }
                    if let (Some(e), Scalar::Str(text)) = (&dec.expect, &value) {
                        e.text(index, text, &mut judged);
                    }
                    if let (Some(k), Scalar::Str(text)) = (kept, value) {
                        strings[k] = Some(text.into_owned());
                    }
                }
            }
        }
        let key = key.ok_or_else(|| fail(self.failure, Reason::MissingField, "the key field is missing".into()))?;
        let time = match time {
            None => return Err(fail(self.failure, Reason::MissingField, "the event time field is missing".into())),
            Some(Err(detail)) => return Err(fail(self.failure, Reason::BadTimestamp, detail)),
            Some(Ok(t)) => t,
        };
        if let Some((_, name)) = dec.required.iter().find(|(i, _)| !seen[*i]) {
            return Err(fail(self.failure, Reason::MissingField, format!("required field `{name}` is missing")));
        }
        Ok((Decoded { key, event_id, time_ms: time, numeric, strings }, judged))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(not_object(self.failure, "an array"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Err(not_object(self.failure, "a string"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Err(not_object(self.failure, "a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Err(not_object(self.failure, "a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(not_object(self.failure, "a number"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(not_object(self.failure, "a boolean"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(not_object(self.failure, "null"))
    }
}

fn not_object<E: de::Error>(failure: &mut Option<Rejection>, what: &str) -> E {
    let detail = format!("top level is {what}, expected an object");
    *failure = Some(Rejection::new(Reason::NotObject, detail.clone()));
    E::custom(detail)
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    (0..=max).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}

/// One JSON value of a top-level field; nested values are only classified.
enum Scalar<'de> {
    Null,
    Bool,
    Int(i64),
    Float(f64),
    Str(std::borrow::Cow<'de, str>),
    Nested(&'static str),
}

impl Scalar<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Bool => "a boolean",
            Scalar::Int(_) | Scalar::Float(_) => "a number",
            Scalar::Str(_) => "a string",
            Scalar::Nested(k) => k,
        }
    }
}

impl<'de> serde::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scalar<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Bool)
            }
            fn visit_i64<E>(self, i: i64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Int(i))
            }
            fn visit_u64<E>(self, u: u64) -> Result<Scalar<'de>, E> {
                Ok(i64::try_from(u).map(Scalar::Int).unwrap_or(Scalar::Float(u as f64)))
            }
            fn visit_f64<E>(self, f: f64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Float(f))
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(std::borrow::Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(std::borrow::Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(std::borrow::Cow::Owned(s)))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Nested("an array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Nested("an object"))
            }
        }
        d.deserialize_any(V)
    }
}
