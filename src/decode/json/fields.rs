//! The record being read, field by field: what a top-level JSON field means for
//! the job (key, event time, event id, a declared field), its type checks, limits
//! and expectations, apart from the parsing so either can be read on its own.

use std::borrow::Cow;

use super::super::{expect, Decoded, Decoder, Slot, MAX_ABS_VALUE, MAX_KEY_BYTES};
use crate::spec::FieldType;
use crate::types::{Reason, Rejection};

/// One JSON value of a top-level field; nested values are only classified.
pub(super) enum Scalar<'a> {
    Null,
    Bool,
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
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

    /// A non-negative integer as serde_json hands it over: an `Int` if it fits.
    pub(super) fn unsigned(u: u64) -> Scalar<'static> {
        i64::try_from(u).map(Scalar::Int).unwrap_or(Scalar::Float(u as f64))
    }
}

/// The record so far.
pub(super) struct Fields<'d> {
    dec: &'d Decoder,
    key: Option<String>,
    time: Option<Result<i64, String>>,
    event_id: Option<String>,
    seen: Vec<bool>,
    seen_key: bool,
    seen_time: bool,
    seen_id: bool,
    numeric: Vec<f64>,
    strings: Vec<Option<String>>,
    judged: expect::Judged,
}

impl<'d> Fields<'d> {
    pub(super) fn new(dec: &'d Decoder) -> Self {
        Fields {
            dec,
            key: None,
            time: None,
            event_id: None,
            seen: vec![false; dec.fields],
            seen_key: false,
            seen_time: false,
            seen_id: false,
            numeric: vec![f64::NAN; dec.numeric],
            strings: vec![None; dec.kept],
            judged: expect::Judged::default(),
        }
    }

    /// What `name` means, or `None` for a name the schema does not declare.
    pub(super) fn slot(&self, name: &str) -> Option<Slot> {
        self.dec.slots.get(name).copied()
    }

    /// Marks `slot` as met; a second time is a duplicate field (checked before the
    /// value is read, as serde_json's decoder always did).
    pub(super) fn once(&mut self, slot: Slot, name: &str) -> Result<(), Rejection> {
        let again = match slot {
            Slot::Key => std::mem::replace(&mut self.seen_key, true),
            Slot::Time => std::mem::replace(&mut self.seen_time, true),
            Slot::EventId => std::mem::replace(&mut self.seen_id, true),
            Slot::Field { index, .. } => std::mem::replace(&mut self.seen[index], true),
        };
        match again {
            true => Err(Rejection::new(Reason::DuplicateField, format!("field `{name}` appears twice"))),
            false => Ok(()),
        }
    }

    /// Takes the value of a known field.
    pub(super) fn value(&mut self, name: &str, slot: Slot, value: Scalar<'_>) -> Result<(), Rejection> {
        match slot {
            Slot::Key | Slot::EventId => self.identifier(name, slot, value),
            Slot::Time => {
                self.time = Some(match value {
                    Scalar::Int(ms) => Ok(ms),
                    Scalar::Float(ms) if ms.is_finite() && ms.abs() < 9.0e15 => Ok(ms.floor() as i64),
                    Scalar::Float(ms) => Err(format!("epoch millis {ms} out of range")),
                    Scalar::Str(s) => {
                        chrono::DateTime::parse_from_rfc3339(&s).map(|t| t.timestamp_millis()).map_err(|e| format!("`{s:.40}` is not RFC 3339: {e}"))
                    }
                    Scalar::Null => return Err(Rejection::new(Reason::MissingField, format!("`{name}` is null"))),
                    other => Err(format!("event time is {}, expected epoch millis or RFC 3339", other.kind())),
                });
                Ok(())
            }
            Slot::Field { index, ty, numeric, kept } => self.field(name, index, ty, numeric, kept, value),
        }
    }

    /// The key or the event id: a string or an integer, 1 to 512 bytes.
    fn identifier(&mut self, name: &str, slot: Slot, value: Scalar<'_>) -> Result<(), Rejection> {
        let text = match value {
            Scalar::Str(s) => s.into_owned(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Null if matches!(slot, Slot::EventId) => return Ok(()),
            Scalar::Null => return Err(Rejection::new(Reason::MissingField, format!("`{name}` is null"))),
            other => return Err(Rejection::new(Reason::WrongType, format!("`{name}` is {}, expected a string or integer", other.kind()))),
        };
        if text.is_empty() || text.len() > MAX_KEY_BYTES {
            return Err(Rejection::new(Reason::BadKey, format!("`{name}` has {} bytes (1..={MAX_KEY_BYTES} allowed)", text.len())));
        }
        match slot {
            Slot::Key => self.key = Some(text),
            _ => self.event_id = Some(text),
        }
        Ok(())
    }

    /// A declared field: its type, the value limit, its expectations.
    fn field(&mut self, name: &str, index: usize, ty: FieldType, numeric: Option<usize>, kept: Option<usize>, value: Scalar<'_>) -> Result<(), Rejection> {
        let ok = match (ty, &value) {
            (_, Scalar::Null) => {
                self.seen[index] = false; // null counts as absent
                true
            }
            (FieldType::F64, Scalar::Int(_) | Scalar::Float(_)) => true,
            (FieldType::I64, Scalar::Int(_)) => true,
            (FieldType::Str, Scalar::Str(_)) | (FieldType::Bool, Scalar::Bool) => true,
            _ => false,
        };
        if !ok {
            return Err(Rejection::new(Reason::WrongType, format!("`{name}` is {}, expected {ty:?}", value.kind())));
        }
        if let Some(n) = numeric {
            let v = match value {
                Scalar::Int(i) => i as f64,
                Scalar::Float(f) => f,
                _ => f64::NAN,
            };
            if v.abs() > MAX_ABS_VALUE {
                return Err(Rejection::new(Reason::OutOfRange, format!("`{name}` is {v:e}, beyond ±{MAX_ABS_VALUE:e}")));
            }
            if let (Some(e), false) = (&self.dec.expect, v.is_nan()) {
                e.number(index, v, &mut self.judged);
            }
            self.numeric[n] = v;
        }
        if let (Some(e), Scalar::Str(text)) = (&self.dec.expect, &value) {
            e.text(index, text, &mut self.judged);
        }
        if let (Some(k), Scalar::Str(text)) = (kept, value) {
            self.strings[k] = Some(text.into_owned());
        }
        Ok(())
    }

    /// The record, once every field is read: key, time and required fields present.
    pub(super) fn finish(self) -> Result<(Decoded, expect::Judged), Rejection> {
        let key = self.key.ok_or_else(|| Rejection::new(Reason::MissingField, "the key field is missing"))?;
        let time = match self.time {
            None => return Err(Rejection::new(Reason::MissingField, "the event time field is missing")),
            Some(Err(detail)) => return Err(Rejection::new(Reason::BadTimestamp, detail)),
            Some(Ok(t)) => t,
        };
        if let Some((_, name)) = self.dec.required.iter().find(|(i, _)| !self.seen[*i]) {
            return Err(Rejection::new(Reason::MissingField, format!("required field `{name}` is missing")));
        }
        Ok((Decoded { key, event_id: self.event_id, time_ms: time, numeric: self.numeric, strings: self.strings }, self.judged))
    }
}
