"""Submits and status reads are answered beneath FastAPI (api/fastlane.py) when the lane can
vouch for the request, and by FastAPI otherwise: both ways must give the same answer."""

from __future__ import annotations

import socket
from collections.abc import Callable

import orjson

from devstack.processes import Stack
from tests.conftest import client_for
from tests.helpers import ApiClient, sample, scrape, wait_for

DURATION_COUNT = "kubetasks_http_request_duration_seconds_count"


def _count(stack: Stack, route: str, method: str) -> float:
    samples = scrape(f"{stack.api_url}/metrics")
    return sample(samples, DURATION_COUNT, route=route, method=method, status_class="2xx")


def test_submit_answers_alike_through_the_lane_and_through_fastapi(
    stack: Stack, api: ApiClient
) -> None:
    body = {"name": "sleep", "args": {"seconds": 0}, "priority": 3}
    counted = _count(stack, "/tasks", "POST")
    lane = api.post("/tasks", json=body)
    # A content type the lane does not take as-is sends the request through FastAPI.
    headers = {"content-type": "application/json; charset=utf-8"}
    routed = api.post("/tasks", content=orjson.dumps(body), headers=headers)
    answers = [lane, routed]
    for response in answers:
        assert response.status_code == 202, response.text
        assert response.headers["content-type"] == "application/json"
        answer = response.json()
        assert answer == {"task_id": answer["task_id"], "state": "PENDING", "created": True}
        assert response.headers["location"] == f"/tasks/{answer['task_id']}"
    assert _count(stack, "/tasks", "POST") == counted + 2
    views = [api.wait_task(r.json()["task_id"]) for r in answers]
    assert [(v["state"], v["priority"]) for v in views] == [("SUCCESS", 3), ("SUCCESS", 3)]


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


def test_cors_requests_get_their_headers_on_the_hot_routes(
    make_stack: Callable[..., Stack],
) -> None:
    origin = "https://app.example"
    stack = make_stack(env={"KUBETASKS_CORS_ORIGINS": f'["{origin}"]'})
    stack.start_redis()
    stack.start_api()
    with client_for(stack, Origin=origin) as api:
        submitted = api.post("/tasks", json={"name": "sleep", "args": {"seconds": 0}})
        assert submitted.status_code == 202, submitted.text
        read = api.get(f"/tasks/{submitted.json()['task_id']}")
        assert read.status_code == 200
    for response in (submitted, read):
        assert response.headers["access-control-allow-origin"] == origin


def test_the_first_of_repeated_api_keys_counts_on_every_route(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(api_key="the-right-key")
    stack.start_redis()
    stack.start_api()
    keys = [("X-API-Key", "wrong"), ("X-API-Key", "the-right-key")]
    with client_for(stack) as api:
        body = {"name": "sleep", "args": {"seconds": 0}}
        assert api.post("/tasks", json=body, headers=keys).status_code == 403
        task_id = api.post("/tasks", json=body, headers=keys[::-1]).json()["task_id"]
        assert api.get(f"/tasks/{task_id}", headers=keys).status_code == 403
        assert api.get(f"/tasks/{task_id}", headers=keys[::-1]).status_code == 200


def test_a_status_read_with_an_oversized_body_is_refused(stack: Stack, api: ApiClient) -> None:
    task_id = api.submit("sleep", {"seconds": 0})
    response = api.request("GET", f"/tasks/{task_id}", content=b"x" * 2_000_000)
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"


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
