"""Host one or more stock `kademlia.network.Server`s and drive them from stdin.

The Rust interop tests (tests/common/python.rs) spawn this script to get real
Python peers. One process can host several servers (`--count N`), each on its
own UDP port, in one asyncio loop: starting one interpreter per node costs far
more than the nodes themselves.

Usage: pynode.py [--count N] [--ksize K] [--bootstrap HOST:PORT]... [--timeout S]
Servers listen on 127.0.0.1 port 0 and bootstrap from the seeds before the
startup line. Python logging is silent unless KADMESH_PY_LOG=debug|info|...

Protocol (one line in, exactly one JSON line out, in order):
  startup   -> {"ports": [p0, ...], "ids": ["hex", ...]}
  [@I] set KEY VALUE     VALUE is tagged JSON (see decode_value); -> result: bool
  [@I] get KEY           -> result: tagged value or null
  [@I] bootstrap HOST PORT  -> result: [[id_hex, host, port], ...] found
  [@I] neighbors         -> result: every routing-table contact [id_hex, host, port]
  [@I] ping HOST PORT    -> result: peer id hex, or null on timeout
  [@I] stun HOST PORT    -> result: [host, port] as the peer saw us, or null
  getwhy KEY             -> result: [`get KEY`, why] (why: null if found, else as for setmany)
  getall KEY             -> result: list of `get KEY` on every hosted server
  getmany KEY...         -> result: {KEY: [`get KEY` on every hosted server]}, all at once
  setmany KEY...         all at once, server i % count sets KEY i to the
                         string KEY -> result: [[stored, seconds, why], ...]
                         (why: null, "no-neighbours" or "other (N contacts)")
  holders KEY            -> result: list, per hosted server, of whether it stores KEY
  visit HOST PORT KEY [direct]  a short-lived client: a fresh Server on its
                         own port bootstraps from HOST:PORT, gets KEY and
                         stops; `direct`: asks only HOST:PORT (find_value),
                         answers pings for DIRECT_LINGER s, and stops
                         -> result: [id_hex, port, tagged value or null]
  quit                   -> result: null, then exit (EOF on stdin also exits)
`@I` picks hosted server I (default 0); `--count 0` hosts none (for visits). Replies are {"ok": true, "result": R}
or {"ok": false, "error": "..."}; every command runs under --timeout seconds.
Tagged values: {"str": s}, {"int": n}, {"float": "16 hex digits of the
big-endian IEEE bits"}, {"bool": b}, {"bytes": "hex"}: exact both ways.
"""

import argparse
import asyncio
import json
import logging
import os
import struct
import sys
import time

from kademlia.network import Server
from kademlia.node import Node
from kademlia.utils import digest

# How long a direct visitor keeps answering after its request (long enough
# for the node it asked to verify it with a ping).
DIRECT_LINGER = 0.3


def decode_value(text):
    tagged = json.loads(text)
    (kind, raw), = tagged.items()
    if kind == "str":
        return str(raw)
    if kind == "int":
        return int(raw)
    if kind == "float":
        return struct.unpack(">d", bytes.fromhex(raw))[0]
    if kind == "bool":
        return bool(raw)
    if kind == "bytes":
        return bytes.fromhex(raw)
    raise ValueError(f"unknown value tag {kind!r}")


def encode_value(value):
    if value is None:
        return None
    if isinstance(value, bool):  # before int: bool is an int subclass
        return {"bool": value}
    if isinstance(value, int):
        return {"int": value}
    if isinstance(value, float):
        return {"float": struct.pack(">d", value).hex()}
    if isinstance(value, str):
        return {"str": value}
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": bytes(value).hex()}
    return {"other": repr(value)}


def contacts(server):
    return [[n.id.hex(), n.ip, n.port] for b in server.protocol.router.buckets for n in b.get_nodes()]


def why_nowhere(server, key):
    """Why a stock `set` stored nowhere or a `get` found nothing:
    "no-neighbours" when its own
    `find_neighbors` found nobody although its table holds contacts. The
    package's TableTraverser walks out from the key's bucket, left and right
    in turn, and stops as soon as a right turn finds no bucket, skipping those
    still to the left: a key in the last bucket, with that bucket and its left
    neighbour empty, finds no one (a defect of the package, not of the
    network; a split leaves such empty buckets)."""
    router = server.protocol.router
    held = sum(len(b.get_nodes()) for b in router.buckets)
    if held and not router.find_neighbors(Node(digest(key))):
        return "no-neighbours"
    return f"other ({held} contacts)"


def parse(line):
    """`[@I] CMD REST` -> (I, CMD, args); set keeps its JSON value whole."""
    words = line.strip().split(None, 1)
    index = 0
    if words and words[0].startswith("@"):
        index = int(words[0][1:])
        words = words[1].split(None, 1) if len(words) > 1 else []
    if not words:
        raise ValueError("empty command")
    cmd, rest = words[0], (words[1] if len(words) > 1 else "")
    args = rest.split(None, 1) if cmd == "set" else rest.split()
    return index, cmd, args


async def visit(host, port, key, ksize, direct):
    """A stock client that comes and goes: bootstrap, one get, stop; or,
    `direct`, one find_value asked of HOST:PORT alone, answering pings for
    a moment (a script asking one node), then stop."""
    client = Server(ksize=ksize)
    await client.listen(0, "127.0.0.1")
    try:
        if direct:
            ok, seed_id = await client.protocol.ping((host, port), client.node.id)
            found = None
            if ok:
                seed = Node(seed_id, host, port)
                ok, found = await client.protocol.call_find_value(seed, Node(digest(key)))
            await asyncio.sleep(DIRECT_LINGER)
            value = found.get("value") if ok and isinstance(found, dict) else None
        else:
            await client.bootstrap([(host, port)])
            value = await client.get(key)
        return [client.node.id.hex(), client.transport.get_extra_info("sockname")[1], encode_value(value)]
    finally:
        client.stop()


async def run_command(servers, line, ksize):
    index, cmd, args = parse(line)
    if cmd == "visit":
        return await visit(args[0], int(args[1]), args[2], ksize, args[3:] == ["direct"])
    server = servers[index]
    if cmd == "set":
        return await server.set(args[0], decode_value(args[1]))
    if cmd == "get":
        return encode_value(await server.get(args[0]))
    if cmd == "getwhy":
        found = await server.get(args[0])
        return [encode_value(found), None if found is not None else why_nowhere(server, args[0])]
    if cmd == "getall":
        found = await asyncio.gather(*(s.get(args[0]) for s in servers))
        return [encode_value(v) for v in found]
    if cmd == "getmany":
        found = await asyncio.gather(*(s.get(k) for k in args for s in servers))
        per_key = [found[i:i + len(servers)] for i in range(0, len(found), len(servers))]
        return {k: [encode_value(v) for v in vs] for k, vs in zip(args, per_key)}
    if cmd == "setmany":
        async def timed_set(i, key):
            server = servers[i % len(servers)]
            start = time.monotonic()
            try:
                ok = await server.set(key, key)
            except Exception as e:  # stock set raises when its lookup found nobody
                print(f"pynode: set {key!r} raised {e!r}", file=sys.stderr)
                ok = False
            return [ok, time.monotonic() - start, None if ok else why_nowhere(server, key)]
        return await asyncio.gather(*(timed_set(i, k) for i, k in enumerate(args)))
    if cmd == "holders":
        return [s.storage.get(digest(args[0])) is not None for s in servers]
    if cmd == "bootstrap":
        found = await server.bootstrap([(args[0], int(args[1]))])
        return [[n.id.hex(), n.ip, n.port] for n in found]
    if cmd == "neighbors":
        return contacts(server)
    if cmd == "ping":
        ok, peer_id = await server.protocol.ping((args[0], int(args[1])), server.node.id)
        return peer_id.hex() if ok and isinstance(peer_id, bytes) else None
    if cmd == "stun":
        ok, seen = await server.protocol.stun((args[0], int(args[1])))
        return list(seen) if ok else None
    raise ValueError(f"unknown command {cmd!r}")


async def serve(servers, timeout, ksize):
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip() == "quit":
            reply = {"ok": True, "result": None}
            if line:
                print(json.dumps(reply), flush=True)
            return
        try:
            result = await asyncio.wait_for(run_command(servers, line, ksize), timeout)
            reply = {"ok": True, "result": result}
        except asyncio.TimeoutError:
            reply = {"ok": False, "error": f"timed out after {timeout}s"}
        except Exception as e:  # any failure becomes an answer, never a hang
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(reply), flush=True)


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=1, help="servers to host")
    p.add_argument("--bootstrap", action="append", default=[], help="HOST:PORT seed (repeatable)")
    p.add_argument("--ksize", type=int, default=20, help="k: bucket size and replication")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per command")
    a = p.parse_args()
    logging.basicConfig(level=os.environ.get("KADMESH_PY_LOG", "CRITICAL").upper())
    servers = [Server(ksize=a.ksize) for _ in range(a.count)]
    await asyncio.gather(*(s.listen(0, "127.0.0.1") for s in servers))
    seeds = [(h, int(port)) for h, port in (s.rsplit(":", 1) for s in a.bootstrap)]
    if seeds:
        await asyncio.wait_for(asyncio.gather(*(s.bootstrap(seeds) for s in servers)), a.timeout)
    ports = [s.transport.get_extra_info("sockname")[1] for s in servers]
    print(json.dumps({"ports": ports, "ids": [s.node.id.hex() for s in servers]}), flush=True)
    try:
        await serve(servers, a.timeout, a.ksize)
    finally:
        for s in servers:
            s.stop()


if __name__ == "__main__":
    asyncio.run(main())
