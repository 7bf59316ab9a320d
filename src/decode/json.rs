//! JSON records: one schema-driven serde visitor, fed by two parsers.
//!
//! A record's top-level fields are read in order into a [`Decoded`] by one set of
//! rules (`fields.rs`: types, limits, expectations). The text is read first by
//! [sonic-rs](https://docs.rs/sonic-rs)'s document parser (SIMD string and
//! whitespace scanning; `dom.rs`); a record it accepts is decoded. A record it
//! rejects, for any reason, is read again by `serde_json` through a schema-driven
//! visitor (borrowed strings, no value tree, nested values skipped iteratively),
//! whose verdict and message decide: the reasons and details
//! in the DLQ are exactly those of the serde_json decoder this replaced, and bad
//! records pay for a second parse, good ones do not. The differential tests
//! (`tests/json_differential.rs`) hold sonic-rs to the rest of the contract: where it
//! accepts, serde_json accepts the same record, bit for bit.
//!
//! One value is read apart: a negative zero (`-0`, `-0.0`, `-1e-400`), -0.0 for
//! serde_json and +0 for sonic-rs; a record with a zero in a field and a minus sign
//! anywhere is left to serde_json.
//!
//! sonic-rs's document parser recurses once per nesting level without a limit: a
//! text with more than [`MAX_OPENERS`] `[` and `{` goes to serde_json alone.
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

mod dom;
mod fields;

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

pub use dom::MAX_OPENERS;
use fields::{Fields, Scalar};

use super::{expect, floor_char_boundary, Decoded, Decoder, MAX_REPORTED_NAME};
use crate::types::{Reason, Rejection};

/// The JSON parser under the visitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parser {
    /// sonic-rs's document parser, for texts of at most [`MAX_OPENERS`] arrays
    /// and objects (rejecting the others).
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

/// Runs one parser over `text`; trailing characters reject. The flag tells
/// whether a top-level field held a number equal to zero.
fn pass(dec: &Decoder, parser: Parser, text: &str, unknown: &mut dyn FnMut(&str)) -> Result<(Decoded, expect::Judged, bool), Rejection> {
    match parser {
        Parser::Sonic => dom::pass(dec, text, unknown),
        Parser::SerdeJson => {
            let mut failure = None;
            let mut de = serde_json::Deserializer::from_str(text);
            let seed = RecordSeed { decoder: dec, failure: &mut failure, unknown };
            let result = seed.deserialize(&mut de).and_then(|r| de.end().map(|_| r));
            result.map_err(|e| failure.unwrap_or_else(|| Rejection::new(Reason::NotJson, e.to_string())))
        }
    }
}

/// The record visitor for serde_json.
struct RecordSeed<'a, 'u> {
    decoder: &'a Decoder,
    failure: &'a mut Option<Rejection>,
    unknown: &'u mut dyn FnMut(&str),
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, '_> {
    type Value = (Decoded, expect::Judged, bool);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_, '_> {
    type Value = (Decoded, expect::Judged, bool);

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
