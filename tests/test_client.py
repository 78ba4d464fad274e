"""kubetasks_client (client/) against real stacks: submit and wait on the event stream, polling
when the stream is refused or breaks, cancel, every error class from a real answer, listing
across pages, retries of 429 and 503, the async client, and its models against the API's own
OpenAPI document."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any

import httpx
import kubetasks_client
import pytest
from kubetasks_client import (
    AsyncClient,
    BacklogFull,
    BadRequest,
    BodyTooLarge,
    Client,
    DeadLetterNotFound,
    Forbidden,
    IdempotencyKeyReused,
    InvalidArguments,
    KubetasksError,
    MethodNotAllowed,
    NotFound,
    RedisUnavailable,
    Retry,
    ScheduleExists,
    ScheduleNotFound,
    ServerError,
    State,
    TaskExpired,
    TaskFinished,
    TaskNotFound,
    TaskView,
    TooManyStreams,
    Unauthorized,
    WaitTimeout,
    WorkflowExpired,
    WorkflowFinished,
    WorkflowNotFound,
)
from kubetasks_client import models as client_models
from kubetasks_client.errors import BY_CODE, error_from
from kubetasks_client.models import Cancelled
from pydantic import BaseModel

from devstack.processes import ROOT, Stack
from tests.conftest import FAST_ENV
from tests.helpers import wait_for
from tests.proxy import DelayingProxy

KEY = "client-test-key"
RETRY_AFTER_SECONDS = 1
RECORD_TTL_SECONDS = 2
UNKNOWN_ID = "f" * 32
JSON = {"content-type": "application/json"}


@pytest.fixture
def client(stack: Stack) -> Iterator[Client]:
    with Client(stack.api_url) as shared:
        yield shared


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack with an API key, one event stream allowed, no room on the `cpu` queue (every
    submit there is a 429), short-lived records and a worker on `default` only."""
    stack = Stack(
        workdir=tmp_path_factory.mktemp("guarded"),
        api_key=KEY,
        extra_env={
            **FAST_ENV,
            "KUBETASKS_EVENTS_MAX_STREAMS": "1",
            "KUBETASKS_QUEUE_MAX_BACKLOG": '{"cpu": 0}',
            "KUBETASKS_RETRY_AFTER_SECONDS": str(RETRY_AFTER_SECONDS),
            "KUBETASKS_RECORD_TTL_SECONDS": str(RECORD_TTL_SECONDS),
        },
    )
    try:
        stack.start_redis()
        stack.start_api()
        stack.start_worker(queues=["default"])
        yield stack
    finally:
        stack.stop_all(timeout=15)


def progress_seen(views: list[TaskView]) -> list[float]:
    return [v.progress.current for v in views if v.progress is not None]


@contextmanager
def held_stream(http: httpx.Client, task_id: str) -> Iterator[None]:
    """The guarded stack's one event stream, held open; opened as soon as the API has let go
    of the streams before it (it notices a client leaving within moments, not at once)."""
    deadline = time.monotonic() + 10
    while True:
        with http.stream("GET", f"/tasks/{task_id}/events") as stream:
            if stream.status_code == 200:
                lines = stream.iter_lines()  # kept: a dropped iterator closes the stream
                assert next(lines).startswith("retry:")
                yield
                return
            stream.read()
            assert stream.status_code == 503 and time.monotonic() < deadline, stream.text
        time.sleep(0.05)


def test_submit_and_wait_follow_the_event_stream_with_progress(
    client: Client, stack: Stack
) -> None:
    # Polling once a minute: only the stream can show the progress and the end in time.
    with Client(stack.api_url, poll_interval=60) as streaming:
        task = streaming.submit("sleep", seconds=3, note="slept")
        assert task.created is True
        views: list[TaskView] = []
        final = task.wait(timeout=30, on_update=views.append)
    assert final.state == State.SUCCESS and final.result == "slept"
    assert final == views[-1]
    assert State.STARTED in [v.state for v in views]
    progress = progress_seen(views)
    assert progress == sorted(progress) and progress[-1] == 3
    assert any(0 < p < 3 for p in progress), progress  # reports on the way, not only the end
    assert client.get(task.id) == final


def test_wait_polls_when_the_stream_cap_refuses_its_stream(guarded: Stack) -> None:
    with httpx.Client(base_url=guarded.api_url, headers={"X-API-Key": KEY}) as raw:
        held = raw.post("/tasks", json={"name": "sleep", "args": {"seconds": 0}, "countdown": 600})
        held_id = held.json()["task_id"]
        with held_stream(raw, held_id):
            refused = raw.get(f"/tasks/{held_id}/events")
            assert refused.json()["error"] == "too_many_streams"

            with Client(guarded.api_url, KEY, poll_interval=0.1) as client:
                views: list[TaskView] = []
                final = client.submit("sleep", seconds=2).wait(timeout=30, on_update=views.append)
            assert final.state == State.SUCCESS
            assert len(progress_seen(views)) > 0 and progress_seen(views)[-1] == 2

            async def wait_async() -> TaskView:
                async with AsyncClient(guarded.api_url, KEY, poll_interval=0.1) as client:
                    task = await client.submit("sleep", seconds=1)
                    return await task.wait(timeout=30)

            assert asyncio.run(wait_async()).state == State.SUCCESS
            assert raw.get(f"/tasks/{held_id}/events").status_code == 503  # still held
        raw.post(f"/tasks/{held_id}/cancel")


def test_wait_polls_after_the_stream_breaks(stack: Stack) -> None:
    proxy = DelayingProxy(stack.api_port)
    with proxy, Client(f"http://127.0.0.1:{proxy.port}", poll_interval=0.1) as client:
        task = client.submit("sleep", seconds=3)
        views: list[TaskView] = []

        def on_update(view: TaskView) -> None:
            views.append(view)
            if len(views) == 1:  # the stream's next event cuts its connection instead
                proxy.drop_next_reply()

        final = task.wait(timeout=30, on_update=on_update)
    assert proxy.held == 1
    assert final.state == State.SUCCESS
    assert len(views) > 2  # views after the break: polling went on where the stream stopped


def test_wait_times_out_with_the_last_view(client: Client) -> None:
    task = client.submit("sleep", seconds=0, countdown=600)
    start = time.monotonic()
    with pytest.raises(WaitTimeout) as timed_out:
        task.wait(timeout=1)
    assert 1 <= time.monotonic() - start < 5
    assert timed_out.value.last is not None and timed_out.value.last.state == State.PENDING
    # Its arguments, which the view leaves out, until it succeeds.
    assert client.args(task.id).args == {"seconds": 0}
    task.cancel()


def test_cancel_stops_a_running_task(client: Client) -> None:
    task = client.submit("sleep", seconds=30)
    wait_for(lambda: task.get().state == State.STARTED, 20, "the task to start")
    cancelled = task.cancel()
    assert cancelled == Cancelled(task_id=task.id, state=State.REVOKED, outcome="revoked")
    start = time.monotonic()
    assert task.wait(timeout=20).state == State.REVOKED
    assert time.monotonic() - start < 10
    assert task.cancel().state == State.REVOKED  # again: the same answer


def test_every_error_class_from_a_real_answer(
    guarded: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    produced: set[type[KubetasksError]] = set()

    def expect(kind: type[KubetasksError], call: Callable[[], object]) -> Any:
        with pytest.raises(KubetasksError) as raised:
            call()
        error = raised.value
        assert type(error) is kind, error
        assert error.code in BY_CODE and BY_CODE[error.code] is kind
        assert error.status >= 400 and error.message
        produced.add(kind)
        return error

    monkeypatch.delenv("KUBETASKS_API_KEY", raising=False)
    with Client(guarded.api_url, api_key="") as nobody:
        assert expect(Unauthorized, nobody.queues).status == 401
    with Client(guarded.api_url, api_key="wrong") as stranger:
        assert isinstance(expect(Forbidden, stranger.queues), Unauthorized)

    # Configured by the environment alone.
    monkeypatch.setenv("KUBETASKS_URL", guarded.api_url)
    monkeypatch.setenv("KUBETASKS_API_KEY", KEY)
    with Client() as client:
        assert {q.name for q in client.queues().queues} >= {"default", "cpu"}
        finished = client.submit("sleep", seconds=0)
        assert finished.wait(timeout=30).state == State.SUCCESS
        flow = client.submit_workflow({"chain": [{"task": "sleep", "args": {"seconds": 0}}]})
        ended = flow.workflow_id
        wait_for(lambda: client.get_workflow(ended).state == State.SUCCESS, 20, "the workflow")

        assert isinstance(expect(TaskNotFound, lambda: client.get(UNKNOWN_ID)), NotFound)
        expect(TaskNotFound, lambda: client.cancel(UNKNOWN_ID))
        expect(TaskNotFound, lambda: client.wait(UNKNOWN_ID, timeout=5))
        expect(WorkflowNotFound, lambda: client.get_workflow(UNKNOWN_ID))
        expect(ScheduleNotFound, lambda: client.get_schedule("none"))
        expect(ScheduleNotFound, lambda: client.update_schedule("none", paused=True))
        expect(DeadLetterNotFound, lambda: client.requeue_dead_letter(UNKNOWN_ID))
        expect(DeadLetterNotFound, lambda: client.discard_dead_letter(UNKNOWN_ID))
        expect(TaskFinished, finished.cancel)
        expect(WorkflowFinished, lambda: client.cancel_workflow(ended))

        invalid = expect(InvalidArguments, lambda: client.submit("sleep"))
        assert invalid.status == 422
        assert [f["field"] for f in invalid.fields] == ["args.seconds"]
        invalid = expect(InvalidArguments, lambda: client.submit("sleep", seconds=-1))
        assert invalid.fields[0]["field"] == "args.seconds" and invalid.fields[0]["message"]
        expect(BodyTooLarge, lambda: client.submit("sleep", seconds=0, note="x" * 2_000_000))

        first = client.submit("sleep", {"seconds": 1}, idempotency_key="client-reused")
        again = client.submit("sleep", {"seconds": 1}, idempotency_key="client-reused")
        assert (again.id, again.created) == (first.id, False)
        reused = expect(
            IdempotencyKeyReused,
            lambda: client.submit("sleep", {"seconds": 2}, idempotency_key="client-reused"),
        )
        assert reused.task_id == first.id

        def hourly() -> object:
            return client.create_schedule(
                "client-hourly", task="sleep", args={"seconds": 0}, cron="0 * * * *"
            )

        hourly()
        expect(ScheduleExists, hourly)
        client.delete_schedule("client-hourly")

        full = expect(BacklogFull, lambda: client.submit("primes", limit=100))
        assert (full.status, full.queue, full.retry_after) == (429, "cpu", RETRY_AFTER_SECONDS)

        # Answers no call of the client provokes, read as the client reads every answer.
        waiting = client.submit("sleep", seconds=0, countdown=600)
        with held_stream(client.http, waiting.id):
            for kind, answer in [
                (TooManyStreams, client.http.get(f"/events?ids={waiting.id}")),
                (BadRequest, client.http.post("/tasks", content=b"\xff\xfe\xfa", headers=JSON)),
                (NotFound, client.http.get("/nothing-here")),
                (MethodNotAllowed, client.http.put("/tasks")),
            ]:
                error = error_from(answer.status_code, answer.headers, answer.content)
                assert type(error) is kind and error.code is not None and error.message
                produced.add(kind)
        waiting.cancel()

        wait_for(
            lambda: client.http.get(f"/tasks/{finished.id}").status_code == 410,
            RECORD_TTL_SECONDS + 10,
            "the finished task's record to expire",
        )
        assert isinstance(expect(TaskExpired, finished.get), kubetasks_client.Gone)
        expect(TaskExpired, lambda: finished.wait(timeout=5))
        wait_for(
            lambda: client.http.get(f"/workflows/{ended}").status_code == 410,
            10,
            "the workflow's record to expire",
        )
        expect(WorkflowExpired, lambda: client.get_workflow(ended))
    # RedisUnavailable: test_retry_waits_out_a_redis_outage. A 500 no real answer gives.
    assert produced == set(BY_CODE.values()) - {RedisUnavailable, ServerError}


def test_retry_honours_retry_after_within_its_bounds(guarded: Stack) -> None:
    sent: list[float] = []

    def count(response: httpx.Response) -> None:
        if response.request.url.path == "/tasks":
            sent.append(time.monotonic())

    with Client(guarded.api_url, KEY) as plain:
        plain.http.event_hooks["response"].append(count)
        with pytest.raises(BacklogFull):
            plain.submit("primes", limit=100)
    assert len(sent) == 1  # retries are opt-in

    sent.clear()
    with Client(guarded.api_url, KEY, retry=Retry(attempts=3)) as client:
        client.http.event_hooks["response"].append(count)
        with pytest.raises(BacklogFull):
            client.submit("primes", limit=100)
    assert len(sent) == 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent)]
    assert all(gap >= RETRY_AFTER_SECONDS for gap in gaps), gaps

    sent.clear()
    bounded = Retry(attempts=100, max_seconds=1.5 * RETRY_AFTER_SECONDS)
    with Client(guarded.api_url, KEY, retry=bounded) as client:
        client.http.event_hooks["response"].append(count)
        with pytest.raises(BacklogFull):
            client.submit("primes", limit=100)
    assert len(sent) == 2  # a second wait would pass max_seconds


def test_retry_waits_out_a_redis_outage(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(env={"KUBETASKS_RETRY_AFTER_SECONDS": str(RETRY_AFTER_SECONDS)})
    redis = stack.start_redis(appendonly=True)  # the catalogue outlives the restart
    stack.start_api()
    outage: list[httpx.Request] = []

    def count(response: httpx.Response) -> None:
        if response.status_code == 503:
            outage.append(response.request)

    with Client(stack.api_url, retry=Retry(attempts=30, max_seconds=30)) as client:
        client.http.event_hooks["response"].append(count)
        before = client.submit("sleep", seconds=0)
        redis.stop(signal.SIGKILL)
        stack.processes.remove(redis)
        with Client(stack.api_url) as plain, pytest.raises(RedisUnavailable) as raised:
            plain.get(before.id)  # retries are opt-in
        unavailable = raised.value
        assert unavailable.status == 503 and unavailable.retry_after == RETRY_AFTER_SECONDS

        def restart_after_two_refusals() -> None:
            wait_for(lambda: len(outage) >= 2, 30, "the client's first two attempts")
            stack.start_redis(appendonly=True)

        restarter = threading.Thread(target=restart_after_two_refusals)
        restarter.start()
        task = client.submit("sleep", seconds=0)
        restarter.join(30)
        assert len(outage) >= 2
        # Sent again with the idempotency key the client gave it: one task however many sends.
        keys = {json.loads(r.content)["idempotency_key"] for r in outage}
        assert len(keys) == 1 and keys.pop().startswith("kubetasks-client.")
        assert client.get(task.id).state == State.PENDING


def test_list_iterates_every_page(client: Client) -> None:
    mine = {client.submit("sleep", seconds=0, countdown=600).id for _ in range(5)}
    pages: list[str] = []

    def count(request: httpx.Request) -> None:
        if request.url.path == "/tasks":
            pages.append(str(request.url))

    client.http.event_hooks["request"].append(count)
    listed = list(client.list(state=State.PENDING, name="sleep", page_size=2))
    ids = [t.task_id for t in listed]
    assert len(ids) == len(set(ids))
    assert mine <= set(ids)
    assert len(pages) >= 3 and all("limit=2" in p for p in pages)
    assert "cursor=" not in pages[0] and all("cursor=" in p for p in pages[1:])
    times = [t.submitted_at for t in listed]
    assert times == sorted(times, reverse=True)  # newest first, across pages
    for task_id in mine:
        client.cancel(task_id)
    assert not mine & {t.task_id for t in client.list(state=State.PENDING, name="sleep")}


def test_the_async_client(stack: Stack) -> None:
    async def scenario() -> None:
        async with AsyncClient(stack.api_url, poll_interval=60) as client:
            task = await client.submit("sleep", {"seconds": 2})
            views: list[TaskView] = []
            final = await task.wait(timeout=30, on_update=views.append)
            assert final.state == State.SUCCESS
            assert progress_seen(views)[-1] == 2 and len(progress_seen(views)) >= 2
            assert (await client.get(task.id)) == final
            waiting = [
                (await client.submit("sleep", seconds=0, countdown=600)).id for _ in range(3)
            ]
            listed = [t.task_id async for t in client.list(State.PENDING, "sleep", page_size=1)]
            assert set(waiting) <= set(listed)
            for task_id in waiting:
                assert (await client.cancel(task_id)).state == State.REVOKED
            with pytest.raises(TaskNotFound):
                await client.get(UNKNOWN_ID)
            assert "sleep" in {entry.name for entry in await client.catalogue()}

    asyncio.run(scenario())


def test_workflows_schedules_and_dead_letters(client: Client) -> None:
    add = {"task": "add", "args": {"a": 1, "b": 2}}
    submitted = client.submit_workflow(
        {"chain": [add, {"task": "add", "args": {"b": 3}, "input": "a"}]}
    )
    assert len(submitted.task_ids) == 2
    wait_for(
        lambda: client.get_workflow(submitted.workflow_id).state == State.SUCCESS, 30, "the chain"
    )
    view = client.get_workflow(submitted.workflow_id)
    assert view.result == 6 and [s.task_id for s in view.steps] == submitted.task_ids
    assert submitted.workflow_id in {w.workflow_id for w in client.list_workflows()}

    created = client.create_schedule(
        "client-hourly", task="sleep", args={"seconds": 0}, interval_seconds=3600
    )
    assert created.next_run_at is not None and created.queue == "default"
    paused = client.update_schedule("client-hourly", paused=True)
    assert paused.paused and paused.next_run_at is None
    assert client.get_schedule("client-hourly") == paused
    assert "client-hourly" in {s.name for s in client.list_schedules()}
    client.delete_schedule("client-hourly")
    with pytest.raises(ScheduleNotFound):
        client.get_schedule("client-hourly")


# What the drift test compares: a property's type and required-ness, with references by name
# and unions as sets; titles, descriptions, defaults and validation bounds are left out (the
# client reads answers, it does not validate requests).
def shape(node: Any) -> Any:
    if node is True or node == {} or node is None:
        return "any"
    if "$ref" in node:
        return ("ref", node["$ref"].rsplit("/", 1)[1])
    if "anyOf" in node:
        return ("union", frozenset(shape(n) for n in node["anyOf"]))
    if "const" in node:
        return ("enum", frozenset([node["const"]]))
    if "enum" in node:
        return ("enum", frozenset(node["enum"]))
    kind = node.get("type")
    if kind == "array":
        return ("array", shape(node.get("items")))
    if kind == "object":
        return ("object", shape(node.get("additionalProperties")), shape(node.get("propertyNames")))
    return (kind, node.get("format"))


def fields(schema: dict[str, Any]) -> dict[str, tuple[Any, bool]]:
    required = set(schema.get("required", ()))
    properties = schema.get("properties", {})
    return {name: (shape(p), name in required) for name, p in properties.items()}


def differences(api: dict[str, Any], client: dict[str, Any]) -> list[str]:
    if "enum" in api or "enum" in client:
        return [] if shape(api) == shape(client) else [f"values {api.get('enum')}"]
    theirs, ours = fields(api), fields(client)
    found = [f"{name}: the API's, not the client's" for name in theirs.keys() - ours.keys()]
    found += [f"{name}: the client's, not the API's" for name in ours.keys() - theirs.keys()]
    for name in theirs.keys() & ours.keys():
        if theirs[name] != ours[name]:
            found.append(f"{name}: API {theirs[name]}, client {ours[name]}")
    return found


def client_schemas() -> dict[str, dict[str, Any]]:
    """Each model (and enum) of kubetasks_client.models as the API's document would spell it."""
    template = "#/components/schemas/{model}"
    found: dict[str, dict[str, Any]] = {}
    for name, value in vars(client_models).items():
        if inspect.isclass(value) and value.__module__ == client_models.__name__:
            if issubclass(value, BaseModel):
                found[name] = value.model_json_schema(mode="serialization", ref_template=template)
            elif issubclass(value, Enum):
                found[name] = {"enum": [member.value for member in value]}
    return found


def answered_components(spec: dict[str, Any]) -> set[str]:
    """The components the API's 2xx JSON answers use, nested ones too."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.rsplit("/", 1)[1] not in names:
                names.add(ref.rsplit("/", 1)[1])
                visit(spec["components"]["schemas"][ref.rsplit("/", 1)[1]])
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    for operations in spec["paths"].values():
        for operation in operations.values():
            for status, answer in operation["responses"].items():
                if status.startswith("2"):
                    visit(answer.get("content", {}).get("application/json"))
    return names


def test_the_client_models_match_the_apis_openapi_document(stack: Stack) -> None:
    spec = httpx.get(f"{stack.api_url}/openapi.json", timeout=10).json()
    components = spec["components"]["schemas"]
    ours = client_schemas()
    assert answered_components(spec) <= ours.keys(), "an answer the client has no model for"
    for name, schema in ours.items():
        assert name in components, f"the API has no {name}"
        assert differences(components[name], schema) == [], name

    # The comparison itself: a field renamed, removed, added, retyped or made optional fails.
    view = ours["TaskView"]
    renamed = {**view, "properties": dict(view["properties"])}
    renamed["properties"]["task"] = renamed["properties"].pop("task_id")
    removed = {**view, "properties": {k: v for k, v in view["properties"].items() if k != "queue"}}
    added = {**view, "properties": {**view["properties"], "extra": {"type": "string"}}}
    retyped = {**view, "properties": {**view["properties"], "attempts": {"type": "string"}}}
    optional = {**view, "required": [r for r in view["required"] if r != "name"]}
    for changed in (renamed, removed, added, retyped, optional):
        assert differences(components["TaskView"], changed)

    # Every error code the document names has its own class.
    documented = {
        code
        for operations in spec["paths"].values()
        for operation in operations.values()
        for status, answer in operation["responses"].items()
        if int(status) >= 400
        for code in re.findall(r"`(\w+)`:", answer["description"])
    }
    assert documented and documented <= BY_CODE.keys(), documented - BY_CODE.keys()


def test_the_client_installs_and_imports_alone(tmp_path: Path) -> None:
    wheel_dir = tmp_path / "wheel"
    build = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*build, "-w", str(wheel_dir), str(ROOT / "client")], check=True, timeout=120)
    (wheel,) = wheel_dir.glob("kubetasks_client-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        requires = [
            line.split(":", 1)[1].split(">")[0].strip()
            for line in archive.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]
        assert "kubetasks_client/py.typed" in archive.namelist()
        entry_points = next(n for n in archive.namelist() if n.endswith("entry_points.txt"))
        assert "kubetasks = kubetasks_client.cli:main" in archive.read(entry_points).decode()
    # Click and Rich for the command line that comes with it (docs/cli.md).
    assert sorted(requires) == ["click", "httpx", "pydantic", "rich"]
    # Imported from the wheel alone: nothing of the service comes along.
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(wheel)!r})\n"
        "import kubetasks_client\n"
        "assert kubetasks_client.__file__.startswith(sys.path[0]), kubetasks_client.__file__\n"
        "service = {'api', 'worker', 'contracts', 'kubetasks', 'devstack', 'scheduler', 'celery'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in service))\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
