"""Python side of `versus`: runs one benchmark plan on stock `kademlia` nodes.

The Rust binary `versus` (simulations/src/bin/versus) writes a plan as one
JSON object on stdin and reads one JSON result from stdout; progress goes to
stderr. All N `kademlia.network.Server`s live in this one process and one
asyncio loop, each on its own UDP socket on the loopback address
plan["host"] (127.x.y.1, the run's own, so strays from other programs'
nodes on 127.0.0.1 never reach them), exactly as the Rust side hosts its
nodes, and every figure is taken the same way as there:

  bootstrap  node i (i >= 1) joins through node 0, one after another;
  sets       plan["sets"][j] = [node, key index]: node sets keys[k] = values[k];
  gets       plan["gets"][j] = [node, key index], checked against values[k];
  both run with plan["concurrency"] operations in flight, each under
  plan["op_timeout_s"]; latency is wall time around the call
  (time.perf_counter), memory is VmRSS from /proc/self/status, CPU is
  ru_utime + ru_stime from getrusage(RUSAGE_SELF).

Result keys (times in seconds, memory in KiB): bootstrap_s, join_s[], set_s[],
set_ok, get_s[], get_ok, get_wall_s, get_cpu_s, rss_base_kib, rss_end_kib,
label.
"""

import asyncio
import json
import logging
import resource
import sys
import time

import kademlia
from kademlia.network import Server


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_s():
    """User + system CPU of the whole process, as the Rust side reads it."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def bounded(concurrency, jobs):
    """Runs the coroutine functions in `jobs` with at most `concurrency` at once."""
    gate = asyncio.Semaphore(concurrency)

    async def one(job):
        async with gate:
            return await job()

    return await asyncio.gather(*(one(j) for j in jobs))


async def timed(coro, timeout):
    """(seconds, result or None on timeout) of one awaited call."""
    began = time.perf_counter()
    try:
        result = await asyncio.wait_for(coro, timeout)
    except asyncio.TimeoutError:
        result = None
    return time.perf_counter() - began, result


async def join(servers, timeout):
    seed = servers[0].transport.get_extra_info("sockname")[:2]
    began = time.perf_counter()
    joins = []
    for s in servers[1:]:
        took, _ = await timed(s.bootstrap([seed]), timeout)
        joins.append(took)
    return time.perf_counter() - began, joins


async def run(plan):
    timeout = plan["op_timeout_s"]
    conc = plan["concurrency"]
    keys, values = plan["keys"], plan["values"]
    rss_base = rss_kib()
    servers = [Server() for _ in range(plan["nodes"])]
    for s in servers:
        await s.listen(0, plan["host"])
    bootstrap_s, join_s = await join(servers, timeout)
    print(f"pybench: {len(servers)} nodes joined in {bootstrap_s:.2f} s", file=sys.stderr)

    def set_job(node, k):
        return lambda: timed(servers[node].set(keys[k], values[k]), timeout)

    sets = await bounded(conc, [set_job(n, k) for n, k in plan["sets"]])
    print(f"pybench: {len(sets)} sets done", file=sys.stderr)

    def get_job(node, k):
        async def go():
            took, got = await timed(servers[node].get(keys[k]), timeout)
            return took, got == values[k]
        return go

    cpu0, wall0 = cpu_s(), time.perf_counter()
    gets = await bounded(conc, [get_job(n, k) for n, k in plan["gets"]])
    get_wall, get_cpu = time.perf_counter() - wall0, cpu_s() - cpu0
    print(f"pybench: {len(gets)} gets done in {get_wall:.2f} s", file=sys.stderr)
    rss_end = rss_kib()
    for s in servers:
        s.stop()
    return {
        "bootstrap_s": bootstrap_s,
        "join_s": join_s,
        "set_s": [t for t, _ in sets],
        "set_ok": sum(1 for _, ok in sets if ok),
        "get_s": [t for t, _ in gets],
        "get_ok": sum(1 for _, ok in gets if ok),
        "get_wall_s": get_wall,
        "get_cpu_s": get_cpu,
        "rss_base_kib": rss_base,
        "rss_end_kib": rss_end,
        "label": f"kademlia {getattr(kademlia, '__version__', '?')} (Python {sys.version.split()[0]})",
    }


def main():
    logging.basicConfig(level=logging.CRITICAL)
    plan = json.load(sys.stdin)
    result = asyncio.run(run(plan))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
