"""A task followed to its end, for both clients' `wait`: its Server-Sent Events stream while the
stream lasts, then polling (the stream refused, say at the API's stream cap, or broken), each
new view of the task handed to `on_update`. The clients only open the stream and read lines."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kubetasks_client import _protocol as calls
from kubetasks_client.errors import (
    KubetasksError,
    ServerError,
    Unavailable,
    WaitTimeout,
    error_from,
)
from kubetasks_client.models import TaskView

# The API sends a keep-alive every 15 s: a stream silent for twice that is dead.
STREAM_SILENCE_SECONDS = 30.0

OnUpdate = Callable[[TaskView], object]


@dataclass(frozen=True)
class Event:
    name: str
    data: str


class EventParser:
    """Server-Sent Events from their lines (the WHATWG rules, as far as this API uses them)."""

    def __init__(self) -> None:
        self._name = "message"
        self._data: list[str] = []

    def feed(self, line: str) -> Event | None:
        """The event a blank line completes; None for every other line."""
        if not line:
            event = Event(self._name, "\n".join(self._data)) if self._data else None
            self._name, self._data = "message", []
            return event
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._name = value
        # Left: comments (the keep-alives), `retry:` and `id:` (this client polls rather than
        # reconnect, and each event carries the task's whole view).
        return None


class Follower:
    """One `wait`'s decisions; `WaitTimeout` once `timeout` seconds have passed."""

    def __init__(
        self,
        task_id: str,
        timeout: float | None,
        on_update: OnUpdate | None,
        poll_interval: float,
    ) -> None:
        self.task_id = task_id
        self.timeout = timeout
        self.stream_path = calls.events_path(task_id)
        self.poll = calls.task(task_id)
        self.last: TaskView | None = None
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._on_update = on_update
        self._interval = poll_interval
        self._events = EventParser()

    def _remaining(self) -> float:
        if self._deadline is None:
            return math.inf
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeout(self.task_id, self.timeout or 0, self.last)
        return left

    def read_timeout(self) -> float:
        """For the stream's reads: a silent stream is a broken one, and the wait has a deadline."""
        return min(STREAM_SILENCE_SECONDS, self._remaining())

    def opened(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        """The stream's answer; raises its error when it is not the stream."""
        if status != 200:
            raise error_from(status, headers, body)

    def line(self, line: str) -> TaskView | None:
        """The task's view once the stream showed it ended."""
        event = self._events.feed(line)
        if event is not None and event.name == "task":
            ended = self.seen(TaskView.model_validate_json(event.data))
            if ended is not None:
                return ended
        self._remaining()
        return None

    def seen(self, view: TaskView) -> TaskView | None:
        """`view` when the task ended."""
        if view != self.last:
            self.last = view
            if self._on_update is not None:
                self._on_update(view)
        return view if view.state.ended else None

    def broke(self, error: Exception) -> None:
        """The stream could not be opened, or broke: polling follows, unless polling would meet
        the same error (the task unknown or gone, the key refused), which is raised."""
        if isinstance(error, KubetasksError) and not isinstance(error, Unavailable | ServerError):
            raise error
        self._remaining()

    def pause(self) -> float:
        """Seconds until the next poll."""
        return min(self._interval, self._remaining())
