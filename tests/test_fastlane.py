"""Submits and status reads are answered beneath FastAPI (api/fastlane.py) when the lane can
vouch for the request, and by FastAPI otherwise: both ways must give the same answer, and the
app must refuse to start when it is not the one the lane was written for."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from devstack.processes import ROOT, Process, Stack, free_port, http_ok, wait_until
from tests.helpers import ApiClient, sample, scrape, wait_for

DURATION_COUNT = "kubetasks_http_request_duration_seconds_count"
LANE_ANSWERS = "kubetasks_api_fast_lane_answers_total"
KEY = "the-right-key"
ORIGIN = "https://app.example"


def serve(stack: Stack, factory: str, *uvicorn_args: str) -> tuple[Process, str]:
    """uvicorn for an app factory (module:function) with the stack's environment; its URL."""
    port = free_port()
    stack.workdir.mkdir(parents=True, exist_ok=True)
    log = stack.workdir / f"api-{port}.log"
    argv = [
        sys.executable, "-m", "uvicorn", factory, "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log", *uvicorn_args,
    ]  # fmt: skip
    with log.open("ab") as out:
        popen = subprocess.Popen(argv, cwd=ROOT, env=stack.env(), stdout=out, stderr=out)
    process = Process("api", popen, log)
    stack.processes.append(process)
    return process, f"http://127.0.0.1:{port}"


def start(stack: Stack, factory: str, *uvicorn_args: str) -> str:
    process, url = serve(stack, factory, *uvicorn_args)
    wait_until(lambda: http_ok(f"{url}/livez") or not process.alive(), 20, f"{factory} up")
    assert process.alive(), process.output()[-3000:]
    return url


def _count(stack: Stack, route: str, method: str) -> float:
    samples = scrape(f"{stack.api_url}/metrics")
    return sample(samples, DURATION_COUNT, route=route, method=method, status_class="2xx")


def test_a_status_read_matches_the_listing_and_is_counted_under_its_route(
    stack: Stack, api: ApiClient
) -> None:
    task_id = api.submit("primes", {"limit": 100})
    api.wait_task(task_id)
    counted = _count(stack, "/tasks/{task_id}", "GET")
    read = api.get(f"/tasks/{task_id}")
    assert read.status_code == 200
    listed = api.get("/tasks", params={"name": "primes", "limit": 200}).json()["items"]
    assert read.json() == next(item for item in listed if item["task_id"] == task_id)
    assert _count(stack, "/tasks/{task_id}", "GET") == counted + 1


def test_a_client_leaving_mid_body_is_not_counted_as_a_server_error(stack: Stack) -> None:
    def counts() -> tuple[float, float]:
        samples = scrape(f"{stack.api_url}/metrics")
        left = sample(samples, DURATION_COUNT, route="/tasks", method="POST", status_class="4xx")
        return left, sample(samples, DURATION_COUNT, status_class="5xx")

    before_4xx, before_5xx = counts()
    with socket.create_connection(("127.0.0.1", stack.api_port), timeout=5) as raw:
        raw.sendall(
            b"POST /tasks HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n" + b'{"name": "sleep"'
        )
    wait_for(lambda: counts()[0] == before_4xx + 1, 10, "the abandoned submit to be counted")
    assert counts()[1] == before_5xx


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    lane: bool  # the lane answers it; else FastAPI does, or a middleware around both
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | list[bytes] = b""  # a list is sent chunked
    keys: tuple[str, ...] = (KEY,)  # X-API-Key headers, in order


JSON = (("content-type", "application/json"),)
CHARSET = (("content-type", "application/json; charset=utf-8"),)
TEXT = (("content-type", "text/plain"),)
GOOD = b'{"name": "sleep", "args": {"seconds": 0}, "priority": 3}'
PRIMES = b'{"name": "primes", "args": {"limit": 100}}'  # its queue takes none on this stack
BIG = b'{"name": "sleep", "args": {"note": "' + b"x" * 2_000_000 + b'"}}'


def _chunks(body: bytes) -> list[bytes]:
    return [body[i : i + 65536] for i in range(0, len(body), 65536)]


def cases(task_id: str) -> list[Case]:
    read = f"/tasks/{task_id}"
    return [
        Case("submit", "POST", "/tasks", True, JSON, GOOD),
        Case("submit the seed's body", "POST", "/tasks", True, JSON, b'{"type": 0}'),
        Case("submit chunked", "POST", "/tasks", True, JSON, _chunks(GOOD)),
        Case("submit an unknown task", "POST", "/tasks", True, JSON, b'{"name": "nope"}'),
        Case("submit to a full queue", "POST", "/tasks", True, JSON, PRIMES),
        Case("submit with CORS", "POST", "/tasks", True, (*JSON, ("origin", ORIGIN)), GOOD),
        Case("submit over the limit, chunked", "POST", "/tasks", True, JSON, _chunks(BIG)),
        Case("submit over the limit", "POST", "/tasks", False, JSON, BIG),
        Case("submit with a charset", "POST", "/tasks", False, CHARSET, GOOD),
        Case("submit as text/plain", "POST", "/tasks", False, TEXT, GOOD),
        Case("submit bad JSON", "POST", "/tasks", False, JSON, b"{not json"),
        Case("submit bytes that are not UTF-8", "POST", "/tasks", False, JSON, b"\xff\xfe"),
        Case("submit no body", "POST", "/tasks", False, JSON),
        Case("submit what does not validate", "POST", "/tasks", False, JSON, b'{"type": 9}'),
        Case("submit without a key", "POST", "/tasks", False, JSON, GOOD, ()),
        Case("submit with a wrong key", "POST", "/tasks", False, JSON, GOOD, ("wrong",)),
        Case("submit, wrong key first", "POST", "/tasks", False, JSON, GOOD, ("wrong", KEY)),
        Case("read", "GET", read, True),
        Case("read, right key first", "GET", read, True, keys=(KEY, "wrong")),
        Case("read with CORS", "GET", read, True, (("origin", ORIGIN),)),
        Case("read an unknown id", "GET", "/tasks/" + "f" * 32, True),
        Case("read a long id", "GET", "/tasks/" + "f" * 100, True),
        Case("read with a body", "GET", read, True, JSON, b'{"type": 0}'),
        Case("read with a body over the limit", "GET", read, False, JSON, BIG),
        Case("read without a key", "GET", read, False, keys=()),
        Case("read with a wrong key", "GET", read, False, keys=("wrong",)),
        Case("read with a trailing slash", "GET", read + "/", False),
        Case("read below a task", "GET", read + "/nothing", False),
        Case("HEAD of a task", "HEAD", read, False),
        Case(
            "CORS preflight",
            "OPTIONS",
            "/tasks",
            False,
            (("origin", ORIGIN), ("access-control-request-method", "POST")),
        ),
    ]


def _answer(base: str, case: Case) -> tuple[int, dict[str, str], str, float]:
    """Status, headers and body with what differs between the servers masked (their address;
    two submits make two tasks), and how many of the server's answers the lane gave by then."""
    headers = [*case.headers, *(("X-API-Key", k) for k in case.keys)]
    content = iter(case.body) if isinstance(case.body, list) else case.body
    response = httpx.request(case.method, base + case.path, headers=headers, content=content)

    def mask(text: str) -> str:
        return re.sub(r"\b[0-9a-f]{32}\b", "<task id>", text.replace(base, "<server>"))

    masked = {k: mask(v) for k, v in response.headers.items() if k != "date"}
    lane = sample(scrape(f"{base}/metrics"), LANE_ANSWERS)
    return response.status_code, masked, mask(response.text), lane


@pytest.mark.parametrize("root_path", ["", "/kubetasks"])
def test_one_table_of_requests_gets_the_same_answers_with_and_without_the_lane(
    make_stack: Callable[..., Stack], root_path: str
) -> None:
    stack = make_stack(
        api_key=KEY,
        env={
            "KUBETASKS_CORS_ORIGINS": f'["{ORIGIN}"]',
            "KUBETASKS_QUEUE_MAX_BACKLOG": '{"cpu": 0}',
        },
    )
    stack.start_redis()
    stack.publish_catalogue()
    uvicorn_args = ("--root-path", root_path) if root_path else ()
    with_lane = start(stack, "api.main:create_app", *uvicorn_args)
    without = start(stack, "tests.fastlane_apps:without_the_lane", *uvicorn_args)
    submitted = httpx.post(f"{with_lane}/tasks", json={"type": 0}, headers={"X-API-Key": KEY})
    assert submitted.headers["location"] == f"{root_path}/tasks/{submitted.json()['task_id']}"
    table = cases(submitted.json()["task_id"])
    answered_before = sample(scrape(f"{with_lane}/metrics"), LANE_ANSWERS)
    for case in table:
        *lane_answer, answered = _answer(with_lane, case)
        *fastapi_answer, never = _answer(without, case)
        assert lane_answer == fastapi_answer, case.name
        assert answered == answered_before + case.lane, case.name
        assert never == 0
        answered_before = answered
    assert {c.lane for c in table} == {True, False}


@pytest.mark.parametrize(
    ("factory", "named"),
    [
        ("with_another_middleware", "GZipMiddleware"),
        ("with_another_dependency_on_the_read_route", "audit()"),
        ("with_the_store_overridden", "overridden dependencies get_store"),
        ("with_another_exception_handler", "TaskNotFound"),
    ],
)
def test_the_app_refuses_to_start_unless_it_is_the_one_the_lane_was_written_for(
    make_stack: Callable[..., Stack], factory: str, named: str
) -> None:
    stack = make_stack()
    process, _ = serve(stack, f"tests.fastlane_apps:{factory}")
    assert process.popen.wait(timeout=30) == 3  # uvicorn's exit code for a failed start-up
    output = process.output()
    assert "the fast lane (api/fastlane.py) was not written for this app" in output
    assert named in output
