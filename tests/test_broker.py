"""worker.broker: a waiting message is fetched and recorded as unacknowledged in one step, a
task's finish acknowledges its message, and the main process's ack of a settled message makes no
round trip of its own (a real Redis and kombu's real Redis channel)."""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from kombu.connection import Connection
from kombu.entity import Queue
from kombu.messaging import Consumer

from contracts.messages import build_message
from contracts.records import State, queue_lists
from contracts.settings import Settings
from devstack.processes import Stack
from tests.helpers import ApiClient, wait_for
from worker.catalogue import specs
from worker.records import WorkerRecords

TASKS = specs()


def _calls(r: redis.Redis, command: str) -> int:
    return int(r.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


def _transactions(r: redis.Redis) -> int:
    """MULTI/EXEC blocks Redis ran so far: kombu wraps each of its acks in one."""
    return _calls(r, "exec")


@pytest.fixture
def redis_only(make_stack: Callable[..., Stack]) -> tuple[Stack, redis.Redis]:
    """A stack with only its Redis running, and a client for it."""
    stack = make_stack()
    stack.start_redis()
    return stack, redis.Redis.from_url(stack.redis_url)


@contextmanager
def _monitored(r: redis.Redis) -> Iterator[list[str]]:
    """The commands other clients send while the block runs, from Redis's MONITOR (commands
    that scripts run are left out: MONITOR marks them as Lua's)."""
    sent: list[str] = []
    done = threading.Event()

    def watch() -> None:
        with r.monitor() as monitor:  # type: ignore[no-untyped-call]
            ready.set()
            for command in monitor.listen():
                if command["command"] == "ECHO end-of-monitoring":
                    break
                if command["client_type"] != "lua":
                    sent.append(command["command"])
        done.set()

    ready = threading.Event()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    ready.wait(5)
    yield sent
    r.echo("end-of-monitoring")
    assert done.wait(5)


def _queue(r: redis.Redis, count: int, first: int = 0) -> list[tuple[str, bytes]]:
    """LPUSH `count` sleep task messages; returns their (list, payload)."""
    spec = TASKS["sleep"]
    queued = []
    for i in range(first, first + count):
        queue_list, payload = build_message(
            spec.name, f"task-{i}", {"seconds": 0}, queue=spec.queue, priority=0, retries=0,
            published_at_ms=0, version=spec.version,
        )  # fmt: skip
        r.lpush(queue_list, payload)
        queued.append((queue_list, payload))
    return queued


class _Consumer:
    """kombu's real consumer on the worker's transport, acknowledging nothing by itself."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.channel = conn.channel()  # type: ignore[no-untyped-call]
        self.received: list[Any] = []  # kombu messages

    def receive(self, count: int) -> list[Any]:
        wanted = len(self.received) + count
        while len(self.received) < wanted:
            self.conn.drain_events(timeout=5)  # type: ignore[no-untyped-call]
        return self.received[-count:]


@contextmanager
def _consumer(stack: Stack, *, no_ack: bool = False) -> Iterator[_Consumer]:
    queue_name = TASKS["sleep"].queue
    transport = "worker.broker:Transport"
    with Connection(stack.redis_url, transport=transport) as conn:  # type: ignore[no-untyped-call]
        consumer = _Consumer(conn)
        queue = Queue(queue_name, routing_key=queue_name)  # type: ignore[no-untyped-call]
        on_message = [lambda _, m: consumer.received.append(m)]
        with Consumer(consumer.channel, [queue], callbacks=on_message, no_ack=no_ack):  # type: ignore[no-untyped-call]
            yield consumer


def _queue_altered(r: redis.Redis, alter: Callable[[dict[str, Any]], object]) -> str:
    """Queue one sleep task message, changed by `alter` first; returns its list."""
    ((queue_list, payload),) = _queue(r, 1)
    envelope = json.loads(payload)
    alter(envelope)
    r.delete(queue_list)
    r.lpush(queue_list, json.dumps(envelope))
    return queue_list


@contextmanager
def _delivered(stack: Stack, r: redis.Redis, count: int) -> Iterator[tuple[Any, list[Any]]]:
    """Deliver `count` queued sleep tasks through the worker's transport, unacknowledged."""
    _queue(r, count)
    with _consumer(stack) as consumer:
        yield consumer.channel, consumer.receive(count)


def test_a_waiting_message_is_fetched_and_recorded_in_one_step(
    redis_only: tuple[Stack, redis.Redis],
) -> None:
    stack, r = redis_only
    queued = _queue(r, 3)
    with _consumer(stack) as consumer:
        with _monitored(r) as sent:
            fetched_from = time.time()
            messages = consumer.receive(3)
        # What was sent (not what scripts ran): the fetch script, once per message (once more
        # for its NOSCRIPT, and maybe once more to find the lists empty); no RPOP, HSET or ZADD
        # of its own, no kombu MULTI, no BRPOP while messages were waiting.
        setup = {"HELLO", "CLIENT", "SELECT", "PING", "SCRIPT", "ECHO"}
        commands = [c.split(" ", 1)[0].strip('"').upper() for c in sent]
        fetches = [c for c in commands if c not in setup]
        assert set(fetches) == {"EVALSHA"} and 3 <= len(fetches) <= 5, commands
        assert r.llen(queued[0][0]) == 0
        for message, (_, payload) in zip(messages, queued, strict=True):
            # kombu's layout, so that its restore (and the reaper) read it back
            recorded: bytes = r.hget("unacked", message.delivery_tag)  # type: ignore[assignment]
            assert json.loads(recorded) == [json.loads(payload), "", TASKS["sleep"].queue]
            score = r.zscore("unacked_index", message.delivery_tag)
            assert score is not None and fetched_from - 1 <= score <= time.time() + 1

        first = messages[0]
        first.reject(requeue=True)  # kombu's own restore of what fetch.lua recorded
        requeued: bytes = r.lindex(queued[0][0], 0)  # type: ignore[assignment]
        restored = json.loads(requeued)
        assert restored["headers"]["id"] == first.headers["id"]
        assert restored["properties"]["delivery_info"]["redelivered"] is True
        assert not r.hexists("unacked", first.delivery_tag)


def test_an_empty_queue_is_waited_on_in_brpop_and_kombu_records_what_it_fetches(
    redis_only: tuple[Stack, redis.Redis],
) -> None:
    stack, r = redis_only
    with _consumer(stack) as consumer:
        with pytest.raises(TimeoutError):
            consumer.conn.drain_events(timeout=0.5)  # type: ignore[no-untyped-call]
        assert _calls(r, "brpop") >= 1

        before = _transactions(r)
        _queue(r, 1)
        (woken,) = consumer.receive(1)
        assert _transactions(r) == before + 1  # kombu's MULTI after BRPOP
        assert r.hexists("unacked", woken.delivery_tag)

        r.script_flush()  # as a restarted Redis would have: fetch.lua is loaded again
        _queue(r, 2, first=1)
        for message in consumer.receive(2):
            assert r.hexists("unacked", message.delivery_tag)
        assert _transactions(r) == before + 1


def test_the_record_names_the_routing_key_as_python_would_write_it(
    redis_only: tuple[Stack, redis.Redis],
) -> None:
    """queue_stats.lua reads a record's routing key as text; cjson alone would write "a\\/b"."""
    stack, r = redis_only
    _queue_altered(r, lambda m: m["properties"]["delivery_info"].update(routing_key="team/default"))
    with _consumer(stack) as consumer:
        (message,) = consumer.receive(1)
        recorded: bytes = r.hget("unacked", message.delivery_tag)  # type: ignore[assignment]
        assert recorded.endswith(b',"","team/default"]')


def test_a_queue_consumed_without_acknowledgement_gets_no_record(
    redis_only: tuple[Stack, redis.Redis],
) -> None:
    """Celery's gossip and mingle consume so; a record would come back after the visibility
    timeout as a second delivery, and nothing would ever remove it."""
    stack, r = redis_only
    _queue(r, 2)
    with _consumer(stack, no_ack=True) as consumer:
        consumer.receive(2)
        assert r.hlen("unacked") == 0 and r.zcard("unacked_index") == 0


def test_an_unreadable_message_is_dropped_as_kombu_would(
    redis_only: tuple[Stack, redis.Redis],
) -> None:
    """fetch.lua recorded it, but kombu failed to read it before taking it over: no record is
    left to bring it back (and fail again) after every visibility timeout."""
    stack, r = redis_only
    queue_list = _queue_altered(r, lambda m: m.update(body="abc"))  # not base64
    with _consumer(stack) as consumer, pytest.raises(binascii.Error):
        consumer.receive(1)
    assert r.hlen("unacked") == 0 and r.zcard("unacked_index") == 0
    assert r.llen(queue_list) == 0


def test_a_message_fetch_lua_cannot_read_is_left_to_kombu(
    redis_only: tuple[Stack, redis.Redis],
) -> None:
    stack, r = redis_only
    # kombu takes any tag; fetch.lua only strings
    _queue_altered(r, lambda m: m["properties"].update(delivery_tag=7))
    with _consumer(stack) as consumer:
        before = _transactions(r)
        (message,) = consumer.receive(1)
        assert message.delivery_tag == 7
        assert _transactions(r) == before + 1
        assert r.hexists("unacked", "7")


def test_finish_acknowledges_and_the_settled_ack_makes_no_round_trip(
    redis_only: tuple[Stack, redis.Redis],
) -> None:
    stack, r = redis_only
    records = WorkerRecords(Settings(redis_url=stack.redis_url))
    with _delivered(stack, r, 2) as (channel, (finished, other)):
        assert r.hlen("unacked") == 2 and r.zcard("unacked_index") == 2

        # No record for the task (a cancelled one would be the same): its message is still done.
        outcome = records.finish(finished.headers["id"], finished.delivery_tag, State.SUCCESS)
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


def test_a_worker_runs_tasks_with_at_most_one_transaction_each(
    make_stack: Callable[..., Stack],
) -> None:
    """A real worker. Started on a backlog: fetch.lua records each delivery and finish.lua
    acknowledges it, where kombu would run two MULTI/EXEC per task. Idle, then one task at a
    time: each wakes its BRPOP and kombu records it (one MULTI), and the ack is still none."""
    stack = make_stack()
    stack.start_redis()
    stack.start_api()
    r = redis.Redis.from_url(stack.redis_url)
    with ApiClient(base_url=stack.api_url, timeout=10) as api:
        n = 40
        task_ids = [api.submit("sleep", {"seconds": 0}) for _ in range(n)]
        before = _transactions(r)
        stack.start_worker()
        for task_id in task_ids:
            assert api.wait_task(task_id)["state"] == "SUCCESS"
        assert _transactions(r) - before < n // 4

        before, one_by_one = _transactions(r), 5
        for _ in range(one_by_one):
            assert api.wait_task(api.submit("sleep", {"seconds": 0}))["state"] == "SUCCESS"
        assert one_by_one <= _transactions(r) - before < one_by_one + 3
    assert r.hlen("unacked") == 0 and r.zcard("unacked_index") == 0


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


def test_every_unacknowledged_message_has_an_inflight_entry_until_it_leaves(
    redis_only: tuple[Stack, redis.Redis],
) -> None:
    """The entries let /queues, the metrics and the reaper count in-flight work without reading
    messages; kombu's own MULTI path (an idle worker woken) keeps them as fetch.lua does, and
    every way a message leaves `unacked` drops its entry."""
    stack, r = redis_only
    _queue(r, 2)  # a backlog: fetch.lua
    with _consumer(stack) as consumer:
        fetched = consumer.receive(2)
        with pytest.raises(TimeoutError):
            consumer.conn.drain_events(timeout=0.3)  # type: ignore[no-untyped-call]
        _queue(r, 1, first=2)  # wakes the BRPOP: kombu's MULTI
        woken = consumer.receive(1)
        for message in [*fetched, *woken]:
            entry = r.hget("kt:inflight", message.delivery_tag)
            # no worker named: this consumer is not a worker (restore_dead.lua leaves it)
            assert entry == f"default  {message.headers['id']}".encode()
        acked, rejected, requeued = [*fetched, *woken]
        acked.ack()
        rejected.reject(requeue=False)
        requeued.reject(requeue=True)
        assert r.hlen("kt:inflight") == 0 and r.hlen("unacked") == 0
        back = sum(int(r.llen(key)) for key in queue_lists(TASKS["sleep"].queue))
        assert back == 1  # the requeued one
