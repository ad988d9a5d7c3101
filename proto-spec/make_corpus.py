#!/usr/bin/env python3
"""Write the fuzz seed corpus from proto-spec/vectors.json plus malformed seeds.

    python3 proto-spec/make_corpus.py

Needs no third-party packages. Writes:
  fuzz/corpus/decode_datagram/vec_<name>   every captured datagram
  fuzz/corpus/decode_datagram/bad_<name>   hand-made malformed datagrams
  fuzz/corpus/decode_value/vec_<name>      every captured msgpack body
  fuzz/corpus/decode_value/bad_<name>      hand-made malformed msgpack
Existing vec_*/bad_* files are replaced; other files (e.g. ones a fuzzer
added) are left alone.
"""

import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
MID = bytes(range(1, 21))
ID20 = b"\xc4\x14" + b"\x11" * 20


def req(body):
    return b"\x00" + MID + body


def resp(body):
    return b"\x01" + MID + body


BAD_VALUES = {
    "empty": b"",
    "reserved_c1": b"\xc1",
    "fixext1": b"\xd4\x01\x00",
    "ext8": b"\xc7\x02\x05ab",
    "str_invalid_utf8": b"\xa2\xc3\x28",
    "str8_truncated": b"\xd9\x10abc",
    "bin32_huge_len": b"\xc6\xff\xff\xff\xff",
    "array32_huge_len": b"\xdd\xff\xff\xff\xff\xc0",
    "map16_huge_len": b"\xde\xff\xff\xc0\xc0",
    "deep_arrays": b"\x91" * 40 + b"\xc0",
    "deep_maps": b"\x81\xc0" * 40 + b"\xc0",
    "trailing": b"\xc0\xc0",
    "noncanonical_uint8": b"\xcc\x05",
    "noncanonical_int64": b"\xd3" + (42).to_bytes(8, "big"),
    "float32": b"\xca\x3f\xc0\x00\x00",
    "uint64_max": b"\xcf" + b"\xff" * 8,
}

BAD_DATAGRAMS = {
    "empty": b"",
    "header_only": b"\x00" + MID,
    "type_02": b"\x02" + MID + b"\xc0",
    "type_ff": b"\xff" + MID + b"\xc3",
    "request_reserved": req(b"\xc1"),
    "request_not_array": req(b"\x05"),
    "request_three_elems": req(b"\x93\xa4ping\x90\xc0"),
    "request_name_bin": req(b"\x92\xc4\x04ping\x91" + ID20),
    "request_args_map": req(b"\x92\xa4ping\x80"),
    "ping_no_args": req(b"\x92\xa4ping\x90"),
    "ping_id_19": req(b"\x92\xa4ping\x91\xc4\x13" + b"\x11" * 19),
    "ping_truncated": req(b"\x92\xa4ping\x91" + ID20[:-1]),
    "store_two_args": req(b"\x92\xa5store\x92" + ID20 + ID20),
    "stun_with_arg": req(b"\x92\xa4stun\x91\xc0"),
    "unknown_rpc": req(b"\x92\xa7unknown\x92\x01\xa1x"),
    "request_body_8193": req(b"\xc5\x1f\xfe" + b"\x00" * 8190),
    "response_trailing": resp(b"\xc3\x00"),
    "response_deep": resp(b"\x91" * 40 + b"\xc0"),
    "response_float32": resp(b"\xca\x3f\xc0\x00\x00"),
    "response_noncanonical": resp(b"\xcc\x05"),
    "response_bad_contacts": resp(b"\x92\x93\xc4\x01\x00\xa3bad\xcd\xff\xff\x93" + ID20 + b"\xa3::1\x00"),
}


def write(dirname, prefix, items):
    out = ROOT / "fuzz" / "corpus" / dirname
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob(prefix + "_*"):
        old.unlink()
    for name, data in items.items():
        (out / f"{prefix}_{name}").write_bytes(data)
    return len(items)


def main():
    vectors = json.loads((ROOT / "proto-spec" / "vectors.json").read_text())
    datagrams = {v["name"]: bytes.fromhex(v["hex"]) for v in vectors}
    bodies = {name: d[21:] for name, d in datagrams.items()}
    n = write("decode_datagram", "vec", datagrams)
    n += write("decode_datagram", "bad", BAD_DATAGRAMS)
    n += write("decode_value", "vec", bodies)
    n += write("decode_value", "bad", BAD_VALUES)
    print(f"wrote {n} seed files")


if __name__ == "__main__":
    main()
