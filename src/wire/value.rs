//! [`Value`]: the in-memory form of one msgpack value, with the small set of
//! accessors and conversions callers need to build and read message bodies.
//!
//! Contract: a `Value` maps one-to-one onto what u-msgpack-python packs
//! (`Int` for any integer that fits `i64`, `UInt` only above `i64::MAX`), and
//! equality is wire equality (floats by bit pattern).
use std::fmt;

use super::msgpack::{encode_value, encoded_len};

/// A msgpack value as u-msgpack-python produces and accepts it.
///
/// Equality is wire equality: floats compare by bit pattern (so `NaN == NaN`
/// and `0.0 != -0.0`), which makes `decode(encode(v)) == v` hold for every
/// canonical value.
#[derive(Clone, Debug)]
pub enum Value {
    /// nil (Python None)
    Nil,
    /// true/false
    Bool(bool),
    /// any integer that fits i64 (both signed and unsigned encodings)
    Int(i64),
    /// an unsigned integer above i64::MAX
    UInt(u64),
    /// float 32
    F32(f32),
    /// float 64 (what Python floats encode as)
    F64(f64),
    /// str (UTF-8)
    Str(String),
    /// bin (Python bytes)
    Bin(Vec<u8>),
    /// array (Python list/tuple)
    Array(Vec<Value>),
    /// map, in wire order
    Map(Vec<(Value, Value)>),
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (Nil, Nil) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (UInt(a), UInt(b)) => a == b,
            (F32(a), F32(b)) => a.to_bits() == b.to_bits(),
            (F64(a), F64(b)) => a.to_bits() == b.to_bits(),
            (Str(a), Str(b)) => a == b,
            (Bin(a), Bin(b)) => a == b,
            (Array(a), Array(b)) => a == b,
            (Map(a), Map(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl Value {
    /// The encoded bytes of this value (see [`encode_value`](super::encode_value)).
    pub fn to_msgpack(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(encoded_len(self));
        encode_value(self, &mut out);
        out
    }

    /// An unsigned integer in canonical form: `Int` when it fits `i64`.
    pub fn from_u64(u: u64) -> Value {
        i64::try_from(u).map_or(Value::UInt(u), Value::Int)
    }

    /// The text of a `Str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes of a `Bin`.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bin(b) => Some(b),
            _ => None,
        }
    }

    /// The elements of an `Array`.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The integer of an `Int` (`UInt` is above `i64::MAX`, so `None`).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// Any non-negative integer, `UInt` included.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Int(i) => u64::try_from(*i).ok(),
            Value::UInt(u) => Some(*u),
            _ => None,
        }
    }

    /// The flag of a `Bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// In a `Map`, the value of the first entry whose key is the str `key`.
    pub fn as_map_get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Value::Bin(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::F64(f)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}
