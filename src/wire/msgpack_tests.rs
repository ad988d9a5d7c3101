//! Unit tests for the msgpack codec. Expected bytes come from
//! `umsgpack.packb(...)` (u-msgpack-python 2.8).
use super::*;
use proptest::prelude::*;

fn enc(v: &Value) -> String {
    hex::encode(v.to_msgpack())
}

fn dec(h: &str) -> Result<Value, DecodeError> {
    decode_value(&hex::decode(h).unwrap())
}

#[test]
fn ints_use_smallest_umsgpack_form() {
    let cases: &[(i64, &str)] = &[
        (0, "00"),
        (127, "7f"),
        (128, "cc80"),
        (255, "ccff"),
        (256, "cd0100"),
        (65535, "cdffff"),
        (65536, "ce00010000"),
        (4294967295, "ceffffffff"),
        (4294967296, "cf0000000100000000"),
        (i64::MAX, "cf7fffffffffffffff"),
        (-1, "ff"),
        (-32, "e0"),
        (-33, "d0df"),
        (-128, "d080"),
        (-129, "d1ff7f"),
        (-32768, "d18000"),
        (-32769, "d2ffff7fff"),
        (-2147483648, "d280000000"),
        (-2147483649, "d3ffffffff7fffffff"),
        (i64::MIN, "d38000000000000000"),
    ];
    for &(i, h) in cases {
        assert_eq!(enc(&Value::Int(i)), h, "{i}");
        assert_eq!(dec(h), Ok(Value::Int(i)), "{h}");
    }
    assert_eq!(enc(&Value::UInt(1 << 63)), "cf8000000000000000");
    assert_eq!(dec("cfffffffffffffffff"), Ok(Value::UInt(u64::MAX)));
}

#[test]
fn non_canonical_int_markers_decode_to_int() {
    assert_eq!(dec("cc05"), Ok(Value::Int(5)));
    assert_eq!(dec("d3000000000000002a"), Ok(Value::Int(42)));
    assert_eq!(dec("cf0000000000000007"), Ok(Value::Int(7)));
    assert_eq!(dec("d0ff"), Ok(Value::Int(-1)));
    assert_eq!(Value::from_u64(7), Value::Int(7));
    assert_eq!(Value::from_u64(u64::MAX), Value::UInt(u64::MAX));
}

#[test]
fn strings_bins_and_containers_use_umsgpack_lengths() {
    let s = |n: usize| Value::Str("a".repeat(n));
    assert_eq!(enc(&s(0)), "a0");
    assert!(enc(&s(31)).starts_with("bf"));
    assert!(enc(&s(32)).starts_with("d920"));
    assert!(enc(&s(255)).starts_with("d9ff"));
    assert!(enc(&s(256)).starts_with("da0100"));
    assert!(enc(&s(65536)).starts_with("db00010000"));
    let b = |n: usize| Value::Bin(vec![b'x'; n]);
    assert_eq!(enc(&b(0)), "c400");
    assert!(enc(&b(255)).starts_with("c4ff"));
    assert!(enc(&b(256)).starts_with("c50100"));
    assert!(enc(&b(65536)).starts_with("c600010000"));
    let a = |n: i64| Value::Array((0..n).map(Value::Int).collect());
    assert_eq!(enc(&a(0)), "90");
    assert!(enc(&a(15)).starts_with("9f00"));
    assert!(enc(&a(16)).starts_with("dc0010"));
    assert!(enc(&a(65536)).starts_with("dd00010000"));
    let m = |n: i64| Value::Map((0..n).map(|i| (Value::Int(i), Value::Nil)).collect());
    assert_eq!(enc(&m(0)), "80");
    assert!(enc(&m(15)).starts_with("8f00c0"));
    assert!(enc(&m(16)).starts_with("de0010"));
    assert!(enc(&m(65536)).starts_with("df00010000"));
    let value_map = Value::Map(vec![("value".into(), Value::Int(1))]);
    assert_eq!(enc(&value_map), "81a576616c756501");
    assert_eq!(enc(&"é".into()), "a2c3a9");
}

#[test]
fn scalars() {
    assert_eq!(enc(&Value::Nil), "c0");
    assert_eq!(enc(&true.into()), "c3");
    assert_eq!(enc(&false.into()), "c2");
    assert_eq!(enc(&1.5.into()), "cb3ff8000000000000");
    assert_eq!(enc(&Value::F32(1.5)), "ca3fc00000");
    assert_eq!(dec("ca3fc00000"), Ok(Value::F32(1.5)));
    assert_eq!(Value::F64(f64::NAN), Value::F64(f64::NAN));
    assert_ne!(Value::F64(0.0), Value::F64(-0.0));
    assert_ne!(Value::Int(1), Value::UInt(1));
}

#[test]
fn every_error_path() {
    use DecodeError::*;
    assert_eq!(dec(""), Err(Truncated));
    assert_eq!(dec("cd01"), Err(Truncated));
    assert_eq!(dec("a3616263"), Ok("abc".into()));
    assert_eq!(dec("a36162"), Err(Truncated));
    assert_eq!(dec("c4ff00"), Err(Truncated));
    assert_eq!(dec("dbffffffff"), Err(Truncated));
    assert_eq!(dec("c6ffffffff00"), Err(Truncated));
    // Counts larger than the remaining input fail before allocating.
    assert_eq!(dec("ddffffffff"), Err(Truncated));
    assert_eq!(dec("dfffffffff00"), Err(Truncated));
    assert_eq!(dec("8101"), Err(Truncated));
    assert_eq!(dec("0102"), Err(TrailingBytes(1)));
    assert_eq!(dec("c1"), Err(Reserved));
    assert_eq!(dec("91c1"), Err(Reserved));
    for m in [0xc7u8, 0xc8, 0xc9, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8] {
        assert_eq!(decode_value(&[m, 1, 1, 1, 1]), Err(Ext(m)));
    }
    assert_eq!(dec("a2c328"), Err(InvalidUtf8));
    let mut deep = vec![0x91u8; MAX_DEPTH];
    deep.push(0xc0);
    assert!(decode_value(&deep).is_ok());
    deep.insert(0, 0x91);
    assert_eq!(decode_value(&deep), Err(TooDeep));
    assert_eq!(decode_value(&vec![0x81u8; 100_000]), Err(TooDeep));
}

#[test]
fn accessors() {
    let m = Value::Map(vec![(Value::Int(1), "x".into()), ("value".into(), vec![1u8, 2].into())]);
    assert_eq!(m.as_map_get("value").and_then(Value::as_bytes), Some(&[1u8, 2][..]));
    assert_eq!(m.as_map_get("nope"), None);
    assert_eq!(Value::Nil.as_map_get("value"), None);
    assert_eq!(Value::from("s").as_str(), Some("s"));
    assert_eq!(Value::Int(3).as_int(), Some(3));
    assert_eq!(Value::UInt(u64::MAX).as_int(), None);
    assert_eq!(Value::Bool(true).as_bool(), Some(true));
    assert_eq!(Value::Array(vec![]).as_array(), Some(&[][..]));
    assert_eq!(Value::Nil.as_str(), None);
    assert_eq!(Value::Nil.to_string(), "Nil");
}

/// Canonical values only: `UInt` above `i64::MAX`, as the decoder yields.
fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        ((1u64 << 63)..=u64::MAX).prop_map(Value::UInt),
        any::<f32>().prop_map(Value::F32),
        any::<f64>().prop_map(Value::F64),
        ".{0,300}".prop_map(Value::Str),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(Value::Bin),
    ];
    leaf.prop_recursive(6, 64, 20, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..20).prop_map(Value::Array),
            prop::collection::vec((inner.clone(), inner), 0..20).prop_map(Value::Map),
        ]
    })
}

proptest! {
    #[test]
    fn decode_encode_roundtrip(v in arb_value()) {
        let bytes = v.to_msgpack();
        prop_assert_eq!(encoded_len(&v), bytes.len());
        let back = decode_value(&bytes).unwrap();
        prop_assert_eq!(&back, &v);
        prop_assert_eq!(back.to_msgpack(), bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(v) = decode_value(&bytes) {
            // Whatever decodes re-encodes to something that decodes the same.
            prop_assert_eq!(decode_value(&v.to_msgpack()), Ok(v));
        }
    }

    #[test]
    fn truncating_a_valid_value_is_an_error(v in arb_value(), cut in any::<prop::sample::Index>()) {
        let bytes = v.to_msgpack();
        let n = cut.index(bytes.len());
        prop_assert!(decode_value(&bytes[..n]).is_err());
    }
}

#[test]
fn encoded_len_at_every_width_boundary() {
    let mut values: Vec<Value> = Vec::new();
    for edge in [0i64, 31, 32, 127, 128, 255, 256, 32767, 32768, 65535, 65536, 1 << 31, 1 << 32, i64::MAX] {
        for i in [edge.checked_sub(1), Some(edge), edge.checked_add(1)].into_iter().flatten().filter(|i| *i >= 0) {
            values.extend([Value::Int(i), Value::Int(-i), Value::Int(-i - 1)]);
        }
    }
    values.extend([Value::Int(i64::MIN), Value::UInt(u64::MAX), Value::F32(1.0), Value::F64(1.0)]);
    for n in [0usize, 15, 16, 31, 32, 255, 256, 65535, 65536] {
        values.push(Value::Str("x".repeat(n)));
        values.push(Value::Bin(vec![1; n]));
        values.push(Value::Array(vec![Value::Nil; n]));
        values.push(Value::Map(vec![(Value::Nil, Value::Nil); n]));
    }
    for v in values {
        assert_eq!(encoded_len(&v), v.to_msgpack().len(), "{v:?}");
    }
}
