//! Confluent-framed Protobuf: each record names its writer's `.proto` file by
//! schema id (in a Schema Registry) and the message in that file by message
//! indexes. Each id's file is fetched and compiled once; each message of it that
//! records name is resolved against the source's declared fields once, then its
//! records are read as bare messages are.
//!
//! Evolution follows Protobuf's rules by field number, as for bare messages; on
//! top, a writer file in which a declared field changed type makes that id's
//! records `schema_mismatch`, as does a message of another name than the source's
//! `message` (when it sets one). An id the registry lacks (or of another type, or
//! with references to other subjects) is `unknown_schema`; a header that is not
//! Confluent's, or message indexes naming no message of the file, `not_protobuf`.
//!
//! ```
//! use vigil::decode::protobuf::{frame, split_frame};
//!
//! // schema id 42, the file's second top-level message ([1]), then the message
//! let bytes = frame(42, &[1], &[0x08, 0x01]);
//! assert_eq!(bytes, [0, 0, 0, 0, 42, 2, 2, 0x08, 0x01]);
//! let (id, path, message) = split_frame(&bytes).unwrap();
//! assert_eq!((id, path.as_slice(), message), (42, &[1u32][..], &[0x08u8, 0x01][..]));
//! // the first message, the common case, is one zero byte
//! assert_eq!(frame(42, &[0], &[]), [0, 0, 0, 0, 42, 0]);
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prost_reflect::{FileDescriptor, MessageDescriptor};

use super::plan::Plan;
use super::wire::{message_indexes, put_indexes, Indexes};
use crate::decode::registry::{Registry, SchemaType};
use crate::decode::schema_cache::SchemaCache;
use crate::decode::{Decoded, Decoder};
use crate::spec::RegistrySettings;
use crate::types::{Reason, Rejection};

/// The Confluent wire format's first byte.
const MAGIC: u8 = 0;

/// The schema id, the message indexes and the message of a Confluent-framed
/// Protobuf record.
pub fn split_frame(bytes: &[u8]) -> Result<(u32, Indexes, &[u8]), Rejection> {
    let [MAGIC, a, b, c, d, rest @ ..] = bytes else {
        return Err(Rejection::new(Reason::NotProtobuf, "no Confluent wire-format header (a zero byte, a 4-byte schema id, the message indexes)"));
    };
    let (path, message) = message_indexes(rest).map_err(|e| Rejection::new(Reason::NotProtobuf, e))?;
    Ok((u32::from_be_bytes([*a, *b, *c, *d]), path, message))
}

/// `message` framed in the Confluent wire format: schema `id`, message `path`
/// (`[0]`: the file's first message). Producers and tests.
///
/// # Panics
/// On a path that Confluent's readers (and [`split_frame`]) cannot read back:
/// empty, deeper than 16, or an index above `i32::MAX`.
pub fn frame(id: u32, path: &[u32], message: &[u8]) -> Vec<u8> {
    assert!(
        !path.is_empty() && path.len() <= super::wire::MAX_INDEXES && path.iter().all(|&i| i <= i32::MAX as u32),
        "message indexes {path:?}: 1 to 16 indexes of at most 2^31 - 1"
    );
    let mut out = Vec::with_capacity(6 + message.len());
    out.push(MAGIC);
    out.extend(id.to_be_bytes());
    put_indexes(&mut out, path);
    out.extend_from_slice(message);
    out
}

/// One writer `.proto` file, and the plans of those of its messages that records
/// have named (at most one per message of the file).
pub(crate) struct Writer {
    file: FileDescriptor,
    plans: Mutex<HashMap<Vec<u32>, Result<Arc<Plan>, String>>>,
}

impl Writer {
    /// The message at `path` in the file, if there is one. Nested messages are
    /// counted as Confluent's Java serializer counts them, in the `.proto` text:
    /// the entry types a compiler makes for `map` fields and the types of
    /// (proto2) groups are not messages the text declares, so they are skipped.
    fn message(&self, path: &[u32]) -> Option<MessageDescriptor> {
        let (first, nested) = path.split_first()?;
        let mut m = self.file.messages().nth(*first as usize)?;
        for &i in nested {
            let groups: Vec<MessageDescriptor> = m.fields().filter(|f| f.is_group()).filter_map(|f| f.kind().as_message().cloned()).collect();
            let child = m.child_messages().filter(|c| !c.is_map_entry() && !groups.contains(c)).nth(i as usize)?;
            m = child;
        }
        Some(m)
    }
}

/// A registry source's writer files by schema id.
pub(crate) struct Writers {
    registry: Registry,
    /// The full name records' messages must have, if the source names one.
    expected: Option<String>,
    cache: SchemaCache<Writer>,
}

impl Writers {
    pub(crate) fn new(settings: &RegistrySettings, expected: Option<String>) -> Writers {
        Writers { registry: Registry::new(settings), expected, cache: SchemaCache::default() }
    }

    pub(crate) fn decode(&self, bytes: &[u8], decoder: &Decoder, unknown: &mut dyn FnMut(&str)) -> Result<Decoded, Rejection> {
        let (id, path, message) = split_frame(bytes)?;
        let writer = self.cache.get(id, self.registry.url(), |id| self.registry.schema_of(id, SchemaType::Protobuf).map(|text| compile(id, &text)))?;
        let plan = self.plan(id, &writer, path.as_slice(), decoder)?;
        plan.decode(message, decoder, unknown)
    }

    /// The plan of message `path` of schema `id`, compiled on first use.
    fn plan(&self, id: u32, writer: &Writer, path: &[u32], decoder: &Decoder) -> Result<Arc<Plan>, Rejection> {
        let mismatch = |detail: &String| Rejection::new(Reason::SchemaMismatch, format!("schema id {id}: {detail}"));
        let mut plans = writer.plans.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(known) = plans.get(path) {
            return known.as_ref().map(Arc::clone).map_err(mismatch);
        }
        let Some(message) = writer.message(path) else {
            return Err(Rejection::new(Reason::NotProtobuf, format!("message indexes {path:?} name no message of schema id {id}")));
        };
        let plan = match &self.expected {
            Some(want) if message.full_name() != want => Err(format!("the record is a `{}`, and this source reads `{want}`", message.full_name())),
            _ => Plan::compile(&message, decoder).map(Arc::new),
        };
        if let Err(detail) = &plan {
            tracing::error!(registry = self.registry.url(), id, message = message.full_name(), error = %detail, "a writer's message cannot be read as the source's fields: its records go to the dead-letter topic");
        }
        plans.entry(path.to_vec()).or_insert(plan).as_ref().map(Arc::clone).map_err(mismatch)
    }
}

/// A registry's `.proto` text compiled; `Err` (every record of the id a
/// `schema_mismatch`) when it does not compile.
fn compile(id: u32, text: &str) -> Result<Writer, String> {
    let name = format!("registry-schema-{id}.proto");
    let pool = super::compile_text(&name, text)?;
    let file = pool.get_file_by_name(&name).ok_or("the compiled .proto is missing")?;
    Ok(Writer { file, plans: Mutex::new(HashMap::new()) })
}
