//! A writer schema compiled against a source's declared fields (Avro schema
//! resolution, done once per writer schema rather than per record).
//!
//! The writer schema becomes an arena of [`Shape`]s (what the bytes of each type
//! look like, with named types and recursion resolved to indices) and one [`Step`]
//! per top-level field: read it into a declared slot, or skip its bytes. Whether the
//! writer schema can be read as the declared fields at all is settled here: a
//! declared field of another type, or a required one the writer lacks, makes the
//! whole schema a mismatch, and every record written with it goes to the dead-letter
//! topic as `schema_mismatch` with this module's message.

use std::collections::HashMap;

use apache_avro::schema::{InnerDecimalSchema, UuidSchema};
use apache_avro::Schema;

use crate::decode::fill::{accepts, expected, Kind};
use crate::decode::{Decoder, Slot};

/// How the bytes of one writer type are laid out.
#[derive(Clone, Debug)]
pub(super) enum Shape {
    Null,
    Bool,
    /// `long` (a zigzag varint), with the unit of a timestamp logical type.
    Long(Unit),
    /// `int`: the same varint, within 32 bits.
    Int(Unit),
    Float,
    Double,
    /// Length-prefixed bytes (`bytes`, decimals).
    Bytes,
    /// Length-prefixed UTF-8 (`string`, `uuid`).
    Str,
    Fixed(usize),
    /// A `decimal`: a big-endian two's-complement unscaled integer (length-prefixed
    /// bytes, or a fixed of this many bytes), read as `unscaled / 10^scale`.
    Decimal {
        fixed: Option<usize>,
        scale: u32,
    },
    /// An index into the symbols.
    Enum(Vec<String>),
    Array(usize),
    Map(usize),
    Union(Vec<usize>),
    Record(Vec<usize>),
}

/// What one unit of an integer means, for event times.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Unit {
    Plain,
    Days,
    Micros,
    Nanos,
}

/// What the decoder does with one top-level writer field.
#[derive(Debug)]
pub(super) struct Step {
    pub shape: usize,
    /// `None`: not declared by the source (skipped, reported as an unknown field).
    pub slot: Option<Slot>,
    pub name: Box<str>,
}

/// A writer schema ready to decode records.
#[derive(Debug)]
pub struct Plan {
    pub(super) shapes: Vec<Shape>,
    pub(super) steps: Vec<Step>,
    /// The fewest bytes a value of each shape takes (0 for `null`, an empty
    /// record): an array block may announce no more items than its bytes allow.
    pub(super) min_width: Vec<usize>,
}

impl Plan {
    /// Compiles `writer` for `decoder`'s declared fields; `Err` says why records of
    /// this schema cannot be read as them.
    pub fn compile(writer: &Schema, decoder: &Decoder) -> Result<Plan, String> {
        let Schema::Record(record) = writer else {
            return Err(format!("the writer schema is {}, not a record", describe_schema(writer)));
        };
        // a name defined twice (which the parser lets through) is ambiguous
        apache_avro::schema::ResolvedSchema::try_from(writer).map_err(|e| format!("the writer schema's names do not resolve: {e}"))?;
        let mut arena = Arena { shapes: Vec::new(), names: HashMap::new() };
        let mut steps = Vec::with_capacity(record.fields.len());
        // the top record's name first: a field may refer to it (a recursive type)
        let top = arena.reserve(&record.name.fullname(None));
        for field in &record.fields {
            let shape = arena.add(&field.schema)?;
            steps.push(Step { shape, slot: decoder.slots.get(&field.name).copied(), name: field.name.as_str().into() });
        }
        arena.shapes[top] = Shape::Record(steps.iter().map(|s| s.shape).collect());
        let min_width = min_widths(&arena.shapes);
        let plan = Plan { shapes: arena.shapes, steps, min_width };
        plan.check(decoder)?;
        Ok(plan)
    }

    /// The kinds a value of `shape` can take (one per union branch).
    pub(super) fn kinds(&self, shape: usize) -> Vec<Kind> {
        match &self.shapes[shape] {
            Shape::Union(branches) => branches.iter().map(|b| self.kind(*b)).collect(),
            _ => vec![self.kind(shape)],
        }
    }

    fn kind(&self, shape: usize) -> Kind {
        match &self.shapes[shape] {
            Shape::Null => Kind::Null,
            Shape::Bool => Kind::Bool,
            Shape::Long(_) | Shape::Int(_) => Kind::Int,
            Shape::Float | Shape::Double | Shape::Decimal { .. } => Kind::Float,
            Shape::Str | Shape::Enum(_) => Kind::Str,
            Shape::Bytes => Kind::Bytes,
            Shape::Fixed(_) => Kind::Other("a fixed"),
            Shape::Array(_) => Kind::Other("an array"),
            Shape::Map(_) => Kind::Other("a map"),
            Shape::Record(_) => Kind::Other("a record"),
            Shape::Union(_) => Kind::Other("a nested union"),
        }
    }

    /// Every declared slot is readable from the writer's fields: present (unless
    /// optional) with at least one branch of an accepted type.
    fn check(&self, decoder: &Decoder) -> Result<(), String> {
        for step in &self.steps {
            let Some(slot) = step.slot else { continue };
            let kinds = self.kinds(step.shape);
            let usable = kinds.iter().any(|k| *k != Kind::Null && accepts(slot, *k));
            let only_null = kinds.iter().all(|k| *k == Kind::Null);
            if only_null && required(slot, decoder) {
                return Err(format!("`{}` is always null in the writer schema and the source requires it", step.name));
            }
            if !usable && !only_null {
                let written: Vec<&str> = kinds.iter().filter(|k| **k != Kind::Null).map(|k| k.describe()).collect();
                return Err(format!("`{}` is {} in the writer schema; the source declares {}", step.name, written.join(" or "), expected(slot)));
            }
        }
        let mut names: Vec<(&String, &Slot)> = decoder.slots.iter().collect();
        names.sort_by(|a, b| a.0.cmp(b.0)); // the same message whatever the hash order
        for (name, slot) in names {
            if required(*slot, decoder) && !self.steps.iter().any(|s| *s.name == **name) {
                return Err(format!("the writer schema has no field `{name}` and the source requires it"));
            }
        }
        Ok(())
    }
}

/// The fewest bytes each shape's values take, by iteration to a fixed point (a
/// recursive type refers to itself through a union or an array, whose index or
/// count byte bounds it; a type that contains itself outright has no finite value
/// and stops growing at a cap).
fn min_widths(shapes: &[Shape]) -> Vec<usize> {
    const CAP: usize = 1 << 20;
    let mut w = vec![0usize; shapes.len()];
    for _ in 0..=shapes.len() {
        let mut changed = false;
        for i in 0..shapes.len() {
            let v = match &shapes[i] {
                Shape::Null => 0,
                Shape::Bool | Shape::Long(_) | Shape::Int(_) | Shape::Bytes | Shape::Str | Shape::Enum(_) | Shape::Array(_) | Shape::Map(_) => 1,
                Shape::Float => 4,
                Shape::Double => 8,
                Shape::Fixed(n) | Shape::Decimal { fixed: Some(n), .. } => *n,
                Shape::Decimal { fixed: None, .. } => 1,
                Shape::Union(b) => 1 + b.iter().map(|b| w[*b]).min().unwrap_or(0),
                Shape::Record(f) => f.iter().map(|f| w[*f]).fold(0usize, usize::saturating_add),
            }
            .min(CAP);
            if v != w[i] {
                w[i] = v;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    w
}

/// Whether a record must carry a value for `slot`.
fn required(slot: Slot, decoder: &Decoder) -> bool {
    match slot {
        Slot::Key | Slot::Time => true,
        Slot::EventId => false,
        Slot::Field { index, .. } => decoder.required.iter().any(|(i, _)| *i == index),
    }
}

/// The writer schema's types as they are laid out, named types by index.
struct Arena {
    shapes: Vec<Shape>,
    names: HashMap<String, usize>,
}

impl Arena {
    fn push(&mut self, shape: Shape) -> usize {
        self.shapes.push(shape);
        self.shapes.len() - 1
    }
    fn reserve(&mut self, name: &str) -> usize {
        let i = self.push(Shape::Null);
        self.names.insert(name.to_owned(), i);
        i
    }

    fn add(&mut self, schema: &Schema) -> Result<usize, String> {
        let shape = match schema {
            Schema::Null => Shape::Null,
            Schema::Boolean => Shape::Bool,
            Schema::Int | Schema::TimeMillis => Shape::Int(Unit::Plain),
            Schema::Long | Schema::TimeMicros => Shape::Long(Unit::Plain),
            Schema::Date => Shape::Int(Unit::Days),
            Schema::TimestampMillis | Schema::LocalTimestampMillis => Shape::Long(Unit::Plain),
            Schema::TimestampMicros | Schema::LocalTimestampMicros => Shape::Long(Unit::Micros),
            Schema::TimestampNanos | Schema::LocalTimestampNanos => Shape::Long(Unit::Nanos),
            Schema::Float => Shape::Float,
            Schema::Double => Shape::Double,
            Schema::Bytes | Schema::BigDecimal => Shape::Bytes,
            Schema::String | Schema::Uuid(UuidSchema::String) => Shape::Str,
            Schema::Uuid(UuidSchema::Bytes) => Shape::Bytes,
            Schema::Uuid(UuidSchema::Fixed(f)) | Schema::Duration(f) => return Ok(self.named(&f.name.fullname(None), Shape::Fixed(f.size))),
            Schema::Decimal(d) => {
                let scale = u32::try_from(d.scale).ok().filter(|s| *s <= 300).ok_or_else(|| format!("decimal scale {} is beyond 300", d.scale))?;
                match &d.inner {
                    InnerDecimalSchema::Bytes => Shape::Decimal { fixed: None, scale },
                    InnerDecimalSchema::Fixed(f) => return Ok(self.named(&f.name.fullname(None), Shape::Decimal { fixed: Some(f.size), scale })),
                }
            }
            Schema::Fixed(f) => return Ok(self.named(&f.name.fullname(None), Shape::Fixed(f.size))),
            Schema::Enum(e) => return Ok(self.named(&e.name.fullname(None), Shape::Enum(e.symbols.clone()))),
            Schema::Array(a) => Shape::Array(self.add(&a.items)?),
            Schema::Map(m) => Shape::Map(self.add(&m.types)?),
            Schema::Union(u) => Shape::Union(u.variants().iter().map(|v| self.add(v)).collect::<Result<_, _>>()?),
            Schema::Record(r) => {
                let i = self.reserve(&r.name.fullname(None));
                let fields = r.fields.iter().map(|f| self.add(&f.schema)).collect::<Result<_, _>>()?;
                self.shapes[i] = Shape::Record(fields);
                return Ok(i);
            }
            Schema::Ref { name } => {
                let full = name.fullname(None);
                return self.names.get(&full).copied().ok_or_else(|| format!("the writer schema refers to `{full}`, which it does not define"));
            }
        };
        Ok(self.push(shape))
    }

    fn named(&mut self, name: &str, shape: Shape) -> usize {
        let i = self.push(shape);
        self.names.insert(name.to_owned(), i);
        i
    }
}

fn describe_schema(s: &Schema) -> &'static str {
    match s {
        Schema::Array(_) => "an array",
        Schema::Map(_) => "a map",
        Schema::Union(_) => "a union",
        Schema::Enum(_) => "an enum",
        Schema::Fixed(_) => "a fixed",
        _ => "a primitive type",
    }
}
