"""kombu's Redis transport, with two of its three round trips per task folded away.

kombu emulates acknowledgement in Redis: the worker's main process fetches a message (BRPOP),
records it in the `unacked` hash (a MULTI), and removes it from there when the task is done
(another MULTI). All three block the loop that fetches the next message, which with prefetch 1
sets the worker's pace.

- Fetch and record: while messages are waiting, `fetch.lua` pops one and records it in the same
  step, which also leaves no moment when a fetched message is in neither the queue nor `unacked`.
  When it finds every list empty, the channel blocks in kombu's BRPOP until the next message,
  recorded by kombu's MULTI as before.
- Acknowledge: a successful task's `finish.lua` has already removed its message, in the same call
  that ended the record (see `worker.lifecycle`): the main process then only updates its own
  bookkeeping. Every other ending is acknowledged by kombu as usual.

This overrides private methods of kombu's channel (`_brpop_start`, `_brpop_read`), so kombu is
pinned (requirements/worker.txt) and tests/test_broker.py drives each path through kombu's own
consumer: re-run it before moving the pin.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from queue import Empty
from time import monotonic, time
from typing import Any

from kombu.transport import redis
from kombu.transport.virtual.base import QoS as VirtualQoS
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads
from redis.exceptions import NoScriptError

from contracts.scripts import lua

FETCH = lua("fetch")
FETCH_SHA = hashlib.sha1(FETCH.encode(), usedforsecurity=False).hexdigest()

# (unacked_key, unacked_index_key, global_keyprefix): kombu's defaults, which _lib.lua names.
UNACKED_KEYS = ("unacked", "unacked_index", "")


def unacked_keys(transport_options: Mapping[str, Any]) -> tuple[str, str, str]:
    """Where kombu will keep unacknowledged messages under these transport options."""
    return (
        transport_options.get("unacked_key", redis.Channel.unacked_key),
        transport_options.get("unacked_index_key", redis.Channel.unacked_index_key),
        transport_options.get("global_keyprefix", ""),
    )


class QoS(redis.QoS):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._settled: set[str] = set()
        self.recorded: str | None = None  # the message being delivered, if fetch.lua recorded it

    def append(self, message: Any, delivery_tag: str) -> None:
        if delivery_tag == self.recorded:
            self.recorded = None
            VirtualQoS.append(self, message, delivery_tag)  # type: ignore[no-untyped-call]
        else:
            super().append(message, delivery_tag)  # type: ignore[no-untyped-call]

    def forget(self, delivery_tag: str) -> None:
        """Drop a record that no consumer took over."""
        self._remove_from_indices(delivery_tag).execute()  # type: ignore[no-untyped-call]

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
        # kombu's own choice and order of lists (see super()._brpop_start); check_transport
        # rules out the global_keyprefix it would add.
        queues = self._queue_cycle.consume(len(self.active_queues))
        if self._blocking or self._unacknowledged.intersection(queues):
            self._sent = "BRPOP"
            super()._brpop_start(timeout)  # type: ignore[no-untyped-call]
            return
        if not queues:
            return
        keys = [
            self._q_for_pri(queue, pri)  # type: ignore[no-untyped-call]
            for pri in self.priority_steps
            for queue in queues
        ]
        self._sent = "EVALSHA"
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()  # type: ignore[assignment]
        self.client.connection.send_command("EVALSHA", FETCH_SHA, len(keys), *keys, time())

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
                self.client.script_load(FETCH)
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
            qos.recorded = message["properties"]["delivery_tag"] if recorded else None
            try:
                self.connection._deliver(message, dest)
            except Exception:
                if qos.recorded is not None:
                    # It failed before kombu took it over (an unreadable message, say): kombu
                    # would have dropped it, not brought it back after the visibility timeout.
                    qos.forget(qos.recorded)
                raise
            finally:
                qos.recorded = None
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]
            self._flush_brpop_reauth()  # type: ignore[no-untyped-call]


class Transport(redis.Transport):
    Channel = Channel
