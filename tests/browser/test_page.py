"""The web page at `/`, driven in a real Chromium against a real API, worker and Redis."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Request,
    Route,
    expect,
    sync_playwright,
)

from devstack.processes import Stack
from tests.helpers import ApiClient, wait_for
from tests.tooling import require_binary

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
LOCAL_HOSTS = {"127.0.0.1"}
XSS = '<img src=x onerror="window.__xss=1">'
MS = 1000
# What the page may request about one task: its record, or its own event stream.
ONE_TASK_PATH = re.compile(r"/tasks/[^/]+(/events)?")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = require_binary("chromium", "apt-get install -y chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page_errors() -> list[str]:
    """Script errors and console errors of `page`; a test may drop the ones it expects."""
    return []


@pytest.fixture
def page(browser: Browser, stack: Stack, page_errors: list[str]) -> Iterator[Page]:
    """A fresh page on the stack; fails the test on any script or console error in the page."""
    context = browser.new_context(base_url=stack.api_url)
    opened = context.new_page()
    errors = page_errors
    opened.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and "favicon" not in message.text:
            errors.append(f"console: {message.text}")

    opened.on("console", on_console)
    try:
        yield opened
    finally:
        context.close()
    assert not errors, errors


def submit_from_page(page: Page, testid: str) -> str:
    with page.expect_response(
        lambda r: r.request.method == "POST" and urlsplit(r.url).path == "/tasks"
    ) as info:
        page.get_by_test_id(testid).click()
    response = info.value
    assert response.status == 202, response.text()
    task_id: str = response.json()["task_id"]
    return task_id


def progress_value(page: Page, task_id: str) -> float:
    value: float = page.eval_on_selector(
        f'tr[data-task-id="{task_id}"] [data-field="progress"] progress', "bar => bar.value"
    )
    return value


def open_page(page: Page) -> None:
    page.goto("/")
    expect(page.get_by_test_id("tasks-body")).to_have_attribute("data-loaded", "true")


def test_short_task_gets_one_row_that_progresses_to_success(page: Page) -> None:
    open_page(page)
    task_id = submit_from_page(page, "submit-short")
    selector = f'tr[data-task-id="{task_id}"]'
    row = page.locator(selector)
    expect(row).to_have_count(1)

    state = row.locator('[data-field="state"]')
    expect(state).to_have_text("STARTED", timeout=15 * MS)
    expect(row).to_have_attribute("data-follow", "stream")  # Server-Sent Events, not polling
    page.wait_for_function(
        "sel => document.querySelector(sel + ' progress').value >= 1",
        arg=selector,
        timeout=10 * MS,
    )
    first = progress_value(page, task_id)
    expect(row).to_have_count(1)
    page.wait_for_function(
        "([sel, before]) => document.querySelector(sel + ' progress').value > before",
        arg=[selector, first],
        timeout=10 * MS,
    )
    assert progress_value(page, task_id) > first
    expect(row).to_have_count(1)

    expect(state).to_have_text("SUCCESS", timeout=25 * MS)
    expect(row).to_have_count(1)
    bar = row.locator("progress")
    assert bar.evaluate("b => b.value === b.max")
    expect(row.get_by_test_id("cancel")).to_be_disabled()
    expect(row.locator('[data-field="result"]')).to_have_text("true")


def test_result_with_markup_is_shown_as_text(page: Page, api: ApiClient) -> None:
    task_id = api.submit("sleep", {"seconds": 0, "note": XSS})
    view = api.wait_task(task_id, {"SUCCESS"}, timeout=20)
    assert view["result"] == XSS

    open_page(page)
    row = page.locator(f'tr[data-task-id="{task_id}"]')
    expect(row).to_have_count(1)
    expect(row.locator('[data-field="state"]')).to_have_text("SUCCESS")
    result = row.locator('[data-field="result"]')
    assert result.text_content() == XSS
    assert page.locator("table img").count() == 0
    assert page.locator("img").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"


def test_the_page_lists_schedules_with_their_next_run(page: Page, api: ApiClient) -> None:
    nightly = {
        "name": "nightly-report", "task": "sleep", "args": {"seconds": 0},
        "cron": "30 2 * * *", "timezone": "Europe/Berlin",
    }  # fmt: skip
    assert api.post("/schedules", json=nightly).status_code == 201
    try:
        open_page(page)
        row = page.locator('#schedules-body tr[data-schedule="nightly-report"]')
        expect(row).to_have_count(1)
        expect(row).to_contain_text("cron 30 2 * * * (Europe/Berlin)")
        next_run = api.get("/schedules/nightly-report").json()["next_run_at"]
        shown = row.locator('[data-field="next"]').text_content() or ""
        assert shown == page.evaluate("(iso) => new Date(iso).toLocaleString()", next_run)
        expect(page.locator('[data-testid="schedules-empty"]')).to_be_hidden()
    finally:
        api.delete("/schedules/nightly-report")


def test_the_page_shows_a_workflows_steps_by_level_until_it_succeeds(
    page: Page, api: ApiClient
) -> None:
    def plus(b: int) -> dict[str, Any]:
        """An `add` step that takes the previous step's result as `a`."""
        return {"task": "add", "args": {"b": b}, "input": "a"}

    # 1 + 2, + 3, then 7, 8 and 9 side by side, totalled: 24.
    chord = {"chord": [plus(1), plus(2), plus(3)], "then": {"task": "total", "input": "numbers"}}
    body = {"chain": [{"task": "add", "args": {"a": 1, "b": 2}}, plus(3), chord]}
    open_page(page)
    # Submitted after the page loaded: it shows up through the page's own refresh.
    response = api.post("/workflows", json=body)
    assert response.status_code == 202, response.text
    workflow_id = response.json()["workflow_id"]

    item = page.locator(f'[data-testid="workflows-list"] li[data-workflow-id="{workflow_id}"]')
    expect(item).to_have_count(1, timeout=10 * MS)
    item.locator("summary").click()
    steps = item.locator("li[data-step]")
    expect(steps).to_have_count(6)
    expect(steps.locator('[data-field="name"]')).to_have_text(["add"] * 5 + ["total"])
    levels = steps.evaluate_all(
        "steps => steps.map(s => Number(s.closest('[data-level]').dataset.level))"
    )
    assert levels == [1, 2, 3, 3, 3, 4]  # the callback a level after its members
    expect(item.locator('li[data-level="4"] .level-name')).to_have_text("Level 4")
    expect(steps.nth(5).locator('[data-field="after"]')).to_have_text("after #2, #3, #4")

    state = item.locator('summary [data-field="state"]')
    expect(state).to_have_text("SUCCESS", timeout=30 * MS)
    expect(state).to_have_attribute("data-state", "SUCCESS")
    expect(steps.locator('[data-field="state"]')).to_have_text(["SUCCESS"] * 6)
    expect(item.locator('[data-field="counts"]')).to_have_text("6 steps: 6 SUCCESS")
    expect(item.locator('[data-field="result"]')).to_have_text("Result: 24")
    expect(page.get_by_test_id("workflows-empty")).to_be_hidden()


def test_cancel_from_the_page_revokes_the_task(page: Page, api: ApiClient) -> None:
    open_page(page)
    task_id = submit_from_page(page, "submit-long")
    row = page.locator(f'tr[data-task-id="{task_id}"]')
    state = row.locator('[data-field="state"]')
    expect(state).to_have_text("STARTED", timeout=15 * MS)

    cancel = row.get_by_test_id("cancel")
    expect(cancel).to_be_enabled()
    cancel.click()
    expect(state).to_have_text("REVOKED", timeout=15 * MS)
    expect(cancel).to_be_disabled()
    expect(row).to_have_count(1)
    expect(page.get_by_test_id("status")).to_contain_text("Cancelled")

    # The worker lets go of the task, and the record stays REVOKED afterwards.
    wait_for(lambda: api.queue("default")["in_flight"] == 0, 20, "the worker to drop the task")
    assert api.task(task_id)["state"] == "REVOKED"


def test_page_loads_nothing_from_outside_this_host(page: Page) -> None:
    requested: list[str] = []
    blocked: list[str] = []

    def on_request(request: Request) -> None:
        requested.append(request.url)

    def only_local(route: Route) -> None:
        parts = urlsplit(route.request.url)
        if parts.scheme in ("http", "https") and parts.hostname not in LOCAL_HOSTS:
            blocked.append(route.request.url)
            route.abort("internetdisconnected")
        else:
            route.continue_()

    page.on("request", on_request)
    page.route("**/*", only_local)
    open_page(page)
    # Two polls of the queues panel: the page is up and running, not just parsed.
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=queues]').dataset.polls) >= 2",
        timeout=10 * MS,
    )
    expect(page.locator('#queues-body tr[data-queue="default"]')).to_have_count(1)

    outside = [
        url
        for url in requested
        if urlsplit(url).scheme not in ("data", "blob")
        and urlsplit(url).hostname not in LOCAL_HOSTS
    ]
    assert not outside, outside
    assert not blocked, blocked
    paths = {urlsplit(url).path for url in requested}
    assert {"/", "/static/app.js", "/static/style.css", "/tasks", "/queues"} <= paths, paths


def test_follows_by_polling_when_the_event_stream_fails(
    page: Page, api: ApiClient, page_errors: list[str]
) -> None:
    page.route(lambda url: urlsplit(url).path == "/events", lambda route: route.abort("failed"))
    task_id = api.submit("sleep", {"seconds": 4})
    api.wait_task(task_id, {"STARTED"}, timeout=15)

    open_page(page)
    row = page.locator(f'tr[data-task-id="{task_id}"]')
    expect(row).to_have_attribute("data-follow", "poll")
    expect(page.get_by_test_id("tasks-body")).to_have_attribute("data-stream", "failed")
    expect(row.locator('[data-field="state"]')).to_have_text("SUCCESS", timeout=15 * MS)
    expect(row).to_have_count(1)
    # Chromium logs each aborted stream request; nothing else may fail.
    page_errors[:] = [e for e in page_errors if "net::ERR_FAILED" not in e]


def test_the_stream_is_tried_again_and_then_replaces_polling(
    page: Page, api: ApiClient, page_errors: list[str]
) -> None:
    def is_events(url: str) -> bool:
        return urlsplit(url).path == "/events"

    def fail(route: Route) -> None:
        route.abort("failed")

    page.route(is_events, fail)
    task_id = api.submit("sleep", {"seconds": 40})
    try:
        api.wait_task(task_id, {"STARTED"}, timeout=15)
        open_page(page)
        row = page.locator(f'tr[data-task-id="{task_id}"]')
        tasks = page.get_by_test_id("tasks-body")
        expect(row).to_have_attribute("data-follow", "poll")
        expect(tasks).to_have_attribute("data-stream", "failed")

        polls: list[str] = []
        page.on(
            "request",
            lambda request: (
                polls.append(request.url)
                if ONE_TASK_PATH.fullmatch(urlsplit(request.url).path)
                else None
            ),
        )
        page.unroute(is_events, fail)
        # STREAM_RETRY_MS (15 s) after the failure, the stream is tried again, and works.
        expect(tasks).to_have_attribute("data-stream", "open", timeout=20 * MS)
        expect(row).to_have_attribute("data-follow", "stream")
        assert polls, "the page did not poll while the stream was down"

        # The progress moves on (a report a second) with no poll (one a second) any more.
        selector = f'tr[data-task-id="{task_id}"] progress'
        before = progress_value(page, task_id)
        page.wait_for_function(
            "([sel, v]) => document.querySelector(sel).value >= v + 1",
            arg=[selector, before],
            timeout=10 * MS,
        )
        polled = len(polls)
        after = progress_value(page, task_id)
        page.wait_for_function(
            "([sel, v]) => document.querySelector(sel).value >= v + 2",
            arg=[selector, after],
            timeout=10 * MS,
        )
        assert len(polls) == polled, polls[polled:]
    finally:
        api.post(f"/tasks/{task_id}/cancel")
    # Chromium logs each aborted stream request; nothing else may fail.
    page_errors[:] = [e for e in page_errors if "net::ERR_FAILED" not in e]


def test_api_key_is_asked_for_and_sent(browser: Browser, make_stack: Callable[..., Stack]) -> None:
    private = make_stack(api_key="s3cret-key")
    private.start_redis()
    private.start_api()
    context = browser.new_context(base_url=private.api_url)
    try:
        page = context.new_page()
        page.goto("/")
        status = page.get_by_test_id("status")
        expect(status).to_contain_text("missing X-API-Key header")
        expect(status).to_contain_text("401")
        expect(status).to_have_attribute("data-kind", "error")

        page.get_by_test_id("api-key").fill("wrong")
        page.get_by_test_id("api-key-save").click()
        expect(status).to_contain_text("does not match", timeout=5 * MS)
        expect(status).to_contain_text("403")

        with page.expect_request(lambda r: urlsplit(r.url).path == "/queues") as sent:
            page.get_by_test_id("api-key").fill("s3cret-key")
            page.get_by_test_id("api-key-save").click()
        expect(status).not_to_have_attribute("data-kind", "error", timeout=5 * MS)
        assert sent.value.headers.get("x-api-key") == "s3cret-key"
        expect(page.get_by_test_id("tasks-body")).to_have_attribute("data-loaded", "true")

        page.reload()  # the key survives in localStorage
        expect(page.get_by_test_id("api-key")).to_have_value("s3cret-key")
        expect(page.get_by_test_id("tasks-body")).to_have_attribute("data-loaded", "true")
        expect(status).not_to_have_attribute("data-kind", "error")
    finally:
        context.close()


def test_fifty_tasks_are_followed_through_one_stream_without_polling(page: Page) -> None:
    """50 tasks submitted from the page in a burst: all reach SUCCESS through one event stream
    (GET /events?ids=...), with no request about any one task. The rows are the page's own:
    it lists the tasks it loaded at start and the ones submitted from it. Its buttons submit
    sleeps of 10 to 30 s, so each POST body is swapped for a sleep of 0.5 to 2 s here."""
    sleeps = [(0.5, 0.8, 1.2, 2.0)[i % 4] for i in range(50)]
    submits: list[float] = []

    def short_sleep(route: Route) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        seconds = sleeps[len(submits)]
        submits.append(seconds)
        body = {"name": "sleep", "args": {"seconds": seconds}}
        route.continue_(post_data=json.dumps(body))

    requested: list[str] = []
    page.on("request", lambda request: requested.append(urlsplit(request.url).path))
    page.route(lambda url: urlsplit(url).path == "/tasks", short_sleep)
    open_page(page)
    before = set(
        page.eval_on_selector_all("tr[data-task-id]", "rows => rows.map(r => r.dataset.taskId)")
    )

    # One submit after another on each of the three buttons (each is disabled while its
    # request is out), as fast as the page takes them.
    page.evaluate(
        """async (n) => {
            const buttons = [...document.querySelectorAll("button[data-type]")];
            for (let i = 0; i < n; i += 1) {
                const button = buttons[i % buttons.length];
                while (button.disabled) await new Promise((resolve) => setTimeout(resolve, 5));
                button.click();
            }
        }""",
        len(sleeps),
    )
    rows = page.locator("tr[data-task-id]")
    expect(rows).to_have_count(len(before) + len(sleeps), timeout=20 * MS)
    assert len(submits) == len(sleeps)
    ids = [
        i for i in rows.evaluate_all("rows => rows.map(r => r.dataset.taskId)") if i not in before
    ]
    assert len(ids) == len(sleeps)

    page.wait_for_function(
        """ids => ids.every(
            (id) => document.querySelector(`tr[data-task-id="${id}"]`).dataset.state === "SUCCESS"
        )""",
        arg=ids,
        timeout=120 * MS,
    )
    # Every one of them ended, so the server ended the stream.
    expect(page.get_by_test_id("tasks-body")).to_have_attribute("data-stream", "", timeout=10 * MS)
    for task_id in ids:
        row = page.locator(f'tr[data-task-id="{task_id}"]')
        expect(row.locator('[data-field="result"]')).to_have_text("true")
        expect(row.get_by_test_id("cancel")).to_be_disabled()

    streams = [path for path in requested if path == "/events"]
    assert 1 <= len(streams) <= 3, streams  # one, or a reopen when the burst paused
    per_task = [path for path in requested if ONE_TASK_PATH.fullmatch(path)]
    assert per_task == [], per_task
