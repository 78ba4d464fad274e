"""What one task costs the Redis that every replica shares (issue 15): Redis CPU time (`INFO cpu`),
commands and network bytes per finished task, ours (submit over HTTP, the run, one status read)
against bare Celery with a Redis result backend (`delay()`, the run, one `AsyncResult.state`),
on one Redis, rounds alternating; the tasks a second one Redis core would sustain for each; and
the commands that cost ours the most (`INFO commandstats`).

    python -m bench.redis_cost [--tasks 3000] [--rounds 3] [--json]

`python -m bench` runs it too, in a process of its own.

Both workers (prefork 2) are up throughout, each idle while the other drains, as in the drains
of `python -m bench`: what they cost Redis while idle is in both figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from bench import baseline, client
from bench.config import SUBMIT_BODY
from bench.env import make_stack, redis_client, stop
from contracts.records import State, state_index
from devstack.processes import ROOT, Stack, wait_until

SUCCEEDED = state_index(State.SUCCESS)


def snapshot(r: redis.Redis) -> dict[str, Any]:
    cpu, stats = r.info("cpu"), r.info("stats")
    return {
        "cpu_s": float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
        "commands": int(stats["total_commands_processed"]),
        "bytes": int(stats["total_net_input_bytes"]) + int(stats["total_net_output_bytes"]),
        "by_command": {
            name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
            for name, v in r.info("commandstats").items()
        },
    }


def per_task(before: dict[str, Any], after: dict[str, Any], n: int) -> dict[str, Any]:
    calls = {
        name: (
            (c - before["by_command"].get(name, (0, 0))[0]) / n,
            (u - before["by_command"].get(name, (0, 0))[1]) / n,
        )
        for name, (c, u) in after["by_command"].items()
    }
    return {
        "cpu_us": (after["cpu_s"] - before["cpu_s"]) * 1e6 / n,
        "commands": (after["commands"] - before["commands"]) / n,
        "bytes": (after["bytes"] - before["bytes"]) / n,
        "by_command": {k: v for k, v in calls.items() if v[0] > 0},
    }


def ours_once(stack: Stack, r: redis.Redis, n: int) -> dict[str, Any]:
    before_ok = int(r.zcard(SUCCEEDED))
    before = snapshot(r)
    statuses = client.post_many(stack.api_port, "/tasks", SUBMIT_BODY, n, 32)
    if statuses.get(202) != n:
        raise RuntimeError(f"submits answered {dict(statuses)}")
    wait_until(lambda: int(r.zcard(SUCCEEDED)) >= before_ok + n, 300, "our drain", 0.05)
    ids = [i.decode() for i in r.zrevrange(SUCCEEDED, 0, n - 1)]  # type: ignore[union-attr]
    client.timed_gets(stack.api_port, [f"/tasks/{task_id}" for task_id in ids])
    return per_task(before, snapshot(r), n)


def bare_once(r: redis.Redis, n: int) -> dict[str, Any]:
    from bench.bare_app import noop

    before = snapshot(r)
    results = [noop.delay() for _ in range(n)]
    wait_until(lambda: baseline.pending(r) == 0, 300, "the bare drain", 0.05)
    states = [result.state for result in results]
    if set(states) != {"SUCCESS"}:
        raise RuntimeError(f"bare Celery tasks ended {set(states)}")
    return per_task(before, snapshot(r), n)


def measure(stack: Stack, r: redis.Redis, tasks: int, rounds: int) -> dict[str, Any]:
    baseline.use_redis(stack)
    bare_worker = baseline.start_bare_worker(stack, BENCH_BARE_BACKEND=stack.redis_url)
    worker = stack.start_worker("worker", concurrency=2)
    bare_once(r, 50)  # warm-ups: imports, connections
    ours_once(stack, r, 50)
    ours, bare = [], []
    for round_ in range(rounds):  # who goes first alternates, as in the drains
        if round_ % 2:
            ours.append(ours_once(stack, r, tasks))
        bare.append(bare_once(r, tasks))
        if not round_ % 2:
            ours.append(ours_once(stack, r, tasks))
    stop(stack, worker)
    stop(stack, bare_worker)
    baseline.close()
    return {"tasks": tasks, "ours": ours, "bare": bare}


def median(figures: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(f[key] for f in figures))


def report(res: dict[str, Any]) -> str:
    ours, bare = res["ours"], res["bare"]
    rows = ["| per finished task | ours | bare Celery + result backend | ours / bare |"]
    rows.append("| --- | --- | --- | --- |")
    for key, label in (("cpu_us", "Redis CPU, us"), ("commands", "commands"), ("bytes", "bytes")):
        a, b = median(ours, key), median(bare, key)
        rows.append(f"| {label} | {a:,.1f} | {b:,.1f} | {a / b:.2f}x |")
    a, b = median(ours, "cpu_us"), median(bare, "cpu_us")
    rows.append(f"| ceiling, tasks/s per Redis core | {1e6 / a:,.0f} | {1e6 / b:,.0f} | |")
    rows += ["", "| command (ours, median round) | calls per task | Redis us per task |"]
    rows.append("| --- | --- | --- |")
    middle = sorted(ours, key=lambda f: f["cpu_us"])[len(ours) // 2]
    top = sorted(middle["by_command"].items(), key=lambda kv: -kv[1][1])[:10]
    rows += [f"| {name} | {calls:.2f} | {usec:.1f} |" for name, (calls, usec) in top]
    rows += ["", "| command (bare, median round) | calls per task | Redis us per task |"]
    rows.append("| --- | --- | --- |")
    middle = sorted(bare, key=lambda f: f["cpu_us"])[len(bare) // 2]
    top = sorted(middle["by_command"].items(), key=lambda kv: -kv[1][1])[:10]
    rows += [f"| {name} | {calls:.2f} | {usec:.1f} |" for name, (calls, usec) in top]
    return "\n".join(rows)


def run(tasks: int, rounds: int) -> dict[str, Any]:
    """Every figure, on a throwaway stack of its own."""
    with tempfile.TemporaryDirectory() as workdir:
        stack = make_stack(Path(workdir))
        try:
            stack.start_redis()
            os.environ["BENCH_BARE_BACKEND"] = stack.redis_url  # before bench.bare_app loads
            r = redis_client(stack)
            stack.start_api()
            return measure(stack, r, tasks, rounds)
        finally:
            stack.stop_all(timeout=15)


def in_subprocess(tasks: int, rounds: int) -> dict[str, Any]:
    """`run` in a process of its own (`python -m bench` has loaded bench.bare_app without a
    result backend)."""
    argv = [sys.executable, "-m", "bench.redis_cost", "--tasks", str(tasks),
            "--rounds", str(rounds), "--json"]  # fmt: skip
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=900)
    if done.returncode:
        raise RuntimeError(f"bench.redis_cost failed:\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="the figures as JSON, no table")
    options = parser.parse_args()
    began = time.monotonic()
    res = run(options.tasks, options.rounds)
    if options.json:
        print(json.dumps(res))
        return
    print(report(res))
    print(f"\n{options.rounds} rounds of {options.tasks:,} tasks each, "
          f"{time.monotonic() - began:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
