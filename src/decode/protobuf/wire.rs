//! Reading one Protobuf message by a compiled [`Plan`] straight into a
//! [`Decoded`]: the declared fields are read into their slots (the last value on
//! the wire wins, as in every Protobuf parser), everything else is skipped by its
//! wire type, and no message object is built. Every varint, length and group is
//! checked against the bytes left; nothing here panics on input.

use super::plan::{Plan, Scalar};
use crate::decode::fill::{Fill, Val};
use crate::decode::{floor_char_boundary, Decoded, Decoder, MAX_REPORTED_NAME};
use crate::types::{Reason, Rejection};

/// Deepest nesting of (deprecated) groups a skipped field may have.
const MAX_GROUP_DEPTH: usize = 64;

type Bad = String;

/// The bytes of one message and how far they have been read.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn varint(&mut self) -> Result<u64, Bad> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(format!("truncated varint at byte {}", self.pos));
            };
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err(format!("varint overflows 64 bits at byte {}", self.pos - 1));
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(format!("varint longer than 10 bytes at byte {}", self.pos))
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], Bad> {
        if n > self.left() {
            return Err(format!("{n} bytes announced at byte {}, {} left", self.pos, self.left()));
        }
        let bytes = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }
    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], Bad> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }
    fn len_delimited(&mut self) -> Result<&'a [u8], Bad> {
        let at = self.pos;
        let n = self.varint()?;
        if n > self.left() as u64 {
            return Err(format!("length {n} at byte {at} with {} bytes left", self.left()));
        }
        self.take(n as usize)
    }
    /// A field's key: its number and wire type.
    fn key(&mut self) -> Result<(u32, u8), Bad> {
        let at = self.pos;
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 || number > (1 << 29) - 1 {
            return Err(format!("field number {number} at byte {at}"));
        }
        Ok((number as u32, (key & 7) as u8))
    }
    /// Skips a value of `wire` type (a group up to its end, nested groups too).
    fn skip(&mut self, number: u32, wire: u8, depth: usize) -> Result<(), Bad> {
        match wire {
            0 => {
                self.varint()?;
            }
            1 => {
                self.take(8)?;
            }
            2 => {
                self.len_delimited()?;
            }
            5 => {
                self.take(4)?;
            }
            3 => {
                if depth >= MAX_GROUP_DEPTH {
                    return Err(format!("groups nested deeper than {MAX_GROUP_DEPTH}"));
                }
                loop {
                    let (n, w) = self.key()?;
                    if w == 4 {
                        if n != number {
                            return Err(format!("group {number} ended by the end of group {n}"));
                        }
                        return Ok(());
                    }
                    self.skip(n, w, depth + 1)?;
                }
            }
            w => return Err(format!("wire type {w} of field {number} at byte {}", self.pos)),
        }
        Ok(())
    }
}

/// Reads one value of `scalar` (whose key said wire type `wire`).
fn read<'a>(scalar: &'a Scalar, c: &mut Cursor<'a>, name: &str, wire: u8) -> Result<Val<'a>, Bad> {
    if wire != scalar.wire_type() {
        return Err(format!("`{name}` is on the wire with wire type {wire}, its type is written with {}", scalar.wire_type()));
    }
    Ok(match scalar {
        Scalar::Int32 => Val::Int(c.varint()? as i32 as i64),
        Scalar::Int64 => Val::Int(c.varint()? as i64),
        Scalar::Uint32 => Val::Int(c.varint()? as u32 as i64),
        Scalar::Uint64 => unsigned(c.varint()?),
        Scalar::Sint32 => Val::Int(zigzag(c.varint()? as u32 as u64)),
        Scalar::Sint64 => Val::Int(zigzag(c.varint()?)),
        Scalar::Fixed32 => Val::Int(u32::from_le_bytes(c.fixed()?) as i64),
        Scalar::Fixed64 => unsigned(u64::from_le_bytes(c.fixed()?)),
        Scalar::Sfixed32 => Val::Int(i32::from_le_bytes(c.fixed()?) as i64),
        Scalar::Sfixed64 => Val::Int(i64::from_le_bytes(c.fixed()?)),
        Scalar::Bool => {
            c.varint()?;
            Val::Bool
        }
        Scalar::Float => Val::Float(f64::from(f32::from_le_bytes(c.fixed()?))),
        Scalar::Double => Val::Float(f64::from_le_bytes(c.fixed()?)),
        Scalar::Str => {
            let at = c.pos;
            Val::Str(std::str::from_utf8(c.len_delimited()?).map_err(|e| format!("`{name}` at byte {at} is not UTF-8: {e}"))?)
        }
        Scalar::Bytes => Val::Bytes(c.len_delimited()?),
        // an enum value this schema does not know (a newer writer's): its number
        Scalar::Enum(names) => {
            let n = c.varint()? as i32;
            names.get(&n).map_or(Val::Int(n as i64), |s| Val::Str(s))
        }
        Scalar::Timestamp => timestamp(c.len_delimited()?).map_err(|e| format!("`{name}`: {e}"))?,
        Scalar::Message => {
            c.len_delimited()?;
            Val::Other("a message")
        }
    })
}

/// A `uint64` or `fixed64`: an integer where it fits in 63 bits, else a float.
fn unsigned(v: u64) -> Val<'static> {
    i64::try_from(v).map_or(Val::Float(v as f64), Val::Int)
}

fn zigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

/// A `google.protobuf.Timestamp` message's bytes as epoch milliseconds.
fn timestamp(bytes: &[u8]) -> Result<Val<'static>, Bad> {
    let mut c = Cursor { buf: bytes, pos: 0 };
    let (mut seconds, mut nanos) = (0i64, 0i64);
    while c.left() > 0 {
        match c.key()? {
            (1, 0) => seconds = c.varint()? as i64,
            (2, 0) => nanos = c.varint()? as i32 as i64,
            (n, w) => c.skip(n, w, 0)?,
        }
    }
    let ms = seconds.checked_mul(1_000).and_then(|ms| ms.checked_add(nanos / 1_000_000));
    match ms {
        Some(ms) if (0..1_000_000_000).contains(&nanos) => Ok(Val::Int(ms)),
        _ => Err(format!("timestamp {seconds} s {nanos} ns out of range")),
    }
}

/// Deepest message path a Confluent header may name (a message nested this deep
/// in its file).
pub(super) const MAX_INDEXES: usize = 16;

/// The message indexes of a Confluent header: which message of the writer's file
/// a record is (the first index among the file's top-level messages, each next one
/// among the previous message's nested messages).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Indexes {
    len: usize,
    path: [u32; MAX_INDEXES],
}

impl Indexes {
    /// The path `path` (at most 16 deep).
    pub fn new(path: &[u32]) -> Option<Indexes> {
        let mut out = Indexes { len: path.len(), path: [0; MAX_INDEXES] };
        out.path.get_mut(..path.len())?.copy_from_slice(path);
        Some(out)
    }
    pub fn as_slice(&self) -> &[u32] {
        &self.path[..self.len]
    }
}

/// Splits what follows a Confluent header's schema id into the message indexes
/// and the message: a zigzag varint count, then that many zigzag varint indexes;
/// a count of 0 (one zero byte, the common case) means the first message, `[0]`.
pub(super) fn message_indexes(bytes: &[u8]) -> Result<(Indexes, &[u8]), Bad> {
    let mut c = Cursor { buf: bytes, pos: 0 };
    let count = zigzag(c.varint().map_err(|e| format!("message indexes: {e}"))?);
    let mut path = Indexes { len: 0, path: [0; MAX_INDEXES] };
    if count == 0 {
        path.len = 1;
    } else if !(1..=MAX_INDEXES as i64).contains(&count) {
        return Err(format!("message indexes: a count of {count} (1 to {MAX_INDEXES} expected)"));
    }
    for _ in 0..count {
        let index = zigzag(c.varint().map_err(|e| format!("message indexes: {e}"))?);
        path.path[path.len] = u32::try_from(index).map_err(|_| format!("message indexes: index {index}"))?;
        path.len += 1;
    }
    Ok((path, &bytes[c.pos..]))
}

/// Appends the Confluent encoding of message indexes `path` (see
/// [`message_indexes`]; `[0]` as one zero byte).
pub(super) fn put_indexes(out: &mut Vec<u8>, path: &[u32]) {
    // Avro's `long` is the same zigzag varint
    use crate::decode::avro::put_long;
    if path == [0] {
        put_long(out, 0);
    } else {
        put_long(out, path.len() as i64);
        path.iter().for_each(|&i| put_long(out, i64::from(i)));
    }
}

impl Plan {
    /// Decodes one message (the whole of `bytes`).
    pub(crate) fn decode(&self, bytes: &[u8], dec: &Decoder, unknown: &mut dyn FnMut(&str)) -> Result<Decoded, Rejection> {
        let mut c = Cursor { buf: bytes, pos: 0 };
        let not_protobuf = |detail: Bad| Rejection::new(Reason::NotProtobuf, format!("not a `{}`: {detail}", self.message));
        let mut held: Vec<Option<Val>> = vec![None; self.slotted.len()];
        // undeclared fields reported once per record, as JSON and Avro do (a
        // repeated one, or one written twice, appears several times); this
        // allocates only for a record that has some
        let mut reported: Vec<u32> = Vec::new();
        while c.left() > 0 {
            let (number, wire) = c.key().map_err(not_protobuf)?;
            match self.step(number) {
                Some(step) if step.held.is_some() && !step.repeated => {
                    let value = read(&step.scalar, &mut c, &step.name, wire).map_err(not_protobuf)?;
                    held[step.held.unwrap_or_default()] = Some(value);
                }
                Some(step) => {
                    if step.slot.is_none() && !reported.contains(&number) {
                        reported.push(number);
                        unknown(&step.name[..floor_char_boundary(&step.name, MAX_REPORTED_NAME)]);
                    }
                    c.skip(number, wire, 0).map_err(not_protobuf)?;
                }
                None => {
                    if !reported.contains(&number) {
                        reported.push(number);
                        unknown(&format!("#{number}"));
                    }
                    c.skip(number, wire, 0).map_err(not_protobuf)?;
                }
            }
        }
        let mut out = Fill::new(dec);
        for (&i, value) in self.slotted.iter().zip(held) {
            let step = &self.steps[i];
            let value = value.or_else(|| step.implicit.then(|| step.scalar.default_value()).flatten());
            let (Some(slot), Some(value)) = (step.slot, value) else { continue };
            out.set(slot, &step.name, value, dec)?;
        }
        out.finish(dec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `google.protobuf.Timestamp` of `seconds` and `nanos`, encoded.
    fn ts(seconds: i64, nanos: i32) -> Vec<u8> {
        let mut b = Vec::new();
        let varint = |mut v: u64, b: &mut Vec<u8>| loop {
            if v < 0x80 {
                b.push(v as u8);
                break;
            }
            b.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        };
        b.push(0x08);
        varint(seconds as u64, &mut b);
        b.push(0x10);
        varint(nanos as i64 as u64, &mut b);
        b
    }

    #[test]
    fn timestamps_in_range_read_as_milliseconds_and_the_rest_is_refused() {
        assert!(matches!(timestamp(&ts(1_700_000_000, 250_000_000)), Ok(Val::Int(1_700_000_000_250))));
        assert!(matches!(timestamp(&ts(-1, 500_000_000)), Ok(Val::Int(-500))));
        // seconds * 1000 fits, adding the milliseconds does not
        assert!(timestamp(&ts(i64::MAX / 1000, 999_000_000)).is_err());
        assert!(timestamp(&ts(i64::MAX, 0)).is_err());
        assert!(timestamp(&ts(1, -1)).is_err());
        assert!(timestamp(&ts(1, 1_000_000_000)).is_err());
    }

    #[test]
    fn message_indexes_read_what_confluent_writes_and_refuse_the_rest() {
        for path in [&[0u32][..], &[1], &[0, 0], &[3, 1, 2], &[70, 200]] {
            let mut bytes = Vec::new();
            put_indexes(&mut bytes, path);
            bytes.extend([8, 1]);
            let (got, rest) = message_indexes(&bytes).unwrap();
            assert_eq!((got.as_slice(), rest), (path, &[8u8, 1][..]));
        }
        // Confluent's bytes: [0] is one zero byte; [1] is count 1 (2), index 1 (2)
        assert_eq!(message_indexes(&[0]).unwrap().0.as_slice(), [0]);
        assert_eq!(message_indexes(&[2, 2]).unwrap().0.as_slice(), [1]);
        for bad in [&[][..], &[1][..], &[2][..], &[2, 1], &[40], &[0x80]] {
            assert!(message_indexes(bad).is_err(), "{bad:?}");
        }
        assert!(Indexes::new(&[0; 17]).is_none());
        // random bytes: an answer, never a panic, and a path no deeper than allowed
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..20_000usize {
            let bytes: Vec<u8> = (0..len % 24)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            if let Ok((path, rest)) = message_indexes(&bytes) {
                assert!((1..=MAX_INDEXES).contains(&path.as_slice().len()) && rest.len() < bytes.len());
            }
        }
    }
}
