"""The acknowledgement protocol, in one place: how a message is fetched, recorded as
unacknowledged and acknowledged.

kombu emulates acknowledgement in Redis: the worker's main process fetches a message (BRPOP),
records it in the `unacked` hash (a MULTI), and removes it from there when the task is done
(another MULTI). All three block the loop that fetches the next message, which with prefetch 1
sets the worker's pace. This module's transport (a subclass of kombu's Redis transport, selected
by the app's configuration in every process of the app) keeps kombu's layout and its restore,
and adds:

- Fetch and record in one step: while messages are waiting, `fetch.lua` pops one and records it
  (which also leaves no moment when a fetched message is in neither the queue nor `unacked`).
  When it finds every list empty, the channel blocks in kombu's BRPOP until the next message,
  recorded by kombu's MULTI as before.
- In-flight entries: every record of an unacknowledged message gets a small entry in
  `kt:inflight` (queue and task id) beside it, and loses it with it, so that the metrics and the
  orphan reaper never read the messages themselves.
- Acknowledge in the finish: a task's `finish.lua` removes its message from `unacked` in the
  same call that ends the record. For a task that succeeded, `SettledOnSuccess` then tells the
  channel, whose ack stays local: no round trip. Every other ending is acknowledged by kombu.

Fetch and local ack are "the fast path"; `KUBETASKS_WORKER_FAST_PATH=false` turns both off (kombu's
BRPOP and MULTI acks, same behaviour, more round trips), and an ack the fast path cannot vouch for
is always kombu's own. The transport overrides private parts of kombu (`OVERRIDDEN`), so the
kombu series is pinned (`KOMBU_SERIES`, requirements/worker.in), checked at import, and the worker
refuses to consume through any other transport (`TransportCheck`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from queue import Empty
from time import monotonic, time
from typing import Any

import kombu
from celery import bootsteps
from celery.app.amqp import AMQP as CeleryAMQP
from celery.worker.request import Request
from kombu.connection import Connection as KombuConnection
from kombu.connection import resolve_aliases
from kombu.transport import redis
from kombu.transport.virtual.base import QoS as VirtualQoS
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads
from redis.exceptions import NoScriptError

from contracts import records, scripts

log = logging.getLogger(__name__)

TRANSPORT = "worker.broker:Transport"
# The kombu series this module was written and tested against (tests/test_broker.py); the
# same pin, with the reason, is in requirements/worker.in.
KOMBU_SERIES = "5.7"
OVERRIDDEN = {
    redis.Channel: ("_brpop_start", "_brpop_read", "_q_for_pri", "_flush_brpop_reauth",
                    "basic_consume", "from_transport_options", "priority_steps"),
    redis.QoS: ("append", "ack", "_remove_from_indices", "pipe_or_acquire"),
    VirtualQoS: ("append", "ack"),
}  # fmt: skip
# Where finish.lua and fetch.lua acknowledge and record: kombu's defaults (unacked_key,
# unacked_index_key, global_keyprefix).
UNACKED_KEYS = (records.UNACKED, records.UNACKED_INDEX, "")


class ConfigurationError(RuntimeError):
    pass


def check_kombu() -> None:
    """Refuse a kombu this module was not written for, before it misbehaves silently."""
    if not kombu.__version__.startswith(KOMBU_SERIES + "."):
        raise ConfigurationError(
            f"worker/broker.py overrides internals of kombu {KOMBU_SERIES}.x, found kombu "
            f"{kombu.__version__}: pin kombu=={KOMBU_SERIES}.* or port the transport"
        )
    missing = [
        f"{cls.__module__}.{cls.__name__}.{name}"
        for cls, names in OVERRIDDEN.items()
        for name in names
        if not hasattr(cls, name)
    ]
    if missing:
        raise ConfigurationError(
            f"kombu {kombu.__version__} lacks what worker/broker.py overrides: {missing}"
        )


check_kombu()


def check_transport_options(options: Mapping[str, Any]) -> None:
    """finish.lua and fetch.lua acknowledge and record in kombu's default keys."""
    keys = (
        options.get("unacked_key", redis.Channel.unacked_key),
        options.get("unacked_index_key", redis.Channel.unacked_index_key),
        options.get("global_keyprefix", ""),
    )
    if keys != UNACKED_KEYS:
        raise ConfigurationError(
            f"kombu would keep unacknowledged messages in {keys} (unacked_key, "
            f"unacked_index_key, global_keyprefix), but finish.lua acknowledges in "
            f"{UNACKED_KEYS}: every success would be redelivered"
        )


class QoS(redis.QoS):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._settled: set[str] = set()
        # Messages fetch.lua recorded, until kombu takes them over (append) or fails to.
        self.prerecorded: set[str] = set()

    def append(self, message: Any, delivery_tag: str) -> None:
        if delivery_tag in self.prerecorded:
            self.prerecorded.discard(delivery_tag)
            VirtualQoS.append(self, message, delivery_tag)  # type: ignore[no-untyped-call]
            return
        # kombu's own record (redis.QoS.append), with the in-flight entry in the same MULTI.
        info = message.delivery_info
        exchange, routing_key = info["exchange"], info["routing_key"]
        task_id = str(message.headers.get("id", ""))
        entry = records.inflight_entry(routing_key, self.channel.kt_worker, task_id)
        with self.pipe_or_acquire() as pipe:
            pipe.zadd(records.UNACKED_INDEX, {delivery_tag: time()})
            raw = dumps([message._raw, exchange, routing_key])  # type: ignore[no-untyped-call]
            pipe.hset(records.UNACKED, delivery_tag, raw)
            pipe.hset(records.INFLIGHT, delivery_tag, entry)
            pipe.execute()
        VirtualQoS.append(self, message, delivery_tag)  # type: ignore[no-untyped-call]

    def _remove_from_indices(self, delivery_tag: str, pipe: Any = None) -> Any:
        # Every removal kombu makes (ack, reject, restore) goes through here.
        with self.pipe_or_acquire(pipe) as pipe:
            return (
                pipe.zrem(records.UNACKED_INDEX, delivery_tag)
                .hdel(records.UNACKED, delivery_tag)
                .hdel(records.INFLIGHT, delivery_tag)
            )

    def forget(self, delivery_tag: str) -> None:
        """Drop a record that no consumer took over."""
        self.prerecorded.discard(delivery_tag)
        self._remove_from_indices(delivery_tag).execute()

    def settled(self, delivery_tag: str) -> None:
        """The message is already out of Redis's unacknowledged set: its ack stays local."""
        self._settled.add(delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        if delivery_tag in self._settled:
            self._settled.discard(delivery_tag)
            VirtualQoS.ack(self, delivery_tag)  # type: ignore[no-untyped-call]
        else:
            super().ack(delivery_tag)  # type: ignore[no-untyped-call]


class Channel(redis.Channel):
    QoS = QoS
    from_transport_options = (  # type: ignore[assignment]
        *redis.Channel.from_transport_options,
        "kt_fast_path",
        "kt_worker",
    )
    kt_fast_path = True  # KUBETASKS_WORKER_FAST_PATH, through the transport options
    kt_worker = ""  # the worker's hostname, set at worker_init (worker.app)
    _blocking = False  # the lists were empty at the last look: wait in BRPOP
    _sent = "BRPOP"  # the fetch command in flight (its reply is read by _brpop_read)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        # Queues consumed without acknowledgement (Celery's gossip, mingle's replies): kombu
        # records nothing for them, and neither may fetch.lua.
        self._unacknowledged: set[str] = set()

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        (self._unacknowledged.add if no_ack else self._unacknowledged.discard)(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)  # type: ignore[no-untyped-call]

    def _brpop_start(self, timeout: int | None = None) -> None:
        # kombu's own choice and order of lists (see super()._brpop_start);
        # check_transport_options rules out the global_keyprefix it would add.
        queues = self._queue_cycle.consume(len(self.active_queues))
        fetch = self.kt_fast_path and not self._blocking
        if not fetch or self._unacknowledged.intersection(queues):
            self._sent = "BRPOP"
            super()._brpop_start(timeout)  # type: ignore[no-untyped-call]
            return
        if not queues:
            return
        lists = [
            self._q_for_pri(queue, pri)  # type: ignore[no-untyped-call]
            for pri in self.priority_steps
            for queue in queues
        ]
        keys, args = scripts.FETCH.bind(lists=lists, now=time(), worker=self.kt_worker)
        self._sent = "EVALSHA"
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()  # type: ignore[assignment]
        self.client.connection.send_command("EVALSHA", scripts.FETCH.sha, len(keys), *keys, *args)

    def _brpop_read(self, **options: Any) -> bool:
        if self._sent == "BRPOP":
            # Raises Empty if it timed out: the lists are still empty.
            delivered: bool = super()._brpop_read(**options)  # type: ignore[no-untyped-call]
            self._blocking = False
            return delivered
        try:
            try:
                reply = self.client.parse_response(self.client.connection, "EVALSHA", **options)
            except NoScriptError:  # a restarted Redis: load it for the next fetch
                self.client.script_load(scripts.FETCH.source)
                raise Empty() from None
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if not reply:
                self._blocking = True
                raise Empty()
            queue_list, item, recorded = reply
            message = loads(bytes_to_str(item))  # type: ignore[no-untyped-call]
            dest = bytes_to_str(queue_list).rsplit(self.sep, 1)[0]  # type: ignore[no-untyped-call]
            self._queue_cycle.rotate(dest)
            qos: QoS = self.qos
            tag = message["properties"]["delivery_tag"] if recorded else None
            if tag is not None:
                qos.prerecorded.add(tag)
            try:
                self.connection._deliver(message, dest)
            except Exception:
                if tag in qos.prerecorded:
                    # It failed before kombu took it over (an unreadable message, say): kombu
                    # would have dropped it, not brought it back after the visibility timeout.
                    # (Had kombu's append come later instead, its own MULTI would record it.)
                    qos.forget(tag)
                raise
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]
            self._flush_brpop_reauth()  # type: ignore[no-untyped-call]


class Transport(redis.Transport):
    Channel = Channel


class Connection(KombuConnection):
    # URLs name the transport by scheme: this one is Redis's (the worker banner, Flower, which
    # picks its Redis client by the scheme of the app's broker URL).
    resolve_aliases = {**resolve_aliases, TRANSPORT: "redis"}


class AMQP(CeleryAMQP):  # type: ignore[misc]
    """Celery's AMQP helper (the app's `amqp` class) with the connection class above."""

    Connection = Connection


class SettledOnSuccess(Request):  # type: ignore[misc]
    """Request mixin: a task that returned was finished by finish.lua, which acknowledged its
    message in Redis (worker.lifecycle); the main process's ack then stays local."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Celery subclasses the task's Request class once per task type
        # (celery.worker.request.create_request_cls) with an on_success that overrides any
        # defined here: wrap that one.
        super().__init_subclass__(**kwargs)
        on_success = cls.on_success

        def settle_then_ack(self: Request, failed__retval__runtime: Any, **kw: Any) -> Any:
            if not failed__retval__runtime[0] and self.task.acks_late and not self.acknowledged:
                settle(self.message)
            return on_success(self, failed__retval__runtime, **kw)

        cls.on_success = settle_then_ack


def settle(message: Any) -> None:
    """Mark a message finish.lua acknowledged, so its ack makes no round trip; with the fast
    path off, or on a channel that is not ours, kombu's ack then does its usual MULTI."""
    channel = message.channel
    if isinstance(channel, Channel) and channel.kt_fast_path:
        channel.qos.settled(message.delivery_tag)


class TransportCheck(bootsteps.StartStopStep):  # type: ignore[misc]
    """Refuses to consume through any transport but this one: finish.lua acknowledges in its
    keys, and a stock QoS would never learn of those acks."""

    requires = ("celery.worker.consumer.connection:Connection",)

    def start(self, consumer: Any) -> None:
        transport = consumer.connection.transport
        if not isinstance(transport, Transport):
            raise ConfigurationError(
                f"the worker consumes through {type(transport).__module__}."
                f"{type(transport).__name__}, not {TRANSPORT}: set by worker.app's configuration "
                "(broker_transport); do not override it"
            )
