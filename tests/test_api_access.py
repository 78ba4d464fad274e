"""Who may call what, and what the API shows, as README.md says: the API key on every route that
changes state or shows task data (the list made from the app's own routes, so a new route is
covered), CORS off unless configured, tracebacks only when configured, the catalogue."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable

import pytest

from api.main import create_app
from contracts.settings import Settings
from devstack.processes import Stack
from tests.conftest import client_for
from tests.helpers import ApiClient
from worker.catalogue import specs

TASKS = specs()

# Routes anyone may call: probes, metrics, the page and its assets, the API's own docs and the
# catalogue (task names and argument schemas, no task data).
PUBLIC = {"/livez", "/readyz", "/metrics", "/catalogue", "/", "/docs", "/redoc", "/openapi.json",
          "/docs/oauth2-redirect"}  # fmt: skip
TASK_ID = "0123456789abcdef0123456789abcdef"


def _guarded_routes() -> list[tuple[str, str]]:
    """Every route of the app's OpenAPI document but the public ones (the routes left out of
    the document, the page and /metrics, are public)."""
    paths = create_app(Settings()).openapi()["paths"]
    return [
        (method.upper(), re.sub(r"{[^}]+}", TASK_ID, path))
        for path, operations in paths.items()
        if path not in PUBLIC
        for method in operations
    ]


def test_every_route_that_shows_or_changes_work_is_guarded() -> None:
    assert set(_guarded_routes()) == {
        ("POST", "/tasks"), ("GET", "/tasks"), ("GET", f"/tasks/{TASK_ID}"),
        ("GET", f"/tasks/{TASK_ID}/args"), ("DELETE", f"/tasks/{TASK_ID}"),
        ("POST", f"/tasks/{TASK_ID}/cancel"),
        ("GET", f"/tasks/{TASK_ID}/events"), ("GET", "/queues"), ("GET", "/deadletters"),
        ("POST", f"/deadletters/{TASK_ID}/requeue"), ("DELETE", f"/deadletters/{TASK_ID}"),
        ("POST", "/schedules"), ("GET", "/schedules"), ("GET", f"/schedules/{TASK_ID}"),
        ("PATCH", f"/schedules/{TASK_ID}"), ("DELETE", f"/schedules/{TASK_ID}"),
        ("POST", "/workflows"), ("GET", "/workflows"), ("GET", f"/workflows/{TASK_ID}"),
        ("GET", f"/workflows/{TASK_ID}/events"), ("POST", f"/workflows/{TASK_ID}/cancel"),
        ("DELETE", f"/workflows/{TASK_ID}"), ("GET", "/events"),
    }  # fmt: skip


@pytest.mark.parametrize(("key", "status"), [(None, 401), ("wrong", 403)], ids=["none", "wrong"])
def test_every_guarded_route_needs_the_api_key(
    make_stack: Callable[..., Stack], key: str | None, status: int
) -> None:
    stack = make_stack(api_key="the-right-key")
    stack.start_redis()
    stack.start_api()
    with client_for(stack, **({"X-API-Key": key} if key else {})) as api:
        for method, path in _guarded_routes():
            response = api.request(method, path, json={"name": "sleep"})
            assert response.status_code == status, (method, path, response.text)
        for path in ("/livez", "/readyz", "/catalogue", "/"):
            assert api.get(path).status_code == 200, path
    with client_for(stack, **{"X-API-Key": "the-right-key"}) as api:
        assert api.get(f"/tasks/{TASK_ID}").status_code == 404  # past the key: not found


def test_cors_is_off_by_default(api: ApiClient) -> None:
    origin = {"Origin": "https://elsewhere.example"}
    preflight = api.options("/tasks", headers={**origin, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code == 405  # no CORS middleware answers it
    read = api.get("/catalogue", headers=origin)
    assert read.status_code == 200 and "access-control-allow-origin" not in read.headers


def test_tracebacks_show_only_when_configured(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(env={"KUBETASKS_SHOW_TRACEBACKS": "true"})
    stack.start_redis()
    stack.start_api()
    stack.start_worker()
    with client_for(stack) as api:
        not_an_image = base64.b64encode(b"not an image").decode()
        failed = api.wait_task(api.submit("thumbnail", {"image_base64": not_an_image}))
    assert failed["state"] == "FAILURE"
    assert failed["error"]["traceback"].startswith("Traceback (most recent call last)")
    assert "BadImage" in failed["error"]["traceback"]


def test_the_catalogue_lists_every_task_as_the_catalogue_defines_it(api: ApiClient) -> None:
    listed = {entry["name"]: entry for entry in api.get("/catalogue").json()}
    assert set(listed) == set(TASKS)
    limits = {"sleep": 30, "primes": 30, "flaky": 20, "thumbnail": 20}  # FAST_ENV's overrides
    for name, spec in TASKS.items():
        assert listed[name] == {
            "name": name,
            "queue": spec.queue,
            "description": spec.description,
            "time_limit_seconds": limits.get(name, spec.time_limit_seconds),
            "max_retries": spec.retry.max_retries if spec.retry else 0,
            "args_schema": spec.args_schema,
        }


def test_a_tasks_arguments_are_read_apart_from_its_view(api: ApiClient) -> None:
    args = {"seconds": 0, "note": "kept"}
    waiting = api.submit("sleep", args, countdown=600)
    assert api.get(f"/tasks/{waiting}/args").json() == {"task_id": waiting, "args": args}
    assert "args" not in api.task(waiting)  # polled and streamed: kept small
    api.post(f"/tasks/{waiting}/cancel")
    assert api.get(f"/tasks/{waiting}/args").json()["args"] == args
    done = api.submit("sleep", args)
    api.wait_task(done, {"SUCCESS"})
    assert api.get(f"/tasks/{done}/args").json()["args"] is None  # a success keeps its result
    assert api.get(f"/tasks/{TASK_ID}/args").json()["error"] == "task_not_found"


def test_the_page_alone_carries_a_content_security_policy(api: ApiClient) -> None:
    policy = api.get("/").headers["content-security-policy"]
    for directive in ("default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"):
        assert directive in policy
    assert "unsafe-inline" not in policy
    for path in ("/catalogue", "/queues", f"/tasks/{TASK_ID}"):
        assert "content-security-policy" not in api.get(path).headers, path
