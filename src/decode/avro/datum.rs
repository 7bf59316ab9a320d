//! Reading one Avro datum by a compiled [`Plan`] straight into a [`Decoded`]: the
//! declared fields are read into their slots, everything else is skipped, and no
//! intermediate value tree is built. Every length, count and union index is checked
//! against the bytes left; nothing here panics on input.

use super::plan::{Plan, Shape, Unit};
use crate::decode::fill::{Fill, Val};
use crate::decode::{floor_char_boundary, Decoded, Decoder, Slot, MAX_REPORTED_NAME};
use crate::types::{Reason, Rejection};

/// Deepest nesting of arrays, maps and records a datum may have.
const MAX_DEPTH: usize = 64;

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
