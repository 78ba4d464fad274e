"""What publishing record changes costs the scripts of a task's life: Redis's own time (its
`cmdstat_evalsha` microseconds) for submit.lua, start.lua and finish.lua per task, on a throwaway
redis-server, in alternating rounds: this tree's scripts with nobody listening, the same with a
listener (the flag set and a subscriber reading), and, with `--against TREE`, another checkout's
scripts (the code before a change). Median of the rounds.

    python -m bench.record_changes [--against ../before] [--tasks 3000] [--rounds 6]
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import redis

from devstack.processes import free_port, redis_server_binary

Modules = tuple[ModuleType, ModuleType, ModuleType]  # contracts.scripts, .records, .messages


def contracts_of(tree: Path | None) -> Modules:
    """The contracts modules of `tree` (None: this one), imported afresh."""
    for name in [m for m in sys.modules if m == "contracts" or m.startswith("contracts.")]:
        del sys.modules[name]
    if tree is not None:
        sys.path.insert(0, str(tree))
    try:
        return tuple(  # type: ignore[return-value]
            importlib.import_module(f"contracts.{m}") for m in ("scripts", "records", "messages")
        )
    finally:
        if tree is not None:
            sys.path.remove(str(tree))


def task_lives(client: redis.Redis, contracts: Modules, tasks: int) -> float:
    """Redis's microseconds in scripts per task: submit, start, finish of `tasks` tasks."""
    scripts, records, messages = contracts
    submit, start, finish = (
        client.register_script(script.source)
        for script in (scripts.SUBMIT, scripts.START, scripts.FINISH)
    )
    client.config_resetstat()
    for _ in range(tasks):
        task_id = uuid.uuid4().hex
        record = records.record_key(task_id)
        queue_list, message = messages.build_message(
            "sleep", task_id, {"seconds": 0}, queue="default", priority=0, retries=0,
            published_at_ms=1, version=None,
        )  # fmt: skip
        keys, args = scripts.SUBMIT.bind(
            record=record, lists=records.queue_lists("default"), id=task_id, name="sleep",
            queue="default", priority=0, args="{}", now=1, idem="", idem_ttl=60,
            list=queue_list, message=message, due=0, max_backlog=10**9, schedule="",
        )  # fmt: skip
        submit(keys=keys, args=args)
        keys, args = scripts.START.bind(
            record=record, id=task_id, tag="t", now=2, lease_until=10**13, max_deliveries=3,
            worker="w", dead_ttl=100, pid=1, token=task_id,
        )  # fmt: skip
        start(keys=keys, args=args)
        keys, args = scripts.FINISH.bind(
            record=record, id=task_id, tag="t", state="SUCCESS", now=3, ttl=60,
            result="true", error_type="", error_message="", traceback="",
        )  # fmt: skip
        finish(keys=keys, args=args)
    stats = client.info("commandstats")
    used = sum(v["usec"] for k, v in stats.items() if k.startswith("cmdstat_evalsha"))
    client.flushall()
    return float(used) / tasks


def listening(client: redis.Redis, records: ModuleType) -> Callable[[], None]:
    """A subscriber reading every change, and the flag that tells the scripts it listens;
    returns the function that stops it."""
    stop = threading.Event()
    pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    pubsub.subscribe(records.EVENTS_CHANNEL)

    def read() -> None:
        while not stop.is_set():
            pubsub.get_message(timeout=0.2)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    client.set(records.EVENTS_LISTENING, 1)

    def stopped() -> None:
        client.delete(records.EVENTS_LISTENING)
        stop.set()
        reader.join()
        pubsub.close()

    return stopped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", type=Path, help="another checkout, e.g. before a change")
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=6)
    options = parser.parse_args()
    port = free_port()
    server = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        ours = contracts_of(None)
        variants: dict[str, Callable[[], float]] = {
            "this tree, nobody listening": lambda: task_lives(client, ours, options.tasks),
        }

        def with_listener() -> float:
            stop = listening(client, ours[1])
            try:
                return task_lives(client, ours, options.tasks)
            finally:
                stop()

        variants["this tree, one listener"] = with_listener
        if options.against:
            theirs = contracts_of(options.against)
            variants[f"{options.against}"] = lambda: task_lives(client, theirs, options.tasks)
        figures: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for n in range(options.rounds):
            for name in names if n % 2 == 0 else names[::-1]:
                figures[name].append(variants[name]())
        print("| scripts | Redis us per task (submit + start + finish), median (min-max) |")
        print("| --- | --- |")
        for name, values in figures.items():
            print(
                f"| {name} | {statistics.median(values):.1f} "
                f"({min(values):.1f}-{max(values):.1f}) |"
            )
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
