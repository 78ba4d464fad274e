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
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable

import orjson
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from api.exceptions import TooManyStreams
from contracts import records

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0
RETRY_MS = 2000  # the reconnect delay a client is told (`retry:`)
# Every stream's first line, sent once its watcher is registered.
_RETRY_LINE = f"retry: {RETRY_MS}\n\n".encode()
KEEPALIVE = b": keep-alive\n\n"
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


class Change:
    """One published change, handed to every watcher of its task."""

    __slots__ = ("record", "task_id", "version", "view")

    def __init__(self, task_id: str, version: int, record: dict[str, str]) -> None:
        self.task_id = task_id
        self.version = version
        self.record = record  # without its arguments
        # Its event's data, rendered by the first watcher that sends it for all the others:
        # a change watched by 5 streams is rendered once, not 5 times.
        self.view: bytes | None = None


STALE = "stale"  # what a watcher is told instead of a change when it must re-read


class Watcher:
    """A stream's inbox. Kept small, as there may be 10,000 of them: a list, and a future only
    while it waits, rather than a queue or an event (each holds a deque of 600 bytes;
    docs/benchmarks.md, issue 18)."""

    __slots__ = ("_waiting", "changes", "ids", "stale")

    def __init__(self, ids: frozenset[str] | None) -> None:
        self.ids = ids  # None: every task
        self.changes: list[Change] = []
        # Set when changes were lost to it (the subscription dropped, or it fell behind): it
        # must read its records again.
        self.stale = False
        self._waiting: asyncio.Future[None] | None = None

    def offer(self, change: Change) -> None:
        if len(self.changes) < WATCHER_BACKLOG:
            self.changes.append(change)
        else:
            self.lost()
        self._wake()

    def lost(self) -> None:
        self.stale = True
        self.changes.clear()  # the re-read covers them
        self._wake()

    def fresh(self) -> None:
        """About to read its records: what it was told so far is in them."""
        self.stale = False
        self.changes.clear()

    def _wake(self) -> None:
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_result(None)

    async def next(self) -> Change | str | None:
        """The next change, STALE when it must re-read, None after KEEPALIVE_SECONDS."""
        if not self.stale and not self.changes:
            self._waiting = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(KEEPALIVE_SECONDS):
                    await self._waiting
            except TimeoutError:
                return None
            finally:
                self._waiting = None
        return STALE if self.stale else self.changes.pop(0)


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
            # Not wait_for: in Python 3.11 it swallows a cancel that comes as the event is set,
            # and a stream whose client left would then go on (EventStream checks for that too).
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT_SECONDS):
                await self._subscribed.wait()
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
        item = Change(task_id, int(change["version"]), change["record"])
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


class EventStream(Response):
    """A `text/event-stream` answer from `body`, ended when the client leaves.

    Starlette's StreamingResponse (under ASGI spec 2.3, which uvicorn serves) runs the body and
    a disconnect listener in an anyio task group: two tasks and their cancel scopes, about 6 KiB
    a stream. This runs the body in the request's own task and the listener as one more task,
    which cancels the body when the client has gone (uvicorn drops what is sent after that, so
    the body would run on)."""

    media_type = "text/event-stream"

    def __init__(self, body: AsyncGenerator[bytes]) -> None:
        self.body_iterator = body
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.current_task()
        assert streaming is not None

        async def until_gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            streaming.cancel()

        listener = asyncio.create_task(until_gone())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for chunk in self.body_iterator:
                if listener.done():  # gone, and its cancel lost in some await on the way,
                    await asyncio.sleep(0)  # or not delivered yet: then it comes here, in the try
                    break
                if chunk:  # the body's turns that had nothing to say
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            listener.cancel()  # receive() answers a disconnect once the answer is complete
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not listener.done() or listener.cancelled():
                raise  # cancelled from elsewhere (the server stopping)
            streaming.uncancel()  # the client left: an ordinary end
        finally:
            listener.cancel()
            await self.body_iterator.aclose()  # its watcher goes now, not when collected


async def sse(hub: Hub, body: AsyncGenerator[bytes]) -> EventStream:
    await hub.admit()
    return EventStream(body)


async def follow_view(
    hub: Hub,
    ids: list[str],
    *,
    name: str,
    read: Callable[[], Awaitable[bytes | None]],
    ended: Callable[[bytes], bool],
) -> AsyncGenerator[bytes]:
    """Events of a view made of several records (a workflow of its steps' `ids`): the view
    as `read` gives it (None: gone), again after each change of any of them, until `ended`."""
    async with hub.watch(ids) as watcher:
        yield _RETRY_LINE
        last = b""
        done = False

        async def view() -> bytes:
            nonlocal last, done
            watcher.fresh()  # one read covers every change so far
            data = await read()
            done = data is None or ended(data)
            if data is None or data == last:
                return b""
            last = data
            return event(name, data)

        yield await view()
        while not done:
            yield KEEPALIVE if await watcher.next() is None else await view()


async def follow(
    hub: Hub,
    ids: list[str] | None,
    *,
    read: Read,
    render: Render,
    ended: Callable[[dict[str, str]], bool],
    wanted: Callable[[dict[str, str]], bool] = lambda _: True,
) -> AsyncGenerator[bytes]:
    """Events for `ids` (None: every task that `wanted` accepts, from now on): the current view
    of each first, then each change, in version order, until every one of `ids` has `ended`.
    Each event's id is `<task id>:<version>`; a client that reconnects gets the current views.
    `render` is the same for every stream of the process: a change is rendered once for all.
    Nothing of an event is held while the watcher waits: 10,000 of them may wait at once."""
    async with hub.watch(ids) as watcher:
        yield _RETRY_LINE
        seen: dict[str, int] = {}
        open_ids = set(ids or ())

        def send(change: Change) -> bytes:
            task_id, version = change.task_id, change.version
            if version <= seen.get(task_id, -1) or not wanted(change.record):
                return b""
            seen[task_id] = version
            if ended(change.record):
                open_ids.discard(task_id)
            if change.view is None:
                change.view = render(task_id, change.record)
            return event("task", change.view, f"{task_id}:{version}")

        async def views() -> bytes:
            watcher.fresh()
            sent = []
            for task_id in sorted(open_ids):
                record = await read(task_id)
                if record is None:
                    open_ids.discard(task_id)
                else:
                    version = int(record.get(records.Field.VERSION, 0))
                    sent.append(send(Change(task_id, version, record)))
            return b"".join(sent)

        async def answer(next_: Change | str | None) -> bytes:
            if next_ == STALE:
                return await views()
            if next_ is None:
                return KEEPALIVE
            assert isinstance(next_, Change)
            return send(next_)

        yield await views()
        while ids is None or open_ids:
            yield await answer(await watcher.next())
