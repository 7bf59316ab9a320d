//! One decoded record as its binary decoders (Avro, Protobuf) fill it: a value
//! read for a declared slot ([`Val`]) is checked against what the slot accepts
//! and stored with the JSON decoder's verdicts (the same reasons, the same
//! limits, the source's expectations), so that every format rejects alike.

use crate::decode::{Decoded, Decoder, Slot, MAX_ABS_VALUE, MAX_KEY_BYTES};
use crate::spec::FieldType;
use crate::types::{Reason, Rejection};

/// What a value of some shape turns into, for the checks against a slot.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(in crate::decode) enum Kind {
    Null,
    Bool,
    Int,
    Float,
    Str,
    /// `bytes`: read as a string where one is declared (Avro promotes bytes to
    /// string), if UTF-8.
    Bytes,
    Other(&'static str),
}

impl Kind {
    pub(in crate::decode) fn describe(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool => "a boolean",
            Kind::Int => "an integer",
            Kind::Float => "a floating-point number",
            Kind::Str => "a string",
            Kind::Bytes => "bytes",
            Kind::Other(k) => k,
        }
    }
}

/// Whether a value of `kind` can fill `slot` (null aside: it means absent). The
/// same rules as the JSON decoder's: keys and ids are strings or integers, the
/// event time is epoch milliseconds (integer, float, timestamp logical types) or an
/// RFC 3339 string, `f64` fields take any number, `i64` fields integers.
pub(in crate::decode) fn accepts(slot: Slot, kind: Kind) -> bool {
    match slot {
        Slot::Key | Slot::EventId => matches!(kind, Kind::Str | Kind::Bytes | Kind::Int),
        Slot::Time => matches!(kind, Kind::Int | Kind::Float | Kind::Str),
        Slot::Field { ty, .. } => matches!(
            (ty, kind),
            (FieldType::F64, Kind::Int | Kind::Float) | (FieldType::I64, Kind::Int) | (FieldType::Str, Kind::Str | Kind::Bytes) | (FieldType::Bool, Kind::Bool)
        ),
    }
}

/// What a declared slot expects, in words.
pub(in crate::decode) fn expected(slot: Slot) -> String {
    match slot {
        Slot::Key | Slot::EventId => "a string or integer".into(),
        Slot::Time => "epoch millis, a timestamp or an RFC 3339 string".into(),
        Slot::Field { ty, .. } => format!("{ty:?}"),
    }
}

/// One value read for a slot.
#[derive(Clone, Copy, Debug)]
pub(in crate::decode) enum Val<'a> {
    Null,
    Bool,
    Int(i64),
    Float(f64),
    Str(&'a str),
    Bytes(&'a [u8]),
    Other(&'static str),
}

impl Val<'_> {
    pub(in crate::decode) fn kind(&self) -> Kind {
        match self {
            Val::Null => Kind::Null,
            Val::Bool => Kind::Bool,
            Val::Int(_) => Kind::Int,
            Val::Float(_) => Kind::Float,
            Val::Str(_) => Kind::Str,
            Val::Bytes(_) => Kind::Bytes,
            Val::Other(k) => Kind::Other(k),
        }
    }
}

/// A record's slots as they are filled, with the JSON decoder's verdicts.
pub(in crate::decode) struct Fill {
    key: Option<String>,
    time: Option<Result<i64, String>>,
    event_id: Option<String>,
    seen: Vec<bool>,
    numeric: Vec<f64>,
    strings: Vec<Option<String>>,
    /// What the source's expectations made of the values so far.
    judged: crate::decode::expect::Judged,
}

impl Fill {
    pub(in crate::decode) fn new(dec: &Decoder) -> Fill {
        Fill {
            key: None,
            time: None,
            event_id: None,
            seen: vec![false; dec.fields],
            numeric: vec![f64::NAN; dec.numeric],
            strings: vec![None; dec.kept],
            judged: Default::default(),
        }
    }

    pub(in crate::decode) fn set(&mut self, slot: Slot, name: &str, value: Val, dec: &Decoder) -> Result<(), Rejection> {
        let kind = value.kind();
        if kind == Kind::Null {
            return match slot {
                Slot::Key | Slot::Time => Err(Rejection::new(Reason::MissingField, format!("`{name}` is null"))),
                _ => Ok(()), // absent; a required field is reported by `finish`
            };
        }
        if !accepts(slot, kind) {
            return Err(Rejection::new(
                Reason::SchemaMismatch,
                format!("`{name}` holds {} (a branch of its union); the source declares {}", kind.describe(), expected(slot)),
            ));
        }
        // bytes read as a string (Avro's promotion) must be UTF-8
        let value =
            match value {
                Val::Bytes(b) => Val::Str(std::str::from_utf8(b).map_err(|_| {
                    Rejection::new(Reason::SchemaMismatch, format!("`{name}` holds bytes that are not UTF-8 where the source declares a string"))
                })?),
                v => v,
            };
        match slot {
            Slot::Key | Slot::EventId => {
                let text = match value {
                    Val::Str(s) => s.to_owned(),
                    Val::Int(i) => i.to_string(),
                    _ => unreachable!("accepts() admits strings and integers"),
                };
                if text.is_empty() || text.len() > MAX_KEY_BYTES {
                    return Err(Rejection::new(Reason::BadKey, format!("`{name}` has {} bytes (1..={MAX_KEY_BYTES} allowed)", text.len())));
                }
                if matches!(slot, Slot::Key) {
                    self.key = Some(text);
                } else {
                    self.event_id = Some(text);
                }
            }
            Slot::Time => {
                self.time = Some(match value {
                    Val::Int(ms) => Ok(ms),
                    Val::Float(ms) if ms.is_finite() && ms.abs() < 9.0e15 => Ok(ms.floor() as i64),
                    Val::Float(ms) => Err(format!("epoch millis {ms} out of range")),
                    Val::Str(s) => chrono::DateTime::parse_from_rfc3339(s).map(|t| t.timestamp_millis()).map_err(|e| format!("`{s:.40}` is not RFC 3339: {e}")),
                    _ => unreachable!("accepts() admits numbers and strings"),
                });
            }
            Slot::Field { index, ty, numeric, kept } => {
                self.seen[index] = true;
                if let Some(n) = numeric {
                    let v = match value {
                        Val::Int(i) => i as f64,
                        Val::Float(f) => f,
                        _ => f64::NAN,
                    };
                    if !v.is_finite() || v.abs() > MAX_ABS_VALUE {
                        return Err(Rejection::new(Reason::OutOfRange, format!("`{name}` is {v:e}, beyond ±{MAX_ABS_VALUE:e}")));
                    }
                    if let Some(e) = &dec.expect {
                        e.number(index, v, &mut self.judged);
                    }
                    self.numeric[n] = v;
                }
                if let (Some(e), Val::Str(text)) = (&dec.expect, &value) {
                    e.text(index, text, &mut self.judged);
                }
                if let (Some(k), Val::Str(text), FieldType::Str) = (kept, value, ty) {
                    self.strings[k] = Some(text.to_owned());
                }
            }
        }
        Ok(())
    }

    pub(in crate::decode) fn finish(self, dec: &Decoder) -> Result<Decoded, Rejection> {
        let key = self.key.ok_or_else(|| Rejection::new(Reason::MissingField, "the key field is missing"))?;
        let time_ms = match self.time {
            None => return Err(Rejection::new(Reason::MissingField, "the event time field is missing")),
            Some(Err(detail)) => return Err(Rejection::new(Reason::BadTimestamp, detail)),
            Some(Ok(t)) => t,
        };
        if let Some((_, name)) = dec.required.iter().find(|(i, _)| !self.seen[*i]) {
            return Err(Rejection::new(Reason::MissingField, format!("required field `{name}` is missing")));
        }
        if let Some(e) = &dec.expect {
            e.settle(self.judged)?;
        }
        Ok(Decoded { key, event_id: self.event_id, time_ms, numeric: self.numeric, strings: self.strings })
    }
}
