"""Live updates and pickup (issue 18): what open event streams cost the API and Redis, how soon
a change reaches a watcher, and how soon a worker starts a submitted task.

- Idle watchers: N streams (`GET /tasks/{id}/events` over tasks waiting for a countdown) held
  open; the API's RSS and Redis's commands per second over a quiet window.
- Busy watchers: streams on tasks a worker is running, each task reporting progress every
  second; the delay from the Lua script's publish (`at`, Redis's clock) to the stream's line
  reaching the client, for every change after a stream's first view.
- Pickup: submit accepted (the submit script's publish) to STARTED (the start script's), with
  an idle worker, and with a backlog queued ahead of the probe: probes of the top priority, and
  one of the backlog's own priority (it waits for the backlog to drain).

The load generator is raw asyncio connections in this process: loopback only, its count and
time bounded by the arguments. `python -m bench.live` runs all three on a throwaway stack;
`python -m bench` runs them as its last phase.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import redis

from bench import client
from bench.env import make_stack, redis_client, stop
from bench.stats import percentile
from contracts import records
from contracts.catalogue import PRIORITY_MAX
from devstack.processes import Process, Stack, wait_until

CONNECT_BATCH = 50  # streams started at once (200 at once meet the API's Redis pool limit)
PROGRESS_PER_SECOND = 1  # the sleep task's reports, one a second


@dataclass(frozen=True)
class Sizes:
    idle_watchers: int = 10_000
    idle_tasks: int = 1_000
    quiet_seconds: float = 10.0
    busy_watchers: int = 1_000
    changes_per_second: int = 200  # as many running sleep tasks, each reporting once a second
    busy_seconds: float = 15.0
    probes: int = 200
    backlog: int = 10_000


QUICK = Sizes(
    idle_watchers=2_000,
    idle_tasks=200,
    quiet_seconds=5,
    busy_watchers=200,
    changes_per_second=50,
    busy_seconds=5,
    probes=50,
    backlog=2_000,
)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class Stream:
    """One `text/event-stream` connection, noting when each event's line arrived."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.arrivals: list[tuple[str, float]] = []  # (event id, time.time()) after the first
        self.noting: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, port: int, path: str) -> Stream:
        """A stream whose first event (the current view) has arrived."""
        reader, writer = await asyncio.open_connection(client.HOST, port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {client.HOST}\r\n\r\n".encode())
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"stream refused: {status!r} {await reader.read(2000)!r}")
        while not (await reader.readline()).startswith(b"data:"):
            pass
        return cls(reader, writer)

    async def note_events(self) -> None:
        """Until closed: each event's id and arrival (chunked framing lines are skipped)."""
        event_id = ""
        while line := await self.reader.readline():
            if line.startswith(b"id: "):
                event_id = line[4:].strip().decode()
            elif line.startswith(b"data:") and event_id:
                self.arrivals.append((event_id, time.time()))
                event_id = ""

    def close(self) -> None:
        if self.noting is not None:
            self.noting.cancel()
        self.writer.close()


async def open_streams(port: int, paths: list[str], note_events: bool = False) -> list[Stream]:
    """Streams on `paths`, each noting its events from its opening on if `note_events`."""
    streams: list[Stream] = []
    for start in range(0, len(paths), CONNECT_BATCH):
        batch = paths[start : start + CONNECT_BATCH]
        opened = await asyncio.gather(*(Stream.open(port, path) for path in batch))
        if note_events:
            for stream in opened:
                stream.noting = asyncio.create_task(stream.note_events())
        streams += opened
    return streams


class Publications:
    """The record changes the scripts publish, as the API's subscription sees them: the publish
    time (us) by (task id, version), and by task the time of its first change into a state.
    Keeps the listening flag set, so the scripts publish with no stream open."""

    def __init__(self, r: redis.Redis) -> None:
        self.r = r
        self.at: dict[tuple[str, int], int] = {}
        self.entered: dict[tuple[str, str], int] = {}  # (task id, state) -> us
        self._pubsub = r.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Publications:
        self._pubsub.subscribe(records.EVENTS_CHANNEL)
        self.r.set(records.EVENTS_LISTENING, 1, ex=35)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._pubsub.close()

    def _run(self) -> None:
        renewed = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - renewed > 10:
                self.r.set(records.EVENTS_LISTENING, 1, ex=35)
                renewed = time.monotonic()
            message = self._pubsub.get_message(timeout=0.2)
            if message is None:
                continue
            change = orjson.loads(message["data"])
            at = int(change["at"])
            self.at[(change["id"], int(change["version"]))] = at
            self.entered.setdefault((change["id"], change["record"][records.Field.STATE]), at)

    def pickup_ms(self, task_id: str) -> float | None:
        submitted = self.entered.get((task_id, records.State.PENDING))
        started = self.entered.get((task_id, records.State.STARTED))
        return None if submitted is None or started is None else (started - submitted) / 1000


def _submit(port: int, body: dict[str, Any]) -> str:
    status, answer = client.one(port, "POST", "/tasks", orjson.dumps(body))
    if status != 202:
        raise RuntimeError(f"submit answered {status}: {answer!r}")
    task_id: str = orjson.loads(answer)["task_id"]
    return task_id


def _queued(r: redis.Redis) -> int:
    return sum(int(r.llen(key)) for key in records.queue_lists("default"))


def _summary(samples: list[float]) -> dict[str, float]:
    return {
        "count": len(samples),
        "p50": percentile(samples, 50),
        "p99": percentile(samples, 99),
        "max": max(samples),
    }


def idle_watchers(stack: Stack, api: Process, r: redis.Redis, sizes: Sizes) -> dict[str, Any]:
    later = {"name": "sleep", "args": {"seconds": 0}, "countdown": 3600}
    ids = [_submit(stack.api_port, later) for _ in range(sizes.idle_tasks)]
    time.sleep(2)  # the API settles after the submits (its catalogue refresh and all)
    idle = rss_mib(api.pid)
    paths = [f"/tasks/{ids[n % len(ids)]}/events" for n in range(sizes.idle_watchers)]

    async def measure() -> dict[str, Any]:
        opened = time.monotonic()
        streams = await open_streams(stack.api_port, paths)
        opened = time.monotonic() - opened
        await asyncio.sleep(1)
        before = int(r.info("stats")["total_commands_processed"])
        await asyncio.sleep(sizes.quiet_seconds)
        commands = int(r.info("stats")["total_commands_processed"]) - before - 1  # the INFO
        watching = rss_mib(api.pid)
        for stream in streams:
            stream.close()
        return {
            "watchers": len(streams),
            "tasks": len(ids),
            "opened_s": opened,
            "rss_idle_mib": idle,
            "rss_watching_mib": watching,
            "kib_per_watcher": (watching - idle) * 1024 / len(streams),
            "redis_commands_per_s": commands / sizes.quiet_seconds,
        }

    return asyncio.run(measure())


def busy_watchers(stack: Stack, r: redis.Redis, sizes: Sizes) -> dict[str, Any]:
    """Needs a worker that runs `changes_per_second` tasks at once."""
    seconds = sizes.busy_seconds + 30  # the tasks outlast the window and the streams' opening
    running = {"name": "sleep", "args": {"seconds": seconds}}
    ids = [_submit(stack.api_port, running) for _ in range(sizes.changes_per_second)]
    started = records.state_index(records.State.STARTED)
    wait_until(lambda: r.zcard(started) >= len(ids), 60, "every busy task to start")
    paths = [f"/tasks/{ids[n % len(ids)]}/events" for n in range(sizes.busy_watchers)]
    with Publications(r) as published:

        async def measure() -> list[Stream]:
            streams = await open_streams(stack.api_port, paths, note_events=True)
            await asyncio.sleep(1)  # the first streams' notes wait while the last ones open
            window = time.time(), time.time() + sizes.busy_seconds
            await asyncio.sleep(sizes.busy_seconds)
            for stream in streams:
                stream.close()
                stream.arrivals = [a for a in stream.arrivals if window[0] <= a[1] < window[1]]
            return streams

        streams = asyncio.run(measure())
        time.sleep(0.5)  # the subscriber thread reads the last publications
    delays, unmatched = [], 0
    for stream in streams:
        for event_id, arrived in stream.arrivals:
            task_id, _, version = event_id.rpartition(":")
            at = published.at.get((task_id, int(version)))
            if at is None:
                unmatched += 1
            else:
                delays.append(arrived * 1000 - at / 1000)
    for task_id in ids:  # cancelled, they stop at their next report
        client.one(stack.api_port, "DELETE", f"/tasks/{task_id}")
    return {
        "watchers": len(streams),
        "tasks": len(ids),
        "seconds": sizes.busy_seconds,
        "events": len(delays),
        "events_per_s": len(delays) / sizes.busy_seconds,
        "unmatched": unmatched,
        "delay_ms": _summary(delays),
    }


def pickup(
    stack: Stack, r: redis.Redis, sizes: Sizes, start_worker: Callable[[], Process]
) -> dict[str, Any]:
    """Probes with the worker idle, then behind a backlog the worker did not see coming."""
    probe = {"name": "sleep", "args": {"seconds": 0}}
    top = {**probe, "priority": PRIORITY_MAX}
    results: dict[str, Any] = {}
    with Publications(r) as published:
        worker = start_worker()

        def probe_once(body: dict[str, Any]) -> float:
            task_id = _submit(stack.api_port, body)
            wait_until(lambda: published.pickup_ms(task_id) is not None, 60, "a probe to start")
            return published.pickup_ms(task_id) or 0.0

        results["idle"] = _summary([probe_once(probe) for _ in range(sizes.probes)])
        stop(stack, worker)
        statuses = client.post_many(stack.api_port, "/tasks", orjson.dumps(probe), sizes.backlog)
        if statuses.get(202) != sizes.backlog:
            raise RuntimeError(f"backlog submits answered {dict(statuses)}")
        last = _submit(stack.api_port, probe)  # behind the whole backlog
        worker = start_worker()
        queued = [_queued(r)]
        behind = [probe_once(top) for _ in range(sizes.probes)]
        queued.append(_queued(r))
        results["backlog"] = {
            "size": sizes.backlog,
            "queued_while_probing": queued,
            "top_priority": _summary(behind),
        }
        wait_until(lambda: published.pickup_ms(last) is not None, 300, "the backlog to drain")
        results["backlog"]["same_priority_ms"] = published.pickup_ms(last)
        stop(stack, worker)
    return results


def measure(stack: Stack, r: redis.Redis, sizes: Sizes) -> dict[str, Any]:
    """Every figure, on a fresh API process (so the RSS is the streams' own) and a Redis
    holding nothing else."""
    r.flushall()
    api = stack.start_api(KUBETASKS_EVENTS_MAX_STREAMS=str(sizes.idle_watchers))
    results = {"idle": idle_watchers(stack, api, r, sizes)}
    threads = stack.start_worker(
        "live-threads", pool="threads", concurrency=sizes.changes_per_second
    )
    results["busy"] = busy_watchers(stack, r, sizes)
    stop(stack, threads)
    results["pickup"] = pickup(stack, r, sizes, lambda: stack.start_worker("live", concurrency=2))
    stop(stack, api)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the smaller sizes of bench --quick")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        stack = make_stack(Path(workdir))
        try:
            stack.start_redis()
            r = redis_client(stack)
            print(orjson.dumps(measure(stack, r, QUICK if options.quick else Sizes()),
                               option=orjson.OPT_INDENT_2).decode())  # fmt: skip
        finally:
            stack.stop_all(timeout=15)


if __name__ == "__main__":
    main()
