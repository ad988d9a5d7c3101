"""Play the platform's own Python DHT client and worker on stock `kademlia`.

The platform runs DHT code of its own (a `DHTClient` and a worker agent on
stock `kademlia.network.Server`). This script behaves the way
`/work/shared/docs/platform.md` ("What the platform's own DHT code does")
says theirs does, written from those facts, so the Rust tests in
tests/platform.rs can check that a kadmesh network and their workers see each
other:

- connect: `GET` the bootstrap URL (a kadmesh node's `/api/dht/bootstrap`),
  take every seed's `tunnel_url` host name as its UDP host (a missing key or a
  `null` raises, as theirs does) and `dht_port` as its port, then
  `Server.bootstrap` from those.
- register: `set worker:{id}` (JSON: worker_id, tunnel_url, vpn_ip, services,
  capabilities, load 0.0, last_seen from the event loop's monotonic clock),
  then a read-modify-write of the `service:{svc}` JSON list per service, then
  a heartbeat loop (`--heartbeat` seconds; 30 in production) that gets the
  record and sets it again with only `last_seen` changed.
- find: `get service:{svc}`, then `get worker:{id}` for each id in it.
- unpublish: read-modify-write of each `service:{svc}` list without the id,
  and the heartbeat stops.

Usage: platform_client.py --bootstrap-url URL [--count N] [--ksize K]
                          [--heartbeat S] [--timeout S]
Each of the N clients is its own stock `Server` on 127.0.0.1 port 0 (one
platform process each), all in one asyncio loop. Startup line:
  {"ports": [...], "ids": ["hex", ...], "seeds": [[host, port], ...]}
or, if connecting failed, {"error": "..."} and exit status 1.

Commands (one line in, exactly one JSON line out, in order; `@I` picks
client I, default 0):
  [@I] register ID SVCS [URL]  SVCS comma-separated; URL default
                               https://ID.example-tunnel.net -> the record
  registerall SVCS ID...       client i registers ID_i, all at the same moment
  [@I] stop ID                 the worker dies: no more heartbeats, list untouched
  [@I] unpublish ID            their disconnect: RMW every list without ID
  [@I] beats ID                heartbeats written so far for ID
  [@I] find SVC                -> {"ids": [...], "workers": [record, ...]}
  [@I] list SVC                -> the service:SVC list as read (null if none)
  [@I] get KEY                 -> the raw string value or null
  quit
Replies are {"ok": true, "result": R} or {"ok": false, "error": "..."}.
"""

import argparse
import asyncio
import json
import logging
import os
import sys
import urllib.request
from urllib.parse import urlparse

from kademlia.network import Server


def fetch_json(url, timeout):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read().decode())


def seeds_of(doc):
    """(host, dht_port) per seed, the way their client reads the document."""
    seeds = []
    for seed in doc["seeds"]:
        tunnel_url = seed["tunnel_url"]  # a missing key raises KeyError
        if tunnel_url is None:
            raise TypeError(f"seed {seed.get('node_id')} has a null tunnel_url")
        host = urlparse(tunnel_url).hostname
        if not host:
            raise ValueError(f"seed tunnel_url {tunnel_url!r} has no host")
        seeds.append((host, int(seed["dht_port"])))
    return seeds


class PlatformClient:
    """One platform process: a stock Server plus its worker's bookkeeping."""

    def __init__(self, ksize, heartbeat):
        self.server = Server(ksize=ksize)
        self.heartbeat = heartbeat
        self.records = {}
        self.beats = {}
        self.tasks = {}

    async def listen(self):
        await self.server.listen(0, "127.0.0.1")

    async def get_json(self, key):
        raw = await self.server.get(key)
        return json.loads(raw) if isinstance(raw, str) else None

    async def rmw_list(self, service, add=None, remove=None):
        """Their read-modify-write of `service:{service}`: lost updates and all."""
        ids = await self.get_json(f"service:{service}")
        ids = ids if isinstance(ids, list) else []
        if add is not None and add not in ids:
            ids.append(add)
        if remove is not None:
            ids = [i for i in ids if i != remove]
        await self.server.set(f"service:{service}", json.dumps(ids))
        return ids

    async def register(self, worker_id, services, tunnel_url):
        record = {
            "worker_id": worker_id,
            "tunnel_url": tunnel_url,
            "vpn_ip": None,
            "services": services,
            "capabilities": {"has_gpu": False, "cpu_cores": 4},
            "load": 0.0,
            "last_seen": asyncio.get_running_loop().time(),
        }
        self.records[worker_id] = record
        await self.server.set(f"worker:{worker_id}", json.dumps(record))
        for service in services:
            await self.rmw_list(service, add=worker_id)
        self.stop(worker_id)
        self.beats[worker_id] = 0
        self.tasks[worker_id] = asyncio.ensure_future(self.beat(worker_id))
        return record

    async def beat(self, worker_id):
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                record = await self.get_json(f"worker:{worker_id}")
                if not isinstance(record, dict):
                    record = dict(self.records[worker_id])
                record["last_seen"] = asyncio.get_running_loop().time()
                await self.server.set(f"worker:{worker_id}", json.dumps(record))
                self.beats[worker_id] += 1
            except Exception as e:  # their loop logs and carries on
                logging.warning("heartbeat of %s failed: %s", worker_id, e)

    def stop(self, worker_id):
        task = self.tasks.pop(worker_id, None)
        if task is not None:
            task.cancel()

    async def unpublish(self, worker_id):
        self.stop(worker_id)
        services = self.records.get(worker_id, {}).get("services", [])
        return {s: await self.rmw_list(s, remove=worker_id) for s in services}

    async def find(self, service):
        ids = await self.get_json(f"service:{service}")
        ids = ids if isinstance(ids, list) else []
        workers = []
        for worker_id in ids:
            record = await self.get_json(f"worker:{worker_id}")
            if isinstance(record, dict):
                workers.append(record)
        return {"ids": ids, "workers": workers}


def parse(line):
    words = line.split()
    index = 0
    if words and words[0].startswith("@"):
        index, words = int(words[0][1:]), words[1:]
    if not words:
        raise ValueError("empty command")
    return index, words[0], words[1:]


async def run_command(clients, line):
    index, cmd, args = parse(line)
    if cmd == "registerall":
        services = args[0].split(",")
        jobs = (c.register(w, services, f"https://{w}.example-tunnel.net") for c, w in zip(clients, args[1:]))
        return await asyncio.gather(*jobs)
    client = clients[index]
    if cmd == "register":
        url = args[2] if len(args) > 2 else f"https://{args[0]}.example-tunnel.net"
        return await client.register(args[0], args[1].split(","), url)
    if cmd == "stop":
        client.stop(args[0])
        return None
    if cmd == "unpublish":
        return await client.unpublish(args[0])
    if cmd == "beats":
        return client.beats.get(args[0], 0)
    if cmd == "find":
        return await client.find(args[0])
    if cmd == "list":
        return await client.get_json(f"service:{args[0]}")
    if cmd == "get":
        raw = await client.server.get(args[0])
        return raw if isinstance(raw, str) else None
    raise ValueError(f"unknown command {cmd!r}")


async def serve(clients, timeout):
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip() == "quit":
            if line:
                print(json.dumps({"ok": True, "result": None}), flush=True)
            return
        try:
            reply = {"ok": True, "result": await asyncio.wait_for(run_command(clients, line), timeout)}
        except asyncio.TimeoutError:
            reply = {"ok": False, "error": f"timed out after {timeout}s"}
        except Exception as e:  # any failure becomes an answer, never a hang
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(reply), flush=True)


async def connect(clients, url, timeout):
    doc = await asyncio.get_running_loop().run_in_executor(None, fetch_json, url, timeout)
    seeds = seeds_of(doc)
    await asyncio.gather(*(c.listen() for c in clients))
    await asyncio.wait_for(asyncio.gather(*(c.server.bootstrap(seeds) for c in clients)), timeout)
    return seeds


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap-url", required=True, help="a node's /api/dht/bootstrap")
    p.add_argument("--count", type=int, default=1, help="platform clients to host")
    p.add_argument("--ksize", type=int, default=20, help="k of each stock Server")
    p.add_argument("--heartbeat", type=float, default=30.0, help="seconds between heartbeats")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per command")
    a = p.parse_args()
    logging.basicConfig(level=os.environ.get("KADMESH_PY_LOG", "CRITICAL").upper())
    clients = [PlatformClient(a.ksize, a.heartbeat) for _ in range(a.count)]
    try:
        seeds = await connect(clients, a.bootstrap_url, a.timeout)
    except Exception as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
        sys.exit(1)
    ports = [c.server.transport.get_extra_info("sockname")[1] for c in clients]
    ids = [c.server.node.id.hex() for c in clients]
    print(json.dumps({"ports": ports, "ids": ids, "seeds": seeds}), flush=True)
    try:
        await serve(clients, a.timeout)
    finally:
        for c in clients:
            for w in list(c.tasks):
                c.stop(w)
            c.server.stop()


if __name__ == "__main__":
    asyncio.run(main())
