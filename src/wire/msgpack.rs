//! A small msgpack codec for [`Value`], byte-compatible with
//! u-msgpack-python 2.8 (what Python `kademlia`/`rpcudp` use).
//!
//! Contract:
//! - [`encode_value`] writes the same bytes umsgpack's `packb` writes for the
//!   equivalent Python object: the smallest length/integer form, `str` as str,
//!   `bytes` as bin, floats as float64 (`F32` as float32), no ext types.
//! - [`decode_value`] decodes exactly one value and rejects trailing bytes. It
//!   never panics, never recurses deeper than [`MAX_DEPTH`], and never
//!   allocates for a length prefix more elements than the remaining input
//!   could hold, so memory stays a small multiple of the input size.
//! - Integers decode to `Int` whenever they fit an `i64` (whatever marker was
//!   used) and to `UInt` only above `i64::MAX`, so a decoded value re-encodes
//!   to the canonical (umsgpack) bytes.
pub use super::value::Value;

/// Arrays and maps nested deeper than this are rejected when decoding.
/// Real messages nest at most 4 levels (`find_node` reply: array of arrays).
pub const MAX_DEPTH: usize = 32;

/// Why bytes are not a valid msgpack value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended in the middle of a value, or a length prefix claims
    /// more bytes/elements than the input holds.
    #[error("unexpected end of input")]
    Truncated,
    /// A complete value was decoded but bytes followed it (umsgpack would
    /// silently ignore them; we refuse, as they signal a framing bug).
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    /// The byte 0xc1, which the msgpack spec reserves as "never used".
    #[error("reserved marker byte 0xc1")]
    Reserved,
    /// An ext or fixext marker (0xc7-0xc9, 0xd4-0xd8); the protocol never
    /// carries ext values (umsgpack would yield an `Ext`/timestamp object).
    #[error("ext type marker 0x{0:02x} is not supported")]
    Ext(u8),
    /// A str whose bytes are not valid UTF-8 (umsgpack raises
    /// `InvalidStringException` for these too).
    #[error("str is not valid UTF-8")]
    InvalidUtf8,
    /// Arrays/maps nested deeper than [`MAX_DEPTH`]; a guard against stack
    /// exhaustion from hostile input.
    #[error("nesting deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// Appends the umsgpack encoding of `v` to `out`.
///
/// Lengths of 2^32 or more cannot be represented in msgpack; such values can
/// never fit in a datagram, so callers bound sizes long before that.
pub fn encode_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Nil => out.push(0xc0),
        Value::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Int(i) if *i < 0 => encode_negative(*i, out),
        Value::Int(i) => encode_unsigned(i.unsigned_abs(), out),
        Value::UInt(u) => encode_unsigned(*u, out),
        Value::F32(f) => {
            out.push(0xca);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::F64(f) => {
            out.push(0xcb);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::Str(s) => encode_str(s.as_bytes(), out),
        Value::Bin(b) => encode_bin(b, out),
        Value::Array(items) => {
            encode_array_len(items.len(), out);
            items.iter().for_each(|item| encode_value(item, out));
        }
        Value::Map(entries) => {
            encode_len(entries.len(), Some(0x80), 16, [0, 0xde, 0xdf], out);
            for (k, v) in entries {
                encode_value(k, out);
                encode_value(v, out);
            }
        }
    }
}

/// The number of bytes [`encode_value`] writes for `v`, without writing
/// them: sizing a record need not allocate its encoding.
pub fn encoded_len(v: &Value) -> usize {
    match v {
        Value::Nil | Value::Bool(_) => 1,
        Value::Int(i) if *i < 0 => int_len(i.unsigned_abs() - 1, 32, 0x80),
        Value::Int(i) => int_len(i.unsigned_abs(), 128, 0x100),
        Value::UInt(u) => int_len(*u, 128, 0x100),
        Value::F32(_) => 5,
        Value::F64(_) => 9,
        Value::Str(s) => len_header(s.len(), 32, true) + s.len(),
        Value::Bin(b) => len_header(b.len(), 0, true) + b.len(),
        Value::Array(items) => len_header(items.len(), 16, false) + items.iter().map(encoded_len).sum::<usize>(),
        Value::Map(entries) => {
            len_header(entries.len(), 16, false)
                + entries.iter().map(|(k, v)| encoded_len(k) + encoded_len(v)).sum::<usize>()
        }
    }
}

/// Size of an integer whose magnitude (for negatives, `-i - 1`) is `m`:
/// one byte below `fix`, else a marker and the smallest width whose range
/// (`byte` values for 8 bits, signed or not) holds it.
fn int_len(m: u64, fix: u64, byte: u64) -> usize {
    match m {
        _ if m < fix => 1,
        _ if m < byte => 2,
        _ if m < byte << 8 => 3,
        _ if m < byte << 24 => 5,
        _ => 9,
    }
}

/// Size of the header [`encode_len`] writes: `fix_max` 0 means no fix form,
/// `has8` whether an 8-bit length form exists.
fn len_header(len: usize, fix_max: usize, has8: bool) -> usize {
    match len {
        _ if len < fix_max => 1,
        _ if has8 && len < 0x100 => 2,
        _ if len < 0x1_0000 => 3,
        _ => 5,
    }
}

/// A str of these UTF-8 bytes, as `Value::Str` encodes (for writers that
/// produce text into a buffer without a `String`).
pub(super) fn encode_str(utf8: &[u8], out: &mut Vec<u8>) {
    encode_len(utf8.len(), Some(0xa0), 32, [0xd9, 0xda, 0xdb], out);
    out.extend_from_slice(utf8);
}

/// A bin, as `Value::Bin` encodes.
pub(super) fn encode_bin(b: &[u8], out: &mut Vec<u8>) {
    encode_len(b.len(), None, 0, [0xc4, 0xc5, 0xc6], out);
    out.extend_from_slice(b);
}

/// The header of an array of `len` elements; the elements follow.
pub(super) fn encode_array_len(len: usize, out: &mut Vec<u8>) {
    encode_len(len, Some(0x90), 16, [0, 0xdc, 0xdd], out);
}

/// Smallest positive form, as umsgpack's `_pack_integer` for `obj >= 0`.
pub(super) fn encode_unsigned(u: u64, out: &mut Vec<u8>) {
    if u < 128 {
        out.push(u as u8);
    } else if let Ok(b) = u8::try_from(u) {
        out.extend_from_slice(&[0xcc, b]);
    } else if let Ok(h) = u16::try_from(u) {
        out.push(0xcd);
        out.extend_from_slice(&h.to_be_bytes());
    } else if let Ok(w) = u32::try_from(u) {
        out.push(0xce);
        out.extend_from_slice(&w.to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&u.to_be_bytes());
    }
}

/// Smallest negative form, as umsgpack's `_pack_integer` for `obj < 0`.
fn encode_negative(i: i64, out: &mut Vec<u8>) {
    if i >= -32 {
        out.push(i as u8);
    } else if let Ok(b) = i8::try_from(i) {
        out.extend_from_slice(&[0xd0, b as u8]);
    } else if let Ok(h) = i16::try_from(i) {
        out.push(0xd1);
        out.extend_from_slice(&h.to_be_bytes());
    } else if let Ok(w) = i32::try_from(i) {
        out.push(0xd2);
        out.extend_from_slice(&w.to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&i.to_be_bytes());
    }
}

/// Writes a length header: the `fix` form (marker | len) when `len < fix_max`,
/// else the 8/16/32-bit forms from `wide` (a 0 entry means "no such form",
/// e.g. arrays have no 8-bit length).
fn encode_len(len: usize, fix: Option<u8>, fix_max: usize, wide: [u8; 3], out: &mut Vec<u8>) {
    match fix {
        Some(marker) if len < fix_max => out.push(marker | len as u8),
        _ if wide[0] != 0 && len < 0x100 => out.extend_from_slice(&[wide[0], len as u8]),
        _ if len < 0x1_0000 => {
            out.push(wide[1]);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(wide[2]);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }
}

/// Decodes exactly one value from `bytes`; anything left over is an error.
pub fn decode_value(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let v = r.value(0)?;
    match bytes.len() - r.pos {
        0 => Ok(v),
        n => Err(DecodeError::TrailingBytes(n)),
    }
}

/// A bounds-checked cursor; every read that would pass the end is `Truncated`.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn len16(&mut self) -> Result<usize, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?) as usize)
    }

    fn len32(&mut self) -> Result<usize, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?) as usize)
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        let m = self.u8()?;
        match m {
            0x00..=0x7f => Ok(Value::Int(m as i64)),
            0xe0..=0xff => Ok(Value::Int(m as i8 as i64)),
            0x80..=0x8f => self.map((m & 0x0f) as usize, depth),
            0x90..=0x9f => self.seq((m & 0x0f) as usize, depth),
            0xa0..=0xbf => self.str((m & 0x1f) as usize),
            0xc0 => Ok(Value::Nil),
            0xc1 => Err(DecodeError::Reserved),
            0xc2 => Ok(Value::Bool(false)),
            0xc3 => Ok(Value::Bool(true)),
            0xc4 => self.bin(1),
            0xc5 => self.bin(2),
            0xc6 => self.bin(4),
            0xc7..=0xc9 | 0xd4..=0xd8 => Err(DecodeError::Ext(m)),
            0xca => Ok(Value::F32(f32::from_be_bytes(self.array()?))),
            0xcb => Ok(Value::F64(f64::from_be_bytes(self.array()?))),
            0xcc..=0xd3 => self.int(m),
            0xd9 => self.u8().and_then(|n| self.str(n as usize)),
            0xda => self.len16().and_then(|n| self.str(n)),
            0xdb => self.len32().and_then(|n| self.str(n)),
            0xdc => self.len16().and_then(|n| self.seq(n, depth)),
            0xdd => self.len32().and_then(|n| self.seq(n, depth)),
            0xde => self.len16().and_then(|n| self.map(n, depth)),
            0xdf => self.len32().and_then(|n| self.map(n, depth)),
        }
    }

    /// Integer markers 0xcc-0xd3 (uint8..64, int8..64).
    fn int(&mut self, m: u8) -> Result<Value, DecodeError> {
        let i = match m {
            0xcc => self.u8()? as i64,
            0xcd => u16::from_be_bytes(self.array()?) as i64,
            0xce => u32::from_be_bytes(self.array()?) as i64,
            0xcf => {
                let u = u64::from_be_bytes(self.array()?);
                return Ok(i64::try_from(u).map_or(Value::UInt(u), Value::Int));
            }
            0xd0 => i8::from_be_bytes(self.array()?) as i64,
            0xd1 => i16::from_be_bytes(self.array()?) as i64,
            0xd2 => i32::from_be_bytes(self.array()?) as i64,
            _ => i64::from_be_bytes(self.array()?),
        };
        Ok(Value::Int(i))
    }

    fn str(&mut self, n: usize) -> Result<Value, DecodeError> {
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes).map(|s| Value::Str(s.to_owned())).map_err(|_| DecodeError::InvalidUtf8)
    }

    /// bin8/16/32: `width` is the size of the length prefix in bytes.
    fn bin(&mut self, width: usize) -> Result<Value, DecodeError> {
        let n = match width {
            1 => self.u8()? as usize,
            2 => self.len16()?,
            _ => self.len32()?,
        };
        Ok(Value::Bin(self.take(n)?.to_vec()))
    }

    fn seq(&mut self, n: usize, depth: usize) -> Result<Value, DecodeError> {
        if depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        // Every element takes at least one byte: a larger count is a lie, and
        // trusting it would let 5 bytes request a 4-billion-slot allocation.
        if n > self.remaining() {
            return Err(DecodeError::Truncated);
        }
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, n: usize, depth: usize) -> Result<Value, DecodeError> {
        if depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        if n > self.remaining() / 2 {
            return Err(DecodeError::Truncated);
        }
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let k = self.value(depth + 1)?;
            let v = self.value(depth + 1)?;
            entries.push((k, v));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
#[path = "msgpack_tests.rs"]
mod tests;
