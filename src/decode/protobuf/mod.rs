//! Protobuf sources: every record is one message of a type named by the source,
//! defined in a `.proto` file (compiled at load by protox: no `protoc` needed) or a
//! compiled descriptor set; or Confluent-framed messages whose writer's `.proto` is
//! in a Schema Registry (`writers.rs`: a zero byte, the schema id, the message
//! indexes naming the message in that file, the message).
//!
//! The message type is resolved once against the source's declared fields
//! (`plan.rs`, [`Plan`]), by field name; then each record's bytes are read straight
//! into the engine's record (`wire.rs`), with no message object built. Protobuf's
//! own evolution rules hold: a field the writer added (a number this schema does
//! not know) is skipped and counted as an unknown field `#<number>`; a field this
//! schema has but the writer did not send takes its default value (proto3 scalars)
//! or is absent (fields with presence: `optional`, messages); the last value of a
//! field on the wire wins. Bytes that are not a message of this type go to the
//! dead-letter topic as `not_protobuf`; a declared field that cannot be read as
//! declared makes every record `schema_mismatch`, and the job says so when it loads.
//!
//! ```
//! use vigil::decode::Decoder;
//! use vigil::graph::Source;
//! use vigil::spec::{FieldType, ProtobufSchema};
//!
//! let proto = r#"syntax = "proto3";
//!     message Tx { string card = 1; int64 ts = 2; double amount = 3; string note = 4; }"#;
//! let source = Source::protobuf("tx", ProtobufSchema::from_text(proto, None))
//!     .key("card")
//!     .field("amount", FieldType::F64);
//! let decoder = Decoder::for_source(source.spec(), &[]);
//! // card "c1" (field 1), ts 1_700_000_000_000 (field 2), amount 12.5 (field 3), note "hi" (field 4)
//! let mut msg = vec![0x0a, 2, b'c', b'1', 0x10];
//! let mut ts = 1_700_000_000_000u64;
//! while ts >= 0x80 {
//!     msg.push((ts as u8) | 0x80);
//!     ts >>= 7;
//! }
//! msg.push(ts as u8);
//! msg.push(0x19);
//! msg.extend(12.5f64.to_le_bytes());
//! msg.extend([0x22, 2, b'h', b'i']);
//! let mut unknown = Vec::new();
//! let record = decoder.decode(Some(&msg), &mut |name| unknown.push(name.to_owned())).unwrap();
//! assert_eq!((record.key.as_str(), record.time_ms, record.numeric[0]), ("c1", 1_700_000_000_000, 12.5));
//! assert_eq!(unknown, ["note"]); // in the message, not declared: skipped and counted
//! ```

mod plan;
mod wire;
mod writers;

use std::path::Path;

use prost_reflect::{DescriptorPool, MessageDescriptor};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver, IncludeFileResolver};

pub use plan::Plan;
pub use wire::Indexes;
pub use writers::{frame, split_frame};

use crate::decode::{Decoded, Decoder};
use crate::spec::{ProtoDefinition, ProtobufSchema, SourceSpec};
use crate::types::{Reason, Rejection};

/// Where a Protobuf source's decoder gets its plans.
pub(crate) enum ProtobufDecoder {
    /// One message type for every record (or why it cannot be read).
    Fixed(Result<Plan, String>),
    /// Writer schemas from a registry, by id.
    Registry(writers::Writers),
}

impl ProtobufDecoder {
    /// Settings into a decoder; a definition that does not compile or does not fit
    /// the declared fields is logged loudly (each record then goes to the
    /// dead-letter topic with the reason).
    pub(crate) fn new(schema: &ProtobufSchema, decoder: &Decoder, topic: &str) -> ProtobufDecoder {
        if let ProtoDefinition::Registry(settings) = &schema.definition {
            return ProtobufDecoder::Registry(writers::Writers::new(settings, schema.message.clone()));
        }
        let plan = message(schema).and_then(|m| Plan::compile(&m, decoder));
        if let Err(e) = &plan {
            tracing::error!(topic, error = %e, "the Protobuf source's message type cannot be read as its declared fields: every record goes to the dead-letter topic");
        }
        ProtobufDecoder::Fixed(plan)
    }

    pub(crate) fn decode(&self, bytes: &[u8], decoder: &Decoder, unknown: &mut dyn FnMut(&str)) -> Result<Decoded, Rejection> {
        match self {
            ProtobufDecoder::Fixed(Ok(plan)) => plan.decode(bytes, decoder, unknown),
            ProtobufDecoder::Fixed(Err(e)) => Err(Rejection::new(Reason::SchemaMismatch, e.clone())),
            ProtobufDecoder::Registry(writers) => writers.decode(bytes, decoder, unknown),
        }
    }
}

/// A `.proto` text as a file, for the compiler.
struct Inline {
    name: String,
    text: String,
}

impl FileResolver for Inline {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if name == self.name {
            File::from_source(name, &self.text)
        } else {
            Err(protox::Error::file_not_found(name))
        }
    }
}

/// The descriptors of a definition.
fn pool(definition: &ProtoDefinition) -> Result<DescriptorPool, String> {
    let compile = |resolver: ChainFileResolver, name: &str| {
        let mut compiler = protox::Compiler::with_file_resolver(resolver);
        compiler.include_imports(true);
        compiler.open_file(name).map(|c| c.descriptor_pool()).map_err(|e| format!("the .proto does not compile: {e}"))
    };
    match definition {
        ProtoDefinition::File(path) => {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let name = path.file_name().ok_or_else(|| format!("`{}` names no file", path.display()))?;
            let mut chain = ChainFileResolver::new();
            chain.add(IncludeFileResolver::new(dir.to_owned()));
            chain.add(GoogleFileResolver::new());
            compile(chain, &name.to_string_lossy())
        }
        ProtoDefinition::Text { name, text } => {
            let mut chain = ChainFileResolver::new();
            chain.add(Inline { name: name.clone(), text: text.clone() });
            chain.add(GoogleFileResolver::new());
            compile(chain, name)
        }
        ProtoDefinition::DescriptorSet(bytes) => DescriptorPool::decode(bytes.as_slice()).map_err(|e| format!("the descriptor set does not decode: {e}")),
        ProtoDefinition::Registry(_) => Err("the message types come from the registry, record by record".into()),
    }
}

/// `.proto` text (`name` in messages) compiled; its imports: the well-known types.
fn compile_text(name: &str, text: &str) -> Result<DescriptorPool, String> {
    pool(&ProtoDefinition::Text { name: name.to_owned(), text: text.to_owned() })
}

/// The message type `schema` names (or its definition's only top-level message).
pub fn message(schema: &ProtobufSchema) -> Result<MessageDescriptor, String> {
    let pool = pool(&schema.definition)?;
    match &schema.message {
        Some(name) => pool.get_message_by_name(name).ok_or_else(|| {
            let known: Vec<String> = pool.all_messages().filter(|m| m.parent_message().is_none()).map(|m| m.full_name().to_owned()).take(20).collect();
            format!("no message `{name}` in the definition (it has {})", known.join(", "))
        }),
        None => {
            // the top-level messages of the files given, not of their imports
            let own: Vec<MessageDescriptor> = pool
                .all_messages()
                .filter(|m| m.parent_message().is_none() && !m.parent_file().name().starts_with("google/protobuf/"))
                .filter(|m| match &schema.definition {
                    ProtoDefinition::DescriptorSet(_) => true,
                    ProtoDefinition::File(p) => p.file_name().is_some_and(|f| f.to_string_lossy() == m.parent_file().name()),
                    ProtoDefinition::Text { name, .. } => m.parent_file().name() == name,
                    ProtoDefinition::Registry(_) => false,
                })
                .collect();
            match own.as_slice() {
                [one] => Ok(one.clone()),
                [] => Err("the definition has no message".into()),
                many => Err(format!(
                    "the definition has {} messages ({}): name one with `message`",
                    many.len(),
                    many.iter().map(|m| m.full_name()).take(20).collect::<Vec<_>>().join(", ")
                )),
            }
        }
    }
}

/// Checks at load time that a Protobuf source's message type compiles and can be
/// read as its declared fields (the error names the field).
pub fn check_schema(spec: &SourceSpec) -> anyhow::Result<()> {
    if let crate::spec::SourceFormat::Protobuf(schema) = &spec.format {
        if matches!(schema.definition, ProtoDefinition::Registry(_)) {
            return Ok(()); // each writer schema is checked as it arrives
        }
        let decoder = Decoder::for_source(&SourceSpec { format: crate::spec::SourceFormat::Json, ..spec.clone() }, &[]);
        let message = message(schema).map_err(|e| anyhow::anyhow!("the Protobuf schema: {e}"))?;
        Plan::compile(&message, &decoder).map_err(|e| anyhow::anyhow!("the Protobuf message cannot be read as the declared fields: {e}"))?;
    }
    Ok(())
}
