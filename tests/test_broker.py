"""worker.broker: a task's finish acknowledges its message, and the main process's ack of a
settled message makes no round trip of its own (a real Redis and kombu's real Redis channel)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis
from kombu.connection import Connection
from kombu.entity import Queue
from kombu.messaging import Consumer

from contracts.catalogue import TASKS
from contracts.messages import build_message
from contracts.records import State
from contracts.settings import Settings
from devstack.processes import Stack
from tests.helpers import ApiClient, wait_for
from worker.records import WorkerRecords


def _transactions(r: redis.Redis) -> int:
    """MULTI/EXEC blocks Redis ran so far: kombu wraps each of its acks in one."""
    return int(r.info("commandstats").get("cmdstat_exec", {}).get("calls", 0))


@contextmanager
def _delivered(stack: Stack, r: redis.Redis, count: int) -> Iterator[tuple[Any, list[Any]]]:
    """Deliver `count` queued sleep tasks through the worker's transport, unacknowledged."""
    spec = TASKS["sleep"]
    for i in range(count):
        queue_list, payload = build_message(
            spec, f"task-{i}", {"seconds": 0}, queue=spec.queue, priority=0, retries=0,
            published_at_ms=0,
        )  # fmt: skip
        r.lpush(queue_list, payload)
    received: list[Any] = []  # kombu messages
    transport = "worker.broker:Transport"
    with Connection(stack.redis_url, transport=transport) as conn:  # type: ignore[no-untyped-call]
        channel = conn.channel()
        queue = Queue(spec.queue, routing_key=spec.queue)  # type: ignore[no-untyped-call]
        on_message = [lambda _, m: received.append(m)]
        with Consumer(channel, [queue], callbacks=on_message):  # type: ignore[no-untyped-call]
            while len(received) < count:
                conn.drain_events(timeout=5)
            yield channel, received


def test_finish_acknowledges_and_the_settled_ack_makes_no_round_trip(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    stack.start_redis()
    r = redis.Redis.from_url(stack.redis_url)
    records = WorkerRecords(Settings(redis_url=stack.redis_url))
    with _delivered(stack, r, 2) as (channel, (finished, other)):
        assert r.hlen("unacked") == 2 and r.zcard("unacked_index") == 2

        # No record for the task (a cancelled one would be the same): its message is still done.
        outcome = records.finish(
            finished.headers["id"], "", State.SUCCESS, delivery_tag=finished.delivery_tag
        )
        assert outcome == "missing"
        assert r.hkeys("unacked") == [other.delivery_tag.encode()]
        assert r.zrange("unacked_index", 0, -1) == [other.delivery_tag.encode()]

        channel.qos.settled(finished.delivery_tag)
        before = _transactions(r)
        finished.ack()
        assert _transactions(r) == before  # local bookkeeping only
        assert finished.acknowledged

        other.ack()  # not settled: kombu's own ack
        assert _transactions(r) == before + 1
        assert r.hlen("unacked") == 0 and r.zcard("unacked_index") == 0


def test_the_worker_acknowledges_a_successful_task_in_its_finish(
    stack: Stack, api: ApiClient
) -> None:
    """A real worker: its main process runs one transaction per task (kombu recording the
    delivery as unacknowledged), not a second one for the ack."""
    r = redis.Redis.from_url(stack.redis_url)
    api.wait_task(api.submit("sleep", {"seconds": 0}))
    before, n = _transactions(r), 20
    for task_id in [api.submit("sleep", {"seconds": 0}) for _ in range(n)]:
        assert api.wait_task(task_id)["state"] == "SUCCESS"
    spent = _transactions(r) - before
    assert n <= spent < n * 3 // 2
    assert r.hlen("unacked") == 0


def test_every_other_ending_leaves_no_message_unacknowledged(stack: Stack, api: ApiClient) -> None:
    """Failures and cancels are acknowledged too (by finish.lua, or by kombu after Ignore)."""
    r = redis.Redis.from_url(stack.redis_url)
    bad_image = base64.b64encode(b"not an image").decode()
    failed = api.wait_task(api.submit("thumbnail", {"image_base64": bad_image}))
    assert failed["state"] == "FAILURE"
    running = api.submit("sleep", {"seconds": 20})
    api.wait_task(running, lambda t: t["state"] == "STARTED")
    assert api.delete(f"/tasks/{running}").status_code == 200
    wait_for(lambda: r.hlen("unacked") == 0, 10, "the cancelled task's message to be acknowledged")
    assert r.zcard("unacked_index") == 0
