"""kombu's Redis transport, less one round trip per task that succeeds.

kombu emulates acknowledgement in Redis: a delivered message waits in the `unacked` hash until
the worker's main process removes it, one blocking round trip per task in the loop that also
fetches the next message. A successful task's `finish.lua` has already removed it, in the same
call that ended the record (see `worker.lifecycle`): the main process then only updates its
own bookkeeping. Every other ending is acknowledged by kombu as usual.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kombu.transport import redis
from kombu.transport.virtual.base import QoS as VirtualQoS

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


class Transport(redis.Transport):
    Channel = Channel
