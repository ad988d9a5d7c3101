#!/usr/bin/env python3
"""Capture wire test vectors from the real Python `kademlia` package.

Run with the interpreter that has kademlia 2.2.x, rpcudp 5 and
u-msgpack-python 2.8 installed:

    /tmp/kvenv/bin/python proto-spec/vectors.py > proto-spec/vectors.json

It starts real `kademlia.network.Server` instances on 127.0.0.1 (and ::1 when
IPv6 is available), wraps each protocol's transport so every datagram it
sends is recorded, drives ping / store / find_node / find_value / stun and one
unknown (extension-style) procedure, and writes the captured datagrams as
JSON. Node ids and values are fixed; message ids and ports are random, so
re-running changes those bytes only.

The output is a JSON list; each vector: {"name", "direction": "request"|"response", "rpc", "hex",
"decoded": {"msg_id", "body", "summary", ...}}. `body` is the msgpack body
as a typed tree: {"nil": null} | {"bool": b} | {"int": n} |
{"float": x, "bits": "<8 bytes hex, big endian>"} | {"str": s} |
{"bin": "<hex>"} | {"array": [...]} | {"map": [[key, value], ...]}.
"""

import asyncio
import json
import logging
import socket
import struct
import sys

import kademlia
import umsgpack
from kademlia.network import Server
from kademlia.utils import digest

WORKER_JSON = (
    '{"worker_id": "w1", "tunnel_url": "https://w1.example-tunnel.net", '
    '"services": ["ocr"], "capabilities": {"has_gpu": true, '
    '"gpu_type": "NVIDIA RTX 3090", "cpu_cores": 16}}'
)
WORKER_LIST_JSON = '["worker-gpu-001", "worker-7"]'

# (vector name suffix, DHT key, value): every type Server.set accepts.
VALUES = [
    ("json_worker", "worker:w1", WORKER_JSON),
    ("json_list", "service:ocr", WORKER_LIST_JSON),
    ("str_unicode", "k:unicode", "h\u00e9llo \u2713"),
    ("str16_300", "k:long", "x" * 300),
    ("bytes", "k:bytes", b"\x00\x01binary\xff"),
    ("int_small", "k:int7", 7),
    ("int_uint8", "k:int200", 200),
    ("int_uint16", "k:int40000", 40000),
    ("int_uint32", "k:int70000", 70000),
    ("int_uint64", "k:int2p40", 2**40),
    ("int_u64_max", "k:u64max", 2**64 - 1),
    ("int_neg_fix", "k:neg5", -5),
    ("int_neg8", "k:neg100", -100),
    ("int_neg16", "k:neg200", -200),
    ("int_neg32", "k:neg70000", -70000),
    ("int_i64_min", "k:i64min", -(2**63)),
    ("float", "k:pi", 3.14),
    ("float_neg", "k:neghalf", -0.5),
    ("bool_true", "k:true", True),
    ("bool_false", "k:false", False),
]


def typed(v):
    """The typed description of a decoded msgpack value."""
    if v is None:
        return {"nil": None}
    if isinstance(v, bool):
        return {"bool": v}
    if isinstance(v, int):
        return {"int": v}
    if isinstance(v, float):
        return {"float": v, "bits": struct.pack(">d", v).hex()}
    if isinstance(v, str):
        return {"str": v}
    if isinstance(v, bytes):
        return {"bin": v.hex()}
    if isinstance(v, (list, tuple)):
        return {"array": [typed(x) for x in v]}
    if isinstance(v, dict):
        return {"map": [[typed(k), typed(x)] for k, x in v.items()]}
    raise TypeError(f"unexpected decoded type {type(v)}")


class Recorder:
    """Stands in for a protocol's transport and logs every sendto."""

    def __init__(self, inner, owner, log):
        self.inner, self.owner, self.log = inner, owner, log

    def sendto(self, data, addr):
        self.log.append((self.owner, bytes(data), addr))
        self.inner.sendto(data, addr)

    def __getattr__(self, name):
        return getattr(self.inner, name)


class Harness:
    def __init__(self):
        self.log = []  # (owner name, datagram, destination)
        self.vectors = []
        self.servers = {}

    async def node(self, name, interface="127.0.0.1"):
        server = Server(node_id=digest(name))
        await server.listen(0, interface=interface)
        server.protocol.transport = Recorder(server.protocol.transport, name, self.log)
        self.servers[name] = server
        return server

    def addr(self, name):
        return self.servers[name].transport.get_extra_info("sockname")[:2]

    async def call(self, label, caller, callee, rpc, *args, summary="", extra=None):
        """One direct RPC from `caller` to `callee`; records request+response."""
        start = len(self.log)
        proto = self.servers[caller].protocol
        ok, _ = await getattr(proto, rpc)(self.addr(callee), *args)
        assert ok, f"{label}: no reply"
        await asyncio.sleep(0.05)  # let any incidental traffic land
        self.pick(label, rpc, self.log[start:], summary, extra=extra)

    def pick(self, label, rpc, window, summary, want=None, extra=None):
        """Adds the first `rpc` request in `window` (and its response)."""
        reqs = [e for e in window if e[1][:1] == b"\x00"]
        for owner, data, dest in reqs:
            body = umsgpack.unpackb(data[21:])
            if body[0] != rpc:
                continue
            resp = next((e for e in self.log if e[1][:1] == b"\x01" and e[1][1:21] == data[1:21]), None)
            if want is not None and (resp is None or not want(umsgpack.unpackb(resp[1][21:]))):
                continue
            self.add(label, "request", rpc, owner, data, summary, extra)
            if resp is not None:
                self.add(label, "response", rpc, resp[0], resp[1], summary, extra)
            return
        raise AssertionError(f"{label}: no matching {rpc} request captured")

    def add(self, label, direction, rpc, owner, data, summary, extra):
        body = umsgpack.unpackb(data[21:])
        decoded = {
            "sent_by": owner,
            "sent_by_id": digest(owner).hex(),
            "msg_id": data[1:21].hex(),
            "summary": summary,
        }
        decoded.update(extra or {})
        decoded["body"] = typed(body)
        self.vectors.append({
            "name": f"{label}_{direction}",
            "direction": direction,
            "rpc": rpc,
            "hex": data.hex(),
            "decoded": decoded,
        })


async def ipv4_scenario(h):
    a, b, c, d = [await h.node(n) for n in ("node-a", "node-b", "node-c", "node-d")]
    await h.call("ping", "node-b", "node-a", "ping", b.node.id,
                 summary="node-b pings node-a; reply is node-a's id")
    await h.call("find_node_empty", "node-b", "node-a", "find_node", b.node.id, digest("anything"),
                 summary="node-a knows only the caller, so the contact list is empty")
    await h.call("ping_c", "node-c", "node-a", "ping", c.node.id, summary="node-c pings node-a")
    await h.call("ping_d", "node-d", "node-a", "ping", d.node.id, summary="node-d pings node-a")
    await h.call("find_node_contacts", "node-c", "node-a", "find_node", c.node.id, digest("worker:w1"),
                 summary="node-a answers with node-b and node-d as [id, ip, port], closest first")
    for suffix, key, value in VALUES:
        extra = {"dht_key": key, "key": digest(key).hex()}
        await h.call(f"store_{suffix}", "node-b", "node-a", "store", b.node.id, digest(key), value,
                     summary=f"store {key!r} = {value!r}; reply is true", extra=extra)
        await h.call(f"find_value_hit_{suffix}", "node-c", "node-a", "find_value", c.node.id, digest(key),
                     summary=f"find_value {key!r}: reply is {{'value': {value!r}}}", extra=extra)
    await h.call("find_value_miss", "node-c", "node-a", "find_value", c.node.id, digest("missing"),
                 summary="key not stored: reply is the contact list, as find_node",
                 extra={"dht_key": "missing", "key": digest("missing").hex()})
    await h.call("stun", "node-c", "node-a", "stun",
                 summary="reply is the caller's address as node-a saw it: [ip, port]")
    await extension_call(h, c)
    await server_set_get(h, b, c)


async def extension_call(h, c):
    """An unknown procedure: Python ignores it (no reply); we keep the request."""
    start = len(h.log)
    fut = c.protocol.announce_worker(h.addr("node-a"), c.node.id, WORKER_JSON)
    await asyncio.sleep(0.2)
    fut.cancel()
    h.pick("unknown_rpc", "announce_worker", h.log[start:],
           "a procedure node-a does not have: it logs a warning and never replies")


async def server_set_get(h, b, c):
    """The high-level API, to show real traffic matches the direct calls."""
    # Direct protocol calls do not touch routing tables; bootstrapping does.
    await b.bootstrap([h.addr("node-a")])
    await c.bootstrap([h.addr("node-a")])
    # Only node-a holds worker:w1 (stored by a direct call above), so node-c
    # must crawl for it.
    start = len(h.log)
    assert await c.get("worker:w1") == WORKER_JSON
    h.pick("server_get", "find_value", h.log[start:], "Server.get('worker:w1') from node-c",
           want=lambda body: isinstance(body, dict),
           extra={"dht_key": "worker:w1", "key": digest("worker:w1").hex()})
    start = len(h.log)
    assert await b.set("worker:w2", WORKER_JSON)
    h.pick("server_set", "store", h.log[start:], "Server.set('worker:w2', json) as sent by node-b",
           extra={"dht_key": "worker:w2", "key": digest("worker:w2").hex()})


async def ipv6_scenario(h):
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).bind(("::1", 0))
    except OSError:
        print("warning: no IPv6 loopback, skipping IPv6 vectors", file=sys.stderr)
        return
    e, f, g = [await h.node(n, "::1") for n in ("node-e6", "node-f6", "node-g6")]
    await h.call("ipv6_ping", "node-f6", "node-e6", "ping", f.node.id, summary="ping over ::1")
    await h.call("ipv6_stun", "node-f6", "node-e6", "stun",
                 summary="IPv6 caller: reply is [ip, port, flowinfo, scope_id]")
    await h.call("ipv6_ping_g", "node-g6", "node-e6", "ping", g.node.id, summary="node-g6 pings node-e6")
    await h.call("ipv6_find_node", "node-g6", "node-e6", "find_node", g.node.id, digest("k"),
                 summary="contact list with an IPv6 literal ip string ('::1')")


async def main():
    logging.basicConfig(level=logging.CRITICAL)
    h = Harness()
    try:
        await ipv4_scenario(h)
        await ipv6_scenario(h)
    finally:
        for s in h.servers.values():
            s.stop()
    print(f"captured {len(h.vectors)} vectors with kademlia {kademlia.__version__}, "
          f"umsgpack {umsgpack.__version__}", file=sys.stderr)
    print(json.dumps(h.vectors, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    asyncio.run(main())
