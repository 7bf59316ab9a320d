//! JSON records: one schema-driven serde visitor, fed by two parsers.
//!
//! The visitor reads a record's top-level fields straight into a [`Decoded`]
//! (borrowed strings, no generic value tree, unknown fields skipped). It runs first
//! on [sonic-rs](https://docs.rs/sonic-rs) (SIMD string and whitespace scanning);
//! a record sonic-rs accepts is decoded. A record it rejects, for any reason, is read
//! again by `serde_json`, whose verdict and message decide: the reasons and details
//! in the DLQ are exactly those of the serde_json decoder this replaced, and bad
//! records pay for a second parse, good ones do not. The differential tests
//! (`tests/json_differential.rs`) hold sonic-rs to the rest of the contract: where it
//! accepts, serde_json accepts the same record, bit for bit.
//!
//! One value is read apart: a negative zero (`-0`, `-0.0`, `-1e-400`), -0.0 for
//! serde_json and +0 for sonic-rs; a record with a zero in a field and a minus sign
//! anywhere is left to serde_json.
//!
//! Nested values are skipped by a visitor of their own ([`Skip`]) under sonic-rs's
//! depth limit (255 levels: sonic-rs's own skipping recurses without one), so deep
//! nesting costs a rejection by sonic-rs and serde_json's iterative skip decides.
//!
//! ```
//! use vigil::decode::Decoder;
//!
//! let job = vigil::demo::fraud_job();
//! let decoder = Decoder::new(&job);
//! let good = br#"{"event_id":"e1","card_id":"c1","ts":1767225600000,"amount":12.5,"merchant":"m1","mcc":"5411","country":"DE","device":"d1","channel":"web"}"#;
//! let record = decoder.decode(Some(good), &mut |_| {}).unwrap();
//! assert_eq!((record.key.as_str(), record.time_ms), ("c1", 1767225600000));
//! let bad = decoder.decode(Some(br#"{"card_id":"c1","ts":1e999}"#), &mut |_| {}).unwrap_err();
//! assert_eq!(bad.reason.as_str(), "not_json");
//! ```

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{expect, floor_char_boundary, Decoded, Decoder, Slot, MAX_ABS_VALUE, MAX_KEY_BYTES, MAX_REPORTED_NAME};
use crate::spec::FieldType;
use crate::types::{Reason, Rejection};

/// The JSON parser under the visitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parser {
    /// sonic-rs; nested values skipped by [`Skip`] under its depth limit.
    Sonic,
    /// serde_json (`float_roundtrip`); nested values skipped by its iterative
    /// `IgnoredAny`. The reference: its verdicts are the decoder's.
    SerdeJson,
}

/// Decodes one JSON payload (already size-checked): sonic-rs, and serde_json for
/// every record sonic-rs rejects. Unknown names are reported once each.
pub(super) fn decode(dec: &Decoder, bytes: &[u8], unknown: &mut dyn FnMut(&str)) -> Result<Decoded, Rejection> {
    let text = utf8(bytes)?;
    let mut reported = 0usize;
    let fast = {
        let mut counted = |name: &str| {
            reported += 1;
            unknown(name)
        };
        pass(dec, Parser::Sonic, text, &mut counted)
    };
    let (record, judged) = match fast {
        // sonic-rs reads a negative zero (`-0`, `-0.0`, `-1e-400`) as +0: a record
        // with a zero and a minus sign is serde_json's to read
        Ok((record, judged, zero)) if !(zero && memchr::memchr(b'-', bytes).is_some()) => (record, judged),
        _ => {
            // serde_json meets the same names in the same order: report only those
            // sonic-rs did not reach
            let mut skip = reported;
            let mut rest = |name: &str| match skip {
                0 => unknown(name),
                _ => skip -= 1,
            };
            let (record, judged, _) = pass(dec, Parser::SerdeJson, text, &mut rest)?;
            (record, judged)
        }
    };
    settle(dec, record, judged)
}

/// One parser alone, for the differential tests and benchmarks.
pub(super) fn decode_with(dec: &Decoder, parser: Parser, bytes: &[u8], unknown: &mut dyn FnMut(&str)) -> Result<Decoded, Rejection> {
    let (record, judged, _) = pass(dec, parser, utf8(bytes)?, unknown)?;
    settle(dec, record, judged)
}

/// The expectations decide once the whole text is known to be valid.
fn settle(dec: &Decoder, record: Decoded, judged: expect::Judged) -> Result<Decoded, Rejection> {
    match &dec.expect {
        Some(e) => e.settle(judged).map(|_| record),
        None => Ok(record),
    }
}

/// The text if the bytes are UTF-8 (checked with SIMD; the standard library's
/// check only words the rejection).
fn utf8(bytes: &[u8]) -> Result<&str, Rejection> {
    match simdutf8::basic::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(_) => match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text),
            Err(e) => Err(Rejection::new(Reason::InvalidUtf8, format!("invalid UTF-8: {e}"))),
        },
    }
}

/// Runs the visitor over `text` with one parser; trailing characters reject. The
/// flag tells whether a top-level field held a number equal to zero.
fn pass(dec: &Decoder, parser: Parser, text: &str, unknown: &mut dyn FnMut(&str)) -> Result<(Decoded, expect::Judged, bool), Rejection> {
    let mut failure = None;
    let result = match parser {
        Parser::Sonic => {
            let mut de = sonic_rs::Deserializer::from_str(text);
            let seed = RecordSeed::<Skip> { decoder: dec, failure: &mut failure, unknown, skip: PhantomData };
            seed.deserialize(&mut de).and_then(|r| de.end().map(|_| r)).map_err(|e| e.to_string())
        }
        Parser::SerdeJson => {
            let mut de = serde_json::Deserializer::from_str(text);
            let seed = RecordSeed::<IgnoredAny> { decoder: dec, failure: &mut failure, unknown, skip: PhantomData };
            seed.deserialize(&mut de).and_then(|r| de.end().map(|_| r)).map_err(|e| e.to_string())
        }
    };
    result.map_err(|e| failure.unwrap_or_else(|| Rejection::new(Reason::NotJson, e)))
}

/// A nested value skipped by recursing through the parser's `deserialize_any`, so
/// the parser's depth limit bounds the recursion.
pub struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Skip, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Skip;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
                while seq.next_element::<Skip>()?.is_some() {}
                Ok(Skip)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
                while map.next_entry::<Skip, Skip>()?.is_some() {}
                Ok(Skip)
            }
        }
        d.deserialize_any(V)
    }
}

/// The record visitor; `K` skips nested values ([`Skip`] or serde's `IgnoredAny`).
struct RecordSeed<'a, 'u, K> {
    decoder: &'a Decoder,
    failure: &'a mut Option<Rejection>,
    unknown: &'u mut dyn FnMut(&str),
    skip: PhantomData<K>,
}

impl<'de, K: Deserialize<'de>> DeserializeSeed<'de> for RecordSeed<'_, '_, K> {
    type Value = (Decoded, expect::Judged, bool);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, K: Deserialize<'de>> Visitor<'de> for RecordSeed<'_, '_, K> {
    type Value = (Decoded, expect::Judged, bool);

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
        let mut zero = false;

        while let Some(Name(name)) = map.next_key::<Name<'de>>()? {
            let Some(slot) = dec.slots.get(name.as_ref()).copied() else {
                let cut = floor_char_boundary(&name, MAX_REPORTED_NAME);
                (self.unknown)(&name[..cut]);
                map.next_value::<K>()?;
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
            let value = map.next_value_seed(ScalarSeed::<K>(PhantomData))?;
            zero |= matches!(value, Scalar::Int(0)) || matches!(value, Scalar::Float(f) if f == 0.0);
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
        Ok((Decoded { key, event_id, time_ms: time, numeric, strings }, judged, zero))
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

/// Reads one [`Scalar`], skipping nested values with `K`.
struct ScalarSeed<K>(PhantomData<K>);

impl<'de, K: Deserialize<'de>> DeserializeSeed<'de> for ScalarSeed<K> {
    type Value = Scalar<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Scalar<'de>, D::Error> {
        struct V<K>(PhantomData<K>);
        impl<'de, K: Deserialize<'de>> Visitor<'de> for V<K> {
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
                while seq.next_element::<K>()?.is_some() {}
                Ok(Scalar::Nested("an array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
                while map.next_entry::<K, K>()?.is_some() {}
                Ok(Scalar::Nested("an object"))
            }
        }
        d.deserialize_any(V::<K>(PhantomData))
    }
}

/// A field name, borrowed from the text unless it holds escapes.
struct Name<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Name<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(std::borrow::Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Name<'de>, E> {
                Ok(Name(std::borrow::Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Name<'de>, E> {
                Ok(Name(std::borrow::Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}
