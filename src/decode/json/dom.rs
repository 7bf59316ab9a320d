//! The fast pass: sonic-rs parses the text into its document (SIMD scanning of
//! strings and whitespace, one arena per record), and the top-level fields are
//! walked in order into [`Fields`]. Its parser recurses once per nesting level
//! without a limit, so a text with more than [`MAX_OPENERS`] `[` and `{` bytes (an
//! upper bound on its depth) is not given to it: serde_json reads those.

use sonic_rs::{JsonContainerTrait, JsonNumberTrait, JsonType, JsonValueTrait, Value};

use super::super::{expect, floor_char_boundary, Decoded, Decoder, MAX_REPORTED_NAME};
use super::fields::{Fields, Scalar};
use crate::types::{Reason, Rejection};

/// Most `[` and `{` bytes a text may hold to be parsed by sonic-rs.
pub const MAX_OPENERS: usize = 128;

/// Reads `text` with sonic-rs; the flag tells whether a field held a zero.
pub(super) fn pass(dec: &Decoder, text: &str, unknown: &mut dyn FnMut(&str)) -> Result<(Decoded, expect::Judged, bool), Rejection> {
    let openers = text.bytes().filter(|b| matches!(b, b'[' | b'{')).count();
    if openers > MAX_OPENERS {
        return Err(Rejection::new(Reason::NotJson, format!("{openers} arrays and objects, more than the fast parser takes")));
    }
    let doc: Value = sonic_rs::from_str(text).map_err(|e| Rejection::new(Reason::NotJson, e.to_string()))?;
    let Some(object) = doc.as_object() else {
        return Err(Rejection::new(Reason::NotObject, "top level is not an object"));
    };
    let mut fields = Fields::new(dec);
    for (name, value) in object.iter() {
        let Some(slot) = fields.slot(name) else {
            unknown(&name[..floor_char_boundary(name, MAX_REPORTED_NAME)]);
            continue;
        };
        fields.once(slot, name)?;
        fields.value(name, slot, scalar(value))?;
    }
    fields.finish()
}

/// A document value as the serde visitor sees it.
fn scalar(v: &Value) -> Scalar<'_> {
    match v.get_type() {
        JsonType::Null => Scalar::Null,
        JsonType::Boolean => Scalar::Bool,
        JsonType::String => Scalar::Str(v.as_str().unwrap_or_default().into()),
        JsonType::Array => Scalar::Nested("an array"),
        JsonType::Object => Scalar::Nested("an object"),
        JsonType::Number => match v.as_number() {
            Some(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Scalar::Int(i),
                (None, Some(u)) => Scalar::unsigned(u),
                _ => Scalar::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            None => Scalar::Float(f64::NAN),
        },
    }
}
