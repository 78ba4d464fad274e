"""Latency as Redis fills: status read and list with 1k..1M stored records, scrape when queued.

Records are written straight into Redis by a Lua script, in the shape of a real finished task
(a template read from a task the worker ran), with the same indexes the submit and finish
scripts maintain: 1M submits over HTTP would take longer than the whole benchmark.
"""

from __future__ import annotations

import random
import time
from typing import Any

import redis

from bench import client
from bench.config import Config
from bench.env import all_queue_lists, make_stack, redis_client, used_memory
from bench.stats import percentile, summary
from contracts.records import TASKS_INDEX, name_index, name_state_index, state_index
from devstack.processes import Stack

SEED_BATCH = 2_000
# KEYS: the four listing indexes. ARGV: first count base_ms field value field value ...
SEED_LUA = """
local first, count, base = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
for i = first, first + count - 1 do
  local id = string.format('bench%027d', i)
  local rec = 'kt:task:' .. id
  local score = base + i
  redis.call('HSET', rec, unpack(fields))
  redis.call('HSET', rec, 'submitted_at', score)
  redis.call('EXPIRE', rec, 86400)
  for _, key in ipairs(KEYS) do redis.call('ZADD', key, score, id) end
end
return count
"""


def seeded_id(i: int) -> str:
    return f"bench{i:027d}"


def seed(r: redis.Redis, template: dict[bytes, bytes], start: int, stop: int) -> float:
    """Write records start..stop-1; seconds taken."""
    script = r.register_script(SEED_LUA)
    keys = [
        TASKS_INDEX,
        name_index("sleep"),
        state_index("SUCCESS"),
        name_state_index("sleep", "SUCCESS"),
    ]
    flat: list[bytes] = [x for kv in template.items() for x in kv]
    base = int(time.time() * 1000) - 10_000_000
    began = time.perf_counter()
    pipe = r.pipeline(transaction=False)
    for first in range(start, stop, SEED_BATCH):
        count = min(SEED_BATCH, stop - first)
        script(keys=keys, args=[first, count, base, *flat], client=pipe)
        if len(pipe) >= 10:
            pipe.execute()
    pipe.execute()
    return time.perf_counter() - began


def _latency_of(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(values, 50) * 1000,
        "p99_ms": percentile(values, 99) * 1000,
        "mean_ms": sum(values) / len(values) * 1000,
    }


def _latency(port: int, paths: list[str]) -> dict[str, float]:
    return _latency_of(client.timed_gets(port, paths))


def _repeat(port: int, make_paths: Any, repeats: int) -> dict[str, Any]:
    _latency(port, make_paths()[:20])  # warm up the connection and the route
    runs = [_latency(port, make_paths()) for _ in range(repeats)]
    return _summaries(runs)


def _summaries(runs: list[dict[str, float]]) -> dict[str, Any]:
    return {k: summary([run[k] for run in runs]) for k in ("p50_ms", "p99_ms", "mean_ms")}


def growth(stack: Stack, template: dict[bytes, bytes], cfg: Config) -> list[Any]:
    """Status read and list latency at each size.

    Each size gets its own Redis and API, seeded once; then every repetition sends one request
    to each size in turn, so that all sizes meet the same machine load: on shared cores, sizes
    measured one after the other, a minute apart, drifted by more than the 1.2x target.
    """
    sizes = cfg.growth_sizes
    stacks = [make_stack(stack.workdir / f"growth-{size}") for size in sizes]
    rng = random.Random(6)
    n = cfg.latency_requests
    list_paths = ["/tasks?limit=50"] * n
    rows: list[dict[str, Any]] = []
    try:
        for size, sized in zip(sizes, stacks, strict=True):
            sized.start_redis()
            r = redis_client(sized)
            seconds = seed(r, template, 0, size)
            rows.append({"records": size, "seed_seconds": seconds,
                         "redis_used_mib": used_memory(r) / 2**20})  # fmt: skip
            r.close()
            sized.start_api()
            client.timed_gets(sized.api_port, list_paths[:20])  # warm up
        runs: list[dict[str, list[dict[str, float]]]] = [{"status": [], "list": []} for _ in sizes]
        ports = [sized.api_port for sized in stacks]
        for _ in range(cfg.repeats):
            status = [
                [f"/tasks/{seeded_id(rng.randrange(size))}" for _ in range(n)] for size in sizes
            ]
            for what, paths in (("status", status), ("list", [list_paths] * len(sizes))):
                timed = client.timed_gets_interleaved(list(zip(ports, paths, strict=True)))
                for run, values in zip(runs, timed, strict=True):
                    run[what].append(_latency_of(values))
    finally:
        for sized in stacks:
            sized.stop_all(timeout=30)
    for row, run in zip(rows, runs, strict=True):
        row["status"], row["list"] = _summaries(run["status"]), _summaries(run["list"])
    return rows


def scrape(stack: Stack, r: redis.Redis, message: bytes, cfg: Config) -> dict[str, Any]:
    """/metrics scrape time with no queued message, then with `queued_messages` queued."""
    queue = all_queue_lists()[0]
    r.delete(*all_queue_lists())

    def measure() -> dict[str, Any]:
        return _repeat(stack.api_port, lambda: ["/metrics"] * cfg.scrape_requests, cfg.repeats)

    empty = measure()
    began = time.perf_counter()
    pipe = r.pipeline(transaction=False)
    batch = [message] * 1_000
    for first in range(0, cfg.queued_messages, len(batch)):
        pipe.lpush(queue, *batch[: min(len(batch), cfg.queued_messages - first)])
        if len(pipe) >= 20:
            pipe.execute()
    pipe.execute()
    fill_seconds = time.perf_counter() - began
    queued = int(r.llen(queue))
    loaded = measure()
    r.delete(queue)
    return {
        "queued": queued,
        "fill_seconds": fill_seconds,
        "message_bytes": len(message),
        "empty": empty,
        "loaded": loaded,
    }
