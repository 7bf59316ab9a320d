//! Decoding and validating one record's bytes against the job's schema.
//!
//! Every byte here is untrusted: size is checked before anything is parsed, UTF-8
//! before JSON, and the JSON is read by `json`'s schema-driven serde visitor that
//! never builds a generic value tree. Avro and Protobuf records (the source's `format`) are
//! read by [`avro`] and [`protobuf`] into the same [`Decoded`] with the same verdicts. Any failure becomes a
//! [`Rejection`] with a reason from a closed set; nothing in this module panics on
//! input.

pub mod avro;
mod expect;
mod fill;
mod json;
pub mod protobuf;
pub mod registry;
pub mod schema_cache;

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
        json::decode(self, bytes, unknown)
    }
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    (0..=max).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}
