//! JSON records: a schema-driven serde visitor over serde_json.
//!
//! A record's top-level fields are read in order, straight into a [`Decoded`], by
//! one set of rules (`fields.rs`: types, limits, expectations): field names and
//! string values borrowed from the text unless they hold escapes, no generic value
//! tree, nested values skipped by serde_json's iterative `IgnoredAny` (no recursion,
//! however deep). UTF-8 is checked first, with SIMD (simdutf8).
//!
//! Why not a SIMD parser: sonic-rs's document parser reads the demo's records at
//! 3.8M/s alone, but parsing into its document and walking the fields ran at 1.25M
//! records/s against 1.65M for this visitor (and sonic-rs's serde deserializer at
//! 0.90x of serde_json's): on 150-byte records the time goes to the schema's work
//! (name lookup, the record's allocations), not to scanning bytes
//! (benchmarks/RESULTS.md, "Formats").
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

mod fields;

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use fields::{Fields, Scalar};

use super::{expect, floor_char_boundary, Decoded, Decoder, MAX_REPORTED_NAME};
use crate::types::{Reason, Rejection};

/// Decodes one JSON payload (already size-checked).
pub(super) fn decode(dec: &Decoder, bytes: &[u8], unknown: &mut dyn FnMut(&str)) -> Result<Decoded, Rejection> {
    let text = utf8(bytes)?;
    let mut failure = None;
    let mut de = serde_json::Deserializer::from_str(text);
    let seed = RecordSeed { decoder: dec, failure: &mut failure, unknown };
    let result = seed.deserialize(&mut de).and_then(|r| de.end().map(|_| r));
    let (record, judged) = result.map_err(|e| failure.unwrap_or_else(|| Rejection::new(Reason::NotJson, e.to_string())))?;
    // the expectations decide once the whole text is known to be valid
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

/// The record visitor for serde_json.
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
        let failure = self.failure;
        let mut fail = |r: Rejection| {
            let e = de::Error::custom(&r.detail);
            *failure = Some(r);
            e
        };
        let mut fields = Fields::new(self.decoder);
        while let Some(Name(name)) = map.next_key::<Name<'de>>()? {
            let Some(slot) = fields.slot(&name) else {
                (self.unknown)(&name[..floor_char_boundary(&name, MAX_REPORTED_NAME)]);
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            fields.once(slot, &name).map_err(&mut fail)?;
            let value = map.next_value::<ScalarOf<'de>>()?;
            fields.value(&name, slot, value.0).map_err(&mut fail)?;
        }
        fields.finish().map_err(fail)
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

/// One top-level value read by serde_json; nested values skipped by its iterative
/// `IgnoredAny`.
struct ScalarOf<'de>(Scalar<'de>);

impl<'de> Deserialize<'de> for ScalarOf<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ScalarOf<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ScalarOf<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<ScalarOf<'de>, E> {
                Ok(ScalarOf(Scalar::Null))
            }
            fn visit_bool<E>(self, _: bool) -> Result<ScalarOf<'de>, E> {
                Ok(ScalarOf(Scalar::Bool))
            }
            fn visit_i64<E>(self, i: i64) -> Result<ScalarOf<'de>, E> {
                Ok(ScalarOf(Scalar::Int(i)))
            }
            fn visit_u64<E>(self, u: u64) -> Result<ScalarOf<'de>, E> {
                Ok(ScalarOf(Scalar::unsigned(u)))
            }
            fn visit_f64<E>(self, f: f64) -> Result<ScalarOf<'de>, E> {
                Ok(ScalarOf(Scalar::Float(f)))
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<ScalarOf<'de>, E> {
                Ok(ScalarOf(Scalar::Str(Cow::Borrowed(s))))
            }
            fn visit_str<E>(self, s: &str) -> Result<ScalarOf<'de>, E> {
                Ok(ScalarOf(Scalar::Str(Cow::Owned(s.to_owned()))))
            }
            fn visit_string<E>(self, s: String) -> Result<ScalarOf<'de>, E> {
                Ok(ScalarOf(Scalar::Str(Cow::Owned(s))))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<ScalarOf<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(ScalarOf(Scalar::Nested("an array")))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ScalarOf<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(ScalarOf(Scalar::Nested("an object")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A field name, borrowed from the text unless it holds escapes.
struct Name<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Name<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}
