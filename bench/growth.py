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
from bench.env import all_queue_lists, used_memory
from bench.stats import percentile, summary
from contracts.records import TASKS_INDEX, index_keys, name_index
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
    keys = [TASKS_INDEX, name_index("sleep"), *index_keys("sleep", "SUCCESS")]
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


def _latency(port: int, paths: list[str]) -> dict[str, float]:
    values = client.timed_gets(port, paths)
    return {
        "p50_ms": percentile(values, 50) * 1000,
        "p99_ms": percentile(values, 99) * 1000,
        "mean_ms": sum(values) / len(values) * 1000,
    }


def _repeat(port: int, make_paths: Any, repeats: int) -> dict[str, Any]:
    _latency(port, make_paths()[:20])  # warm up the connection and the route
    runs = [_latency(port, make_paths()) for _ in range(repeats)]
    return {k: summary([run[k] for run in runs]) for k in ("p50_ms", "p99_ms", "mean_ms")}


def growth(stack: Stack, r: redis.Redis, template: dict[bytes, bytes], cfg: Config) -> list[Any]:
    """Status read and list latency at each size (records added on top of the previous size)."""
    r.flushdb()
    rows = []
    have = 0
    rng = random.Random(6)
    n = cfg.latency_requests
    for size in cfg.growth_sizes:
        seconds = seed(r, template, have, size)
        have = size

        def status_paths(size: int = size) -> list[str]:
            return [f"/tasks/{seeded_id(rng.randrange(size))}" for _ in range(n)]

        def list_paths() -> list[str]:
            return ["/tasks?limit=50"] * max(50, n // 4)

        rows.append(
            {
                "records": size,
                "seed_seconds": seconds,
                "redis_used_mib": used_memory(r) / 2**20,
                "status": _repeat(stack.api_port, status_paths, cfg.repeats),
                "list": _repeat(stack.api_port, list_paths, cfg.repeats),
            }
        )
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
