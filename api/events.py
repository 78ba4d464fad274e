"""Live updates, pushed: Server-Sent Events fed by the record changes the Lua scripts publish.

Every script that changes a task record publishes the record as it now is, with its version, on
one channel (`changed` in contracts/lua/_lib.lua). Each API process holds one subscription to it
(`Hub`), opened while it has watchers, and hands each change to the watchers of that task in
memory: no Redis call per watcher, none at all while nothing changes. A watcher registers before
it reads the record, so a change made between the read and the first message is still seen, and
versions order what it then sends. When the subscription drops (Redis restarted), messages
published meanwhile are gone: every watcher re-reads its records once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import orjson
from fastapi.responses import StreamingResponse
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from api.exceptions import TooManyStreams
from contracts import records

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0
RETRY_MS = 2000  # the reconnect delay a client is told (`retry:`)
# Every stream's first line, sent once its watcher is registered.
_RETRY_LINE = f"retry: {RETRY_MS}\n\n".encode()
# Changes a watcher may have queued before it is told to re-read instead (a slow client).
WATCHER_BACKLOG = 256
# How long the subscription stays open with no watcher (a page reloading comes straight back).
IDLE_SECONDS = 5.0
RECONNECT_SECONDS = 0.5
# The scripts publish while the listening flag lives (contracts.records.EVENTS_LISTENING): set at
# each subscription and renewed while it lasts, it outlives two missed renewals.
LISTENING_RENEW_SECONDS = 10.0
LISTENING_TTL_SECONDS = 35
SUBSCRIBE_TIMEOUT_SECONDS = 2.0

Change = tuple[str, int, dict[str, str]]  # task id, version, the record without its arguments


@dataclass(eq=False)
class Watcher:
    """A stream's inbox. Kept small, as there may be 10,000 of them: a deque and one event
    rather than a queue whose waits each take a task (docs/benchmarks.md, issue 18)."""

    ids: frozenset[str] | None  # None: every task
    changes: deque[Change] = field(default_factory=deque)
    # Set when changes were lost to it (the subscription dropped, or it fell behind): it must
    # read its records again.
    stale: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, change: Change) -> None:
        if len(self.changes) < WATCHER_BACKLOG:
            self.changes.append(change)
        else:
            self.lost()
        self.wake.set()

    def lost(self) -> None:
        self.stale = True
        self.changes.clear()  # the re-read covers them
        self.wake.set()

    def fresh(self) -> None:
        """About to read its records: what it was told so far is in them."""
        self.stale = False
        self.changes.clear()


class Hub:
    """One subscription to the changes channel per API process, fanned out to its watchers."""

    def __init__(self, redis: Redis, max_streams: int) -> None:
        self.redis = redis
        self.max_streams = max_streams
        self._by_id: dict[str, set[Watcher]] = {}
        self._everything: set[Watcher] = set()
        self._count = 0
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def admit(self) -> None:
        """Before a stream's answer starts: TooManyStreams at the cap, a Redis error when the
        subscription cannot be made (both are answered 503 then, not as a broken stream)."""
        if self._count >= self.max_streams:
            raise TooManyStreams(self.max_streams)
        await self._subscription()

    async def _subscription(self) -> None:
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen())
        try:
            await asyncio.wait_for(self._subscribed.wait(), SUBSCRIBE_TIMEOUT_SECONDS)
        except TimeoutError:
            raise RedisConnectionError("could not subscribe to record changes") from None

    @contextlib.asynccontextmanager
    async def watch(self, ids: Iterable[str] | None) -> AsyncIterator[Watcher]:
        """A watcher of `ids` (None: every task), receiving changes once this returns."""
        watcher = Watcher(None if ids is None else frozenset(ids))
        self._add(watcher)
        try:
            await self._subscription()
            yield watcher
        finally:
            self._remove(watcher)

    def _add(self, watcher: Watcher) -> None:
        self._count += 1
        if watcher.ids is None:
            self._everything.add(watcher)
        for task_id in watcher.ids or ():
            self._by_id.setdefault(task_id, set()).add(watcher)

    def _remove(self, watcher: Watcher) -> None:
        self._count -= 1
        self._everything.discard(watcher)
        for task_id in watcher.ids or ():
            watching = self._by_id.get(task_id, set())
            watching.discard(watcher)
            if not watching:
                self._by_id.pop(task_id, None)

    def _dispatch(self, raw: bytes) -> None:
        change = orjson.loads(raw)
        task_id = change["id"]
        item: Change = (task_id, int(change["version"]), change["record"])
        for watcher in self._by_id.get(task_id, ()):
            watcher.offer(item)
        for watcher in self._everything:
            watcher.offer(item)

    def _all_stale(self) -> None:
        for watchers in (*self._by_id.values(), self._everything):
            for watcher in watchers:
                watcher.lost()

    async def _listen(self) -> None:
        idle_since: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(records.EVENTS_CHANNEL)
                await self._listening()
                renewed = loop.time()
                # Whatever was published before this subscription is gone for its watchers.
                self._all_stale()
                self._subscribed.set()
                while True:
                    if loop.time() - renewed > LISTENING_RENEW_SECONDS:
                        await self._listening()
                        renewed = loop.time()
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "message":
                        self._dispatch(message["data"])
                    if self._count:
                        idle_since = None
                    elif idle_since is None:
                        idle_since = loop.time()
                    elif loop.time() - idle_since > IDLE_SECONDS:
                        # Decided and forgotten in one step (no await): a watcher that comes
                        # now starts a new subscription rather than trust this closing one.
                        self._listener = None
                        self._subscribed.clear()
                        return
            except (RedisError, OSError, RuntimeError) as exc:
                self._subscribed.clear()
                if not self._count:  # nobody to resubscribe for: the next stream will
                    self._listener = None
                    return
                log.warning("record changes: subscription lost (%s); resubscribing", exc)
                await asyncio.sleep(RECONNECT_SECONDS)
            finally:
                with contextlib.suppress(RedisError, OSError, RuntimeError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _listening(self) -> None:
        await self.redis.set(records.EVENTS_LISTENING, 1, ex=LISTENING_TTL_SECONDS)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None


Render = Callable[[str, dict[str, str]], bytes]  # task id, record -> the event's data (JSON)
Read = Callable[[str], Awaitable[dict[str, str] | None]]  # None: the task is gone


def event(name: str, data: bytes, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {name}\ndata: ".encode() + data + b"\n\n"


async def sse(hub: Hub, body: AsyncIterator[bytes]) -> StreamingResponse:
    await hub.admit()
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


STALE = "stale"


async def _next(watcher: Watcher) -> Change | str | None:
    """The watcher's next change, STALE when it must re-read, None after KEEPALIVE_SECONDS."""
    if not watcher.stale and not watcher.changes:
        watcher.wake.clear()
        try:
            async with asyncio.timeout(KEEPALIVE_SECONDS):
                await watcher.wake.wait()
        except TimeoutError:
            return None
    return STALE if watcher.stale else watcher.changes.popleft()


async def follow_view(
    hub: Hub,
    ids: list[str],
    *,
    name: str,
    read: Callable[[], Awaitable[bytes | None]],
    ended: Callable[[bytes], bool],
) -> AsyncIterator[bytes]:
    """Events of a view made of several records (a workflow of its steps' `ids`): the view
    as `read` gives it (None: gone), again after each change of any of them, until `ended`."""
    async with hub.watch(ids) as watcher:
        yield _RETRY_LINE
        last = b""
        while True:
            watcher.fresh()  # one read covers every change so far
            data = await read()
            if data is None:
                return
            if data != last:
                yield event(name, data)
                last = data
            if ended(data):
                return
            if await _next(watcher) is None:
                yield b": keep-alive\n\n"


async def follow(
    hub: Hub,
    ids: list[str] | None,
    *,
    read: Read,
    render: Render,
    ended: Callable[[dict[str, str]], bool],
    wanted: Callable[[dict[str, str]], bool] = lambda _: True,
) -> AsyncIterator[bytes]:
    """Events for `ids` (None: every task that `wanted` accepts, from now on): the current view
    of each first, then each change, in version order, until every one of `ids` has `ended`.
    Each event's id is `<task id>:<version>`; a client that reconnects gets the current views."""
    async with hub.watch(ids) as watcher:
        yield _RETRY_LINE
        seen: dict[str, int] = {}
        open_ids = set(ids or ())

        def send(task_id: str, version: int, record: dict[str, str]) -> bytes | None:
            if version <= seen.get(task_id, -1) or not wanted(record):
                return None
            seen[task_id] = version
            if ended(record):
                open_ids.discard(task_id)
            return event("task", render(task_id, record), f"{task_id}:{version}")

        next_: Change | str | None = STALE  # the current views first
        while True:
            if next_ == STALE:
                watcher.fresh()
                for task_id in sorted(open_ids):
                    record = await read(task_id)
                    if record is None:
                        open_ids.discard(task_id)
                    elif data := send(task_id, int(record.get(records.Field.VERSION, 0)), record):
                        yield data
            elif next_ is None:
                yield b": keep-alive\n\n"
            elif isinstance(next_, tuple) and (data := send(*next_)):
                yield data
            if ids is not None and not open_ids:
                return
            next_ = await _next(watcher)
