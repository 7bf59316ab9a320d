//! Reading one Avro datum by a compiled [`Plan`] straight into a [`Decoded`]: the
//! declared fields are read into their slots, everything else is skipped, and no
//! intermediate value tree is built. Every length, count and union index is checked
//! against the bytes left; nothing here panics on input.

use super::plan::{accepts, expected, Kind, Plan, Shape, Unit};
use crate::decode::{floor_char_boundary, Decoded, Decoder, Slot, MAX_ABS_VALUE, MAX_KEY_BYTES, MAX_REPORTED_NAME};
use crate::spec::FieldType;
use crate::types::{Reason, Rejection};

/// Deepest nesting of arrays, maps and records a datum may have.
const MAX_DEPTH: usize = 64;

/// One value read for a slot.
enum Val<'a> {
    Null,
    Bool,
    Int(i64),
    Float(f64),
    Str(&'a str),
    Bytes(&'a [u8]),
    Other(&'static str),
}

impl Val<'_> {
    fn kind(&self) -> Kind {
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

/// The bytes of one datum and how far they have been read.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

type Bad = String;

impl<'a> Cursor<'a> {
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// A zigzag varint (`int` and `long` alike).
    fn long(&mut self) -> Result<i64, Bad> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(format!("truncated integer at byte {}", self.pos));
            };
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err(format!("integer overflows 64 bits at byte {}", self.pos - 1));
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        Err(format!("integer longer than 10 bytes at byte {}", self.pos))
    }
    /// An `int`: a varint within 32 bits.
    fn int(&mut self) -> Result<i64, Bad> {
        let at = self.pos;
        let v = self.long()?;
        if i32::try_from(v).is_err() {
            return Err(format!("int {v} at byte {at} beyond 32 bits"));
        }
        Ok(v)
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], Bad> {
        if n > self.left() {
            return Err(format!("{n} bytes announced at byte {}, {} left", self.pos, self.left()));
        }
        let bytes = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }
    /// A length prefix: not negative, not beyond the bytes left.
    fn len(&mut self) -> Result<usize, Bad> {
        let at = self.pos;
        let n = self.long()?;
        if n < 0 || n as u64 > self.left() as u64 {
            return Err(format!("length {n} at byte {at} with {} bytes left", self.left()));
        }
        Ok(n as usize)
    }
    fn str(&mut self) -> Result<&'a str, Bad> {
        let at = self.pos;
        let n = self.len()?;
        std::str::from_utf8(self.take(n)?).map_err(|e| format!("string at byte {at} is not UTF-8: {e}"))
    }
    fn branch(&mut self, n: usize) -> Result<usize, Bad> {
        let at = self.pos;
        let i = self.long()?;
        usize::try_from(i).ok().filter(|i| *i < n).ok_or_else(|| format!("union branch {i} at byte {at} of {n}"))
    }
}

/// A decimal's unscaled big-endian two's-complement bytes as a float
/// (`None` beyond 128 bits).
fn decimal(mut bytes: &[u8], scale: u32) -> Option<f64> {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let fill = if negative { 0xff } else { 0 };
    // leading sign-extension bytes carry nothing
    while bytes.len() > 16 && bytes[0] == fill && (bytes[1] & 0x80 != 0) == negative {
        bytes = &bytes[1..];
    }
    if bytes.len() > 16 {
        return None;
    }
    let mut buf = [fill; 16];
    buf[16 - bytes.len()..].copy_from_slice(bytes);
    Some(i128::from_be_bytes(buf) as f64 / 10f64.powi(scale.min(300) as i32))
}

impl Plan {
    /// Skips one value of `shape`.
    fn skip(&self, shape: usize, c: &mut Cursor, depth: usize) -> Result<(), Bad> {
        if depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH}"));
        }
        match &self.shapes[shape] {
            Shape::Null => {}
            Shape::Bool => {
                if c.take(1)?[0] > 1 {
                    return Err(format!("boolean byte at {} is neither 0 nor 1", c.pos - 1));
                }
            }
            Shape::Long(_) => {
                c.long()?;
            }
            Shape::Int(_) => {
                c.int()?;
            }
            Shape::Float => {
                c.take(4)?;
            }
            Shape::Double => {
                c.take(8)?;
            }
            Shape::Bytes => {
                let n = c.len()?;
                c.take(n)?;
            }
            Shape::Str => {
                c.str()?;
            }
            Shape::Fixed(n) | Shape::Decimal { fixed: Some(n), .. } => {
                c.take(*n)?;
            }
            Shape::Decimal { fixed: None, .. } => {
                let n = c.len()?;
                c.take(n)?;
            }
            Shape::Enum(symbols) => {
                c.branch(symbols.len())?;
            }
            Shape::Array(item) => self.skip_blocks(c, depth, &[*item])?,
            Shape::Map(value) => self.skip_blocks(c, depth, &[usize::MAX, *value])?,
            Shape::Union(branches) => {
                let b = c.branch(branches.len())?;
                self.skip(branches[b], c, depth)?; // a union adds no nesting of its own
            }
            Shape::Record(fields) => {
                for f in fields {
                    self.skip(*f, c, depth + 1)?;
                }
            }
        }
        Ok(())
    }

    /// Array or map blocks; `usize::MAX` in `parts` stands for a map's string key.
    fn skip_blocks(&self, c: &mut Cursor, depth: usize, parts: &[usize]) -> Result<(), Bad> {
        // the fewest bytes one item takes: a block may announce no more items than
        // its bytes allow (and items of no bytes are not iterated at all)
        let width: usize = parts.iter().map(|&p| if p == usize::MAX { 1 } else { self.min_width[p] }).sum();
        loop {
            let at = c.pos;
            let count = c.long()?;
            if count == 0 {
                return Ok(());
            }
            // a negative count is followed by the block's size in bytes: the items
            // are still read (their bytes are untrusted), and must fill it exactly
            let size = if count < 0 { Some(c.len()?) } else { None };
            let count = count.unsigned_abs();
            let start = c.pos;
            if width == 0 {
                if size.is_some_and(|s| s > 0) {
                    return Err(format!("block at byte {at} of items with no bytes announces {} bytes", size.unwrap_or(0)));
                }
                continue;
            }
            if count > (c.left() / width) as u64 {
                return Err(format!("block of {count} items at byte {at} with {} bytes left", c.left()));
            }
            for _ in 0..count {
                for &p in parts {
                    if p == usize::MAX {
                        c.str()?;
                    } else {
                        self.skip(p, c, depth + 1)?;
                    }
                }
            }
            if size.is_some_and(|size| c.pos - start != size) {
                return Err(format!("block at byte {at} announces {} bytes and its items take {}", size.unwrap_or(0), c.pos - start));
            }
        }
    }

    /// Reads one value of `shape` for a slot; `time`: for the event time (only
    /// there do timestamp and date units become milliseconds).
    fn read<'a>(&'a self, shape: usize, c: &mut Cursor<'a>, in_union: bool, time: bool) -> Result<Val<'a>, Bad> {
        Ok(match &self.shapes[shape] {
            Shape::Null => Val::Null,
            Shape::Bool => match c.take(1)?[0] {
                0 | 1 => Val::Bool,
                b => return Err(format!("boolean byte {b} at byte {}", c.pos - 1)),
            },
            Shape::Long(unit) | Shape::Int(unit) => {
                let v = if matches!(self.shapes[shape], Shape::Int(_)) { c.int()? } else { c.long()? };
                Val::Int(match unit {
                    _ if !time => v,
                    Unit::Plain => v,
                    Unit::Days => v.saturating_mul(86_400_000),
                    Unit::Micros => v.div_euclid(1_000),
                    Unit::Nanos => v.div_euclid(1_000_000),
                })
            }
            Shape::Float => Val::Float(f64::from(f32::from_le_bytes(c.take(4)?.try_into().unwrap()))),
            Shape::Double => Val::Float(f64::from_le_bytes(c.take(8)?.try_into().unwrap())),
            Shape::Str => Val::Str(c.str()?),
            Shape::Decimal { fixed, scale } => {
                let n = match fixed {
                    Some(n) => *n,
                    None => c.len()?,
                };
                // beyond 128 bits: infinite, which the range check refuses
                Val::Float(decimal(c.take(n)?, *scale).unwrap_or(f64::INFINITY))
            }
            Shape::Bytes => {
                let n = c.len()?;
                Val::Bytes(c.take(n)?)
            }
            Shape::Enum(symbols) => Val::Str(&symbols[c.branch(symbols.len())?]),
            Shape::Union(branches) if !in_union => {
                let b = c.branch(branches.len())?;
                self.read(branches[b], c, true, time)?
            }
            _ => {
                let kind = self.kinds(shape)[0];
                self.skip(shape, c, 1)?;
                Val::Other(kind.describe())
            }
        })
    }

    /// Decodes one datum (the whole of `bytes`).
    pub(crate) fn decode(&self, bytes: &[u8], dec: &Decoder, unknown: &mut dyn FnMut(&str)) -> Result<Decoded, Rejection> {
        let mut c = Cursor { buf: bytes, pos: 0 };
        let mut out = Fill::new(dec);
        let not_avro = |detail: Bad| Rejection::new(Reason::NotAvro, detail);
        for step in &self.steps {
            match step.slot {
                None => {
                    unknown(&step.name[..floor_char_boundary(&step.name, MAX_REPORTED_NAME)]);
                    self.skip(step.shape, &mut c, 1).map_err(not_avro)?;
                }
                Some(slot) => {
                    let value = self.read(step.shape, &mut c, false, matches!(slot, Slot::Time)).map_err(not_avro)?;
                    out.set(slot, &step.name, value, dec)?;
                }
            }
        }
        if c.left() > 0 {
            return Err(not_avro(format!("{} bytes after the end of the record", c.left())));
        }
        out.finish(dec)
    }
}

/// A record's slots as they are filled, with the JSON decoder's verdicts.
struct Fill {
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
    fn new(dec: &Decoder) -> Fill {
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

    fn set(&mut self, slot: Slot, name: &str, value: Val, dec: &Decoder) -> Result<(), Rejection> {
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

    fn finish(self, dec: &Decoder) -> Result<Decoded, Rejection> {
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
