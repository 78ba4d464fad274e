"""Submit, follow and read tasks through real HTTP, run by a real prefork worker."""

from __future__ import annotations

import base64
import io
import random
import statistics
from datetime import datetime, timedelta

import httpx
from PIL import Image

from tests.helpers import ApiClient
from worker.catalogue import specs
from worker.lifecycle import backoff_seconds

TASKS = specs()


def test_seed_client_submits_by_type_and_reads_celery_fields(api: ApiClient) -> None:
    response = api.post("/tasks", json={"type": 0})
    assert response.status_code == 202
    task_id = response.json()["task_id"]
    assert response.headers["location"].endswith(f"/tasks/{task_id}")

    view = api.wait_task(task_id, timeout=20)
    assert view["task_id"] == task_id
    assert view["task_status"] == "SUCCESS"
    assert view["task_result"] is True


def test_sleep_reports_progress_then_succeeds(api: ApiClient) -> None:
    task_id = api.submit("sleep", {"seconds": 2, "note": "hello"})
    running = api.wait_task(task_id, lambda t: t["state"] == "STARTED" and t["progress"])
    assert running["progress"]["total"] == 2
    assert running["started_at"] is not None

    done = api.wait_task(task_id)
    assert done["state"] == "SUCCESS"
    assert done["result"] == "hello"
    assert done["progress"] == {"current": 2, "total": 2, "message": "done"}
    assert done["attempts"] == 1
    assert done["submitted_at"] <= done["started_at"] <= done["finished_at"]


def test_same_idempotency_key_gives_same_task_and_one_run(api: ApiClient) -> None:
    body = {"name": "sleep", "args": {"seconds": 0.2}, "idempotency_key": "order-42"}
    first = api.post("/tasks", json=body)
    second = api.post("/tasks", json=body)
    assert first.status_code == second.status_code == 202
    assert first.json()["created"] is True
    assert second.json()["created"] is False
    assert first.json()["task_id"] == second.json()["task_id"]
    done = api.wait_task(first.json()["task_id"])
    assert done["state"] == "SUCCESS"
    assert done["attempts"] == 1


def test_transient_failures_are_retried_with_backoff(api: ApiClient) -> None:
    task_id = api.submit("flaky", {"failures": 2})
    done = api.wait_task(task_id, timeout=30)
    assert done["state"] == "SUCCESS", done
    assert done["retries"] == 2
    assert done["attempts"] == 3
    assert done["result"] == {"succeeded_after_retries": 2}


def test_backoff_delays_grow_to_their_cap_and_spread_over_the_whole_window() -> None:
    """Exponential backoff with full jitter: retry n waits uniformly in [0, min(cap, base*2^n)],
    so a burst of failures spreads out instead of retrying in step."""
    spec = TASKS["flaky"]
    assert spec.retry is not None
    random.seed(7)
    ceilings = []
    for retries in range(8):
        ceiling = min(spec.retry.backoff_max_seconds, spec.retry.backoff_seconds * 2**retries)
        delays = [backoff_seconds(spec, retries) for _ in range(2000)]
        assert all(0 <= d <= ceiling for d in delays)
        assert min(delays) < 0.02 * ceiling and max(delays) > 0.98 * ceiling
        assert 0.45 * ceiling < statistics.fmean(delays) < 0.55 * ceiling
        ceilings.append(ceiling)
    assert ceilings == [1, 2, 4, 8, 16, 30, 30, 30]  # doubling, then the policy's cap


def test_a_retry_is_due_within_its_backoff_window_and_starts_when_due(api: ApiClient) -> None:
    done = api.wait_task(api.submit("flaky", {"failures": 1}))
    assert (done["state"], done["retries"]) == ("SUCCESS", 1)
    submitted, due, started = (
        datetime.fromisoformat(done[k]) for k in ("submitted_at", "due_at", "started_at")
    )
    # The first attempt starts at once and fails; retry 0 waits at most backoff_seconds (1 s).
    assert timedelta(0) <= due - submitted <= timedelta(seconds=1.5)
    # The mover queues it when due (every 0.2 s in these tests), and it starts.
    assert timedelta(0) <= started - due <= timedelta(seconds=1)


def test_failure_reports_type_and_message_without_traceback(api: ApiClient) -> None:
    task_id = api.submit("thumbnail", {"image_base64": base64.b64encode(b"not an image").decode()})
    done = api.wait_task(task_id)
    assert done["state"] == "FAILURE"
    assert done["error"]["type"] == "BadImage"
    assert "not a readable image" in done["error"]["message"]
    assert done["error"]["traceback"] is None
    assert done["task_result"] == done["error"]["message"]


def test_thumbnail_resizes_a_real_image(api: ApiClient) -> None:
    source = io.BytesIO()
    Image.new("RGB", (640, 320), "orange").save(source, format="PNG")
    task_id = api.submit(
        "thumbnail",
        {"image_base64": base64.b64encode(source.getvalue()).decode(), "max_size": 64},
    )
    done = api.wait_task(task_id)
    assert done["state"] == "SUCCESS", done
    assert done["result"]["original_size"] == [640, 320]
    thumb = Image.open(io.BytesIO(base64.b64decode(done["result"]["image_base64"])))
    assert thumb.size == (64, 32)


def test_countdown_delays_the_start(api: ApiClient) -> None:
    task_id = api.submit("sleep", {"seconds": 0}, countdown=1.5)
    waiting = api.task(task_id)
    assert waiting["state"] == "PENDING"
    assert waiting["due_at"] is not None
    done = api.wait_task(task_id)
    assert done["state"] == "SUCCESS"
    assert done["started_at"] >= waiting["due_at"]


def test_unknown_task_id_is_404(api: ApiClient) -> None:
    response = api.get("/tasks/0123456789abcdef0123456789abcdef")
    assert response.status_code == 404
    assert response.json()["error"] == "task_not_found"


def test_events_stream_state_changes_until_terminal(api: ApiClient) -> None:
    task_id = api.submit("sleep", {"seconds": 1.5})
    states: list[str] = []
    with api.stream("GET", f"/tasks/{task_id}/events", timeout=20) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                states.append(httpx.Response(200, content=line[6:]).json()["state"])
    assert states[-1] == "SUCCESS"
    assert "STARTED" in states
    assert len(states) >= 3  # at least the start, one progress step and the end


def test_listing_is_newest_first_filtered_and_paginated(api: ApiClient) -> None:
    ids = [api.submit("sleep", {"seconds": 0}, countdown=600) for _ in range(5)]
    page = api.get("/tasks", params={"name": "sleep", "state": "PENDING", "limit": 2}).json()
    assert [t["task_id"] for t in page["items"]] == ids[::-1][:2]
    seen = [t["task_id"] for t in page["items"]]
    while page["next_cursor"] and len(seen) < 5:
        page = api.get(
            "/tasks",
            params={"name": "sleep", "state": "PENDING", "limit": 2, "cursor": page["next_cursor"]},
        ).json()
        seen += [t["task_id"] for t in page["items"]]
    assert seen[:5] == ids[::-1]
    for task_id in ids:
        assert api.delete(f"/tasks/{task_id}").status_code == 200
    revoked = api.get("/tasks", params={"state": "REVOKED", "limit": 200}).json()["items"]
    assert set(ids) <= {t["task_id"] for t in revoked}
