//! Avro sources: records in the Confluent wire format (a zero byte, the writer
//! schema's registry id in 4 big-endian bytes, the Avro datum) with writer schemas
//! from a Schema Registry, or bare datums of one schema file.
//!
//! Each writer schema is resolved once against the source's declared fields
//! (`plan.rs`, [`Plan`]), then its records are read straight into the engine's record
//! (`datum.rs`), with no intermediate value tree. Schema evolution follows Avro's
//! resolution rules: a writer that adds a field (skipped, counted as an unknown
//! field) or drops an optional one (absent) is read without a restart; one whose
//! declared field changed type, or that lost a required field, sends its records to
//! the dead-letter topic as `schema_mismatch`; an id the registry does not know, as
//! `unknown_schema`. Nothing is lost either way.
//!
//! ```
//! use vigil::decode::{avro, Decoder};
//! use vigil::graph::Source;
//! use vigil::spec::{AvroSchemas, FieldType};
//!
//! let writer = r#"{"type": "record", "name": "Tx", "fields": [
//!     {"name": "card", "type": "string"}, {"name": "ts", "type": "long"},
//!     {"name": "amount", "type": "double"}, {"name": "note", "type": ["null", "string"]}]}"#;
//! let source = Source::avro("tx", AvroSchemas::Fixed { schema: writer.into() })
//!     .key("card")
//!     .field("amount", FieldType::F64);
//! let decoder = Decoder::for_source(source.spec(), &[]);
//! // card "c1", ts 1_700_000_000_000, amount 12.5, note null
//! let mut datum = vec![4, b'c', b'1'];
//! avro::put_long(&mut datum, 1_700_000_000_000);
//! datum.extend(12.5f64.to_le_bytes());
//! datum.push(0);
//! let mut unknown = Vec::new();
//! let record = decoder.decode(Some(&datum), &mut |name| unknown.push(name.to_owned())).unwrap();
//! assert_eq!((record.key.as_str(), record.time_ms, record.numeric[0]), ("c1", 1_700_000_000_000, 12.5));
//! assert_eq!(unknown, ["note"]); // written, not declared: skipped and counted
//! ```

mod datum;
mod plan;

use apache_avro::Schema;

/// The registry client, shared with Protobuf sources (`vigil::decode::registry`).
pub use crate::decode::registry::{self, Fetch, Registry};
pub use plan::Plan;

use crate::decode::schema_cache::SchemaCache;
use crate::decode::{Decoded, Decoder};
use crate::spec::{AvroSchemas, SourceSpec};
use crate::types::{Reason, Rejection};

/// The Confluent wire format's first byte.
pub const MAGIC: u8 = 0;

/// Where an Avro source's decoder gets its plans.
pub(crate) enum AvroDecoder {
    /// One schema for every record (or why it cannot be read).
    Fixed(Result<Plan, String>),
    Registry {
        registry: Registry,
        cache: SchemaCache<Plan>,
    },
}

impl AvroDecoder {
    /// Settings into a decoder; a fixed schema is compiled now (a mismatch is logged
    /// loudly, and each record then goes to the dead-letter topic with its reason).
    pub(crate) fn new(schemas: &AvroSchemas, decoder: &Decoder, topic: &str) -> AvroDecoder {
        match schemas {
            AvroSchemas::Fixed { schema } => {
                let plan = compile(schema, decoder);
                if let Err(e) = &plan {
                    tracing::error!(topic, error = %e, "the Avro source's schema cannot be read as its declared fields: every record goes to the dead-letter topic");
                }
                AvroDecoder::Fixed(plan)
            }
            AvroSchemas::Registry(settings) => AvroDecoder::Registry { registry: Registry::new(settings), cache: SchemaCache::default() },
        }
    }

    pub(crate) fn decode(&self, bytes: &[u8], decoder: &Decoder, unknown: &mut dyn FnMut(&str)) -> Result<Decoded, Rejection> {
        match self {
            AvroDecoder::Fixed(Ok(plan)) => plan.decode(bytes, decoder, unknown),
            AvroDecoder::Fixed(Err(e)) => Err(Rejection::new(Reason::SchemaMismatch, e.clone())),
            AvroDecoder::Registry { registry, cache } => {
                let (id, datum) = split_frame(bytes)?;
                let plan = cache.get(id, registry.url(), |id| registry.schema(id).map(|text| compile(&text, decoder)))?;
                plan.decode(datum, decoder, unknown)
            }
        }
    }
}

/// A writer schema's text compiled against the source's fields.
fn compile(text: &str, decoder: &Decoder) -> Result<Plan, String> {
    Schema::parse_str(text).map_err(|e| format!("the schema does not parse: {e}")).and_then(|s| Plan::compile(&s, decoder))
}

/// The schema id and the datum of a Confluent wire-format record.
pub fn split_frame(bytes: &[u8]) -> Result<(u32, &[u8]), Rejection> {
    match bytes {
        [MAGIC, a, b, c, d, datum @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        _ => Err(Rejection::new(Reason::NotAvro, "no Confluent wire-format header (a zero byte, then a 4-byte schema id)")),
    }
}

/// A datum framed in the Confluent wire format with schema `id`.
pub fn frame(id: u32, datum: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + datum.len());
    out.push(MAGIC);
    out.extend(id.to_be_bytes());
    out.extend_from_slice(datum);
    out
}

/// Appends `v` as Avro's zigzag varint (`int` and `long`).
pub fn put_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Checks at load time that a source's fixed writer schema can be read as its
/// declared fields (the error names the field).
pub fn check_fixed_schema(spec: &SourceSpec) -> anyhow::Result<()> {
    if let crate::spec::SourceFormat::Avro(AvroSchemas::Fixed { schema }) = &spec.format {
        let decoder = Decoder::for_source(&SourceSpec { format: crate::spec::SourceFormat::Json, ..spec.clone() }, &[]);
        let writer = Schema::parse_str(schema).map_err(|e| anyhow::anyhow!("the Avro schema does not parse: {e}"))?;
        Plan::compile(&writer, &decoder).map_err(|e| anyhow::anyhow!("the Avro schema cannot be read as the declared fields: {e}"))?;
    }
    Ok(())
}
