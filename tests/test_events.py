"""Pushed updates: every change of a task reaches its watchers in order, none missed, across a
Redis restart; many tasks on one connection; reconnecting gets the current view; a cap on
streams; and watchers that wait cost Redis nothing."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis

from devstack.processes import Stack
from tests.conftest import client_for
from tests.helpers import ApiClient, wait_for

Event = tuple[str, dict[str, Any]]  # the event's id, its data


def events(
    client: httpx.Client, path: str, on_open: Callable[[], None] = lambda: None, **kwargs: Any
) -> Iterator[Event]:
    """The stream's events as they come (id, data), until it ends; `on_open` once the stream
    watches (its first line, `retry:`, comes after the watcher is registered)."""
    with client.stream("GET", path, timeout=httpx.Timeout(10, read=30), **kwargs) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        event_id, data = "", ""
        for line in response.iter_lines():
            if line.startswith("retry: "):
                on_open()
            elif line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and data:
                yield event_id, json.loads(data)
                event_id, data = "", ""


class Collector(threading.Thread):
    """Reads a stream in the background into `seen`."""

    def __init__(self, url: str, path: str, **kwargs: Any) -> None:
        super().__init__(daemon=True)
        self.url, self.path, self.kwargs = url, path, kwargs
        self.seen: list[Event] = []
        self.error: BaseException | None = None
        self.open = threading.Event()

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.url) as client:
                self.seen.extend(events(client, self.path, self.open.set, **self.kwargs))
        except BaseException as exc:
            self.error = exc

    def finished(self, timeout: float) -> list[Event]:
        self.join(timeout)
        assert not self.is_alive(), f"the stream did not end: {self.seen[-3:]}"
        assert self.error is None, self.error
        return self.seen


def watching(stack: Stack, task_ids: list[str], timeout: float) -> list[Collector]:
    """A started stream per task, each past its first view."""
    watchers = [Collector(stack.api_url, f"/tasks/{t}/events") for t in task_ids]
    for watcher in watchers:
        watcher.start()
    wait_for(lambda: all(w.seen for w in watchers), timeout, "every stream's first view")
    return watchers


def versions(seen: list[Event]) -> list[int]:
    return [int(event_id.rsplit(":", 1)[1]) for event_id, _ in seen]


def test_a_watcher_sees_every_change_in_order_across_a_redis_restart(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    redis_process = stack.start_redis(appendonly=True)
    stack.start_api()
    stack.start_worker()
    with client_for(stack) as api:
        task_id = api.submit("sleep", {"seconds": 6})
        watcher = Collector(stack.api_url, f"/tasks/{task_id}/events")
        watcher.start()
        api.wait_task(task_id, lambda t: (t["progress"] or {}).get("current", 0) >= 2)
        redis_process.stop(signal.SIGKILL)
        stack.processes.remove(redis_process)
        stack.start_redis(appendonly=True)
        seen = watcher.finished(timeout=40)
        final = api.task(task_id)
    states = [data["state"] for _, data in seen]
    assert states[-1] == "SUCCESS" and final["state"] == "SUCCESS"
    assert "STARTED" in states
    numbers = versions(seen)
    # In order, and none missed: every version from the first view to the last.
    assert numbers == list(range(numbers[0], numbers[-1] + 1)), numbers
    progress = [data["progress"]["current"] for _, data in seen if data["progress"]]
    assert progress == sorted(progress) and progress[-1] == 6


def test_many_tasks_on_one_stream_and_a_reconnect_gets_the_current_views(
    api: ApiClient, stack: Stack
) -> None:
    ids = [api.submit("sleep", {"seconds": 0.2 * (n % 5)}) for n in range(50)]
    seen = list(events(api, "/events", params={"ids": ",".join([*ids, "no-such-task"])}))
    last: dict[str, tuple[int, str]] = {}
    for event_id, data in seen:
        task_id, version = event_id.rsplit(":", 1)
        assert data["task_id"] == task_id
        assert int(version) > last.get(task_id, (0, None))[0]
        last[task_id] = (int(version), data["state"])
    assert set(last) == set(ids)
    assert {state for _, state in last.values()} == {"SUCCESS"}
    # A client reconnecting after the end gets each current view at once, then the end.
    resume = {"Last-Event-ID": seen[0][0]}
    again = list(events(api, "/events", params={"ids": ids[0]}, headers=resume))
    assert [(e, d["state"]) for e, d in again] == [(f"{ids[0]}:{last[ids[0]][0]}", "SUCCESS")]


def test_a_filtered_stream_sees_the_tasks_that_change_into_a_state(api: ApiClient) -> None:
    collector = Collector(str(api.base_url), "/events", params={"state": "SUCCESS", "name": "add"})
    collector.start()
    assert collector.open.wait(10)
    task_id = api.submit("add", {"a": 2, "b": 3})
    wait_for(lambda: any(d["task_id"] == task_id for _, d in collector.seen), 10, "the success")
    event = next(d for _, d in collector.seen if d["task_id"] == task_id)
    assert (event["state"], event["result"]) == ("SUCCESS", 5)


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"ids": ""}, "give 1 to 200 task ids"),
        ({"ids": ",".join(str(n) for n in range(201))}, "give 1 to 200 task ids"),
        ({"ids": "x" * 65}, "at most 64 characters"),
        ({"ids": "a", "state": "SUCCESS"}, "not with state or name"),
        ({"state": "DONE"}, "Input should be"),
    ],
)
def test_bad_event_stream_parameters_are_422s(
    api: ApiClient, params: dict[str, str], why: str
) -> None:
    response = api.get("/events", params=params)
    assert response.status_code == 422, response.text
    assert why in response.json()["message"]


def test_the_stream_cap_answers_503_and_leaves_the_others_streaming(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(env={"KUBETASKS_EVENTS_MAX_STREAMS": "2"})
    stack.start_redis()
    stack.start_api()
    with client_for(stack) as api:
        waiting = [api.submit("sleep", {"seconds": 0}, countdown=600) for _ in range(2)]
        watchers = watching(stack, waiting, 10)
        refused = api.get(f"/tasks/{waiting[0]}/events")
        assert refused.status_code == 503 and refused.json()["error"] == "too_many_streams"
        assert refused.headers["Retry-After"]
        for task_id in waiting:
            assert api.post(f"/tasks/{task_id}/cancel").status_code == 200
        for watcher in watchers:
            assert watcher.finished(timeout=10)[-1][1]["state"] == "REVOKED"


def test_a_client_that_leaves_gives_its_stream_back(make_stack: Callable[..., Stack]) -> None:
    """The stream ends when its client goes, though nothing is sent to notice it by (the next
    keep-alive is 15 s away): its place under the cap is free again at once."""
    stack = make_stack(env={"KUBETASKS_EVENTS_MAX_STREAMS": "1"})
    stack.start_redis()
    stack.start_api()
    with client_for(stack) as api, httpx.Client(base_url=stack.api_url) as client:
        path = f"/tasks/{api.submit('sleep', {'seconds': 0}, countdown=600)}/events"

        def admitted() -> bool:
            with client.stream("GET", path, timeout=10) as response:
                return response.status_code == 200

        assert admitted()  # and gone, as the response closes
        wait_for(admitted, 5, "the place of the stream whose client left")


def test_idle_watchers_cost_redis_no_commands(make_stack: Callable[..., Stack]) -> None:
    """Fifty streams on waiting tasks: while nothing changes, the API sends Redis nothing (the
    streams polled the record twice a second each before)."""
    stack = make_stack()
    stack.start_redis()
    stack.start_api()
    client = redis.Redis.from_url(stack.redis_url)
    with client_for(stack) as api:
        waiting = [api.submit("sleep", {"seconds": 0}, countdown=600) for _ in range(50)]
        watchers = watching(stack, waiting, 20)
        before = int(client.info("stats")["total_commands_processed"])
        time.sleep(3)  # the quiet being measured, not a wait for something
        during = int(client.info("stats")["total_commands_processed"]) - before
        # The INFO calls themselves, and at most one renewal of the listening flag (every 10 s).
        assert during <= 3, during
        for task_id in waiting:
            api.post(f"/tasks/{task_id}/cancel")
        for watcher in watchers:
            watcher.finished(timeout=20)
