//! A Protobuf message type compiled against a source's declared fields, once per
//! source rather than per record: for each field number of the message, what its
//! bytes are and which declared slot (if any) they fill.
//!
//! Whether the message can be read as the declared fields at all is settled here:
//! a declared field of another type (a string declared `f64`, a repeated field, a
//! message other than `google.protobuf.Timestamp` for the event time), or a
//! required one the message lacks, makes every record a `schema_mismatch` with this
//! module's message.

use std::collections::HashMap;

use prost_reflect::{Cardinality, FieldDescriptor, Kind as PbKind, MessageDescriptor};

use crate::decode::fill::{accepts, expected, Kind, Val};
use crate::decode::{Decoder, Slot};

/// Field numbers below this are looked up in a table; larger ones in a map.
const DENSE: u32 = 1_024;

/// How one field's value is laid out on the wire.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Scalar {
    /// A varint read as a signed 32-bit integer (`int32`: sign-extended to 64 bits).
    Int32,
    Int64,
    Uint32,
    Uint64,
    /// Zigzag varints.
    Sint32,
    Sint64,
    Fixed32,
    Fixed64,
    Sfixed32,
    Sfixed64,
    Bool,
    Float,
    Double,
    Str,
    Bytes,
    /// A varint naming an enum value; the value's name is what a slot reads.
    Enum(HashMap<i32, Box<str>>),
    /// `google.protobuf.Timestamp` (seconds and nanos), read as epoch milliseconds.
    Timestamp,
    /// Any other message: skipped.
    Message,
}

impl Scalar {
    /// The wire type its values are written with (unpacked).
    pub(super) fn wire_type(&self) -> u8 {
        match self {
            Scalar::Int32 | Scalar::Int64 | Scalar::Uint32 | Scalar::Uint64 | Scalar::Sint32 | Scalar::Sint64 | Scalar::Bool | Scalar::Enum(_) => 0,
            Scalar::Fixed64 | Scalar::Sfixed64 | Scalar::Double => 1,
            Scalar::Str | Scalar::Bytes | Scalar::Timestamp | Scalar::Message => 2,
            Scalar::Fixed32 | Scalar::Sfixed32 | Scalar::Float => 5,
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Scalar::Bool => Kind::Bool,
            Scalar::Float | Scalar::Double => Kind::Float,
            Scalar::Str | Scalar::Enum(_) => Kind::Str,
            Scalar::Bytes => Kind::Bytes,
            Scalar::Message => Kind::Other("a message"),
            _ => Kind::Int,
        }
    }

    /// The value a field without presence has when it is not on the wire (proto3's
    /// implicit defaults: zero, false, empty, the enum's value 0).
    pub(super) fn default_value(&self) -> Option<Val<'_>> {
        Some(match self {
            Scalar::Bool => Val::Bool,
            Scalar::Float | Scalar::Double => Val::Float(0.0),
            Scalar::Str => Val::Str(""),
            Scalar::Bytes => Val::Bytes(b""),
            Scalar::Enum(names) => Val::Str(names.get(&0)?),
            Scalar::Timestamp | Scalar::Message => return None,
            _ => Val::Int(0),
        })
    }
}

/// What the decoder does with one field of the message.
#[derive(Debug)]
pub(super) struct Step {
    pub name: Box<str>,
    pub scalar: Scalar,
    /// `repeated` (or a map): never a slot's value; skipped, packed or not.
    pub repeated: bool,
    /// `None`: not declared by the source (skipped, reported as an unknown field).
    pub slot: Option<Slot>,
    /// Where the field's value is kept while the message is read (the last one on
    /// the wire wins), for steps with a slot.
    pub held: Option<usize>,
    /// A field without presence (proto3's plain scalars): when it is not on the
    /// wire, it holds its type's default value (else it is absent).
    pub implicit: bool,
}

/// A message type ready to decode records.
#[derive(Debug)]
pub struct Plan {
    pub(super) steps: Vec<Step>,
    dense: Vec<Option<u32>>,
    sparse: HashMap<u32, u32>,
    /// The steps with a slot, in field order (indices into `steps`).
    pub(super) slotted: Vec<usize>,
    /// The message's full name, for messages.
    pub(super) message: String,
}

impl Plan {
    /// Compiles `message` for `decoder`'s declared fields; `Err` says why records of
    /// this type cannot be read as them.
    pub fn compile(message: &MessageDescriptor, decoder: &Decoder) -> Result<Plan, String> {
        let mut plan = Plan { steps: Vec::new(), dense: Vec::new(), sparse: HashMap::new(), slotted: Vec::new(), message: message.full_name().to_owned() };
        for field in message.fields() {
            let scalar = scalar(&field);
            let slot = decoder.slots.get(field.name()).copied();
            let repeated = field.is_list() || field.is_map();
            if let Some(slot) = slot {
                check(&field, &scalar, repeated, slot)?;
            }
            let presence = field.supports_presence() || field.cardinality() == Cardinality::Required;
            let held = slot.map(|_| {
                plan.slotted.push(plan.steps.len());
                plan.slotted.len() - 1
            });
            let index = plan.steps.len() as u32;
            let number = field.number();
            if number < DENSE {
                if plan.dense.len() <= number as usize {
                    plan.dense.resize(number as usize + 1, None);
                }
                plan.dense[number as usize] = Some(index);
            } else {
                plan.sparse.insert(number, index);
            }
            plan.steps.push(Step { name: field.name().into(), scalar, repeated, slot, held, implicit: !presence && !repeated });
        }
        let mut names: Vec<(&String, &Slot)> = decoder.slots.iter().collect();
        names.sort_by(|a, b| a.0.cmp(b.0)); // the same message whatever the hash order
        for (name, slot) in names {
            if required(*slot, decoder) && message.get_field_by_name(name).is_none() {
                return Err(format!("message `{}` has no field `{name}` and the source requires it", message.full_name()));
            }
        }
        Ok(plan)
    }

    /// The step of field `number`, if the message has that field.
    pub(super) fn step(&self, number: u32) -> Option<&Step> {
        let i = if number < DENSE { self.dense.get(number as usize).copied().flatten() } else { self.sparse.get(&number).copied() };
        i.map(|i| &self.steps[i as usize])
    }
}

fn scalar(field: &FieldDescriptor) -> Scalar {
    match field.kind() {
        PbKind::Double => Scalar::Double,
        PbKind::Float => Scalar::Float,
        PbKind::Int32 => Scalar::Int32,
        PbKind::Int64 => Scalar::Int64,
        PbKind::Uint32 => Scalar::Uint32,
        PbKind::Uint64 => Scalar::Uint64,
        PbKind::Sint32 => Scalar::Sint32,
        PbKind::Sint64 => Scalar::Sint64,
        PbKind::Fixed32 => Scalar::Fixed32,
        PbKind::Fixed64 => Scalar::Fixed64,
        PbKind::Sfixed32 => Scalar::Sfixed32,
        PbKind::Sfixed64 => Scalar::Sfixed64,
        PbKind::Bool => Scalar::Bool,
        PbKind::String => Scalar::Str,
        PbKind::Bytes => Scalar::Bytes,
        PbKind::Enum(e) => Scalar::Enum(e.values().map(|v| (v.number(), v.name().into())).collect()),
        PbKind::Message(m) if m.full_name() == "google.protobuf.Timestamp" => Scalar::Timestamp,
        PbKind::Message(_) => Scalar::Message,
    }
}

/// A declared field can be read from `field`: one value (not repeated) of a type
/// the slot accepts; a `Timestamp` only for the event time.
fn check(field: &FieldDescriptor, scalar: &Scalar, repeated: bool, slot: Slot) -> Result<(), String> {
    let written = if repeated {
        "a repeated field"
    } else if *scalar == Scalar::Timestamp {
        if matches!(slot, Slot::Time) {
            return Ok(());
        }
        "a google.protobuf.Timestamp"
    } else if accepts(slot, scalar.kind()) {
        return Ok(());
    } else {
        scalar.kind().describe()
    };
    Err(format!("`{}` is {written} in the message; the source declares {}", field.name(), expected(slot)))
}

/// Whether a record must carry a value for `slot`.
fn required(slot: Slot, decoder: &Decoder) -> bool {
    match slot {
        Slot::Key | Slot::Time => true,
        Slot::EventId => false,
        Slot::Field { index, .. } => decoder.required.iter().any(|(i, _)| *i == index),
    }
}
