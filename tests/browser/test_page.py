"""The web page at `/`, driven in a real Chromium against a real API, worker and Redis."""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from PIL import Image
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Locator,
    Page,
    Request,
    Response,
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
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "page.png"
# Records every Content-Security-Policy violation in the page, before any of its own scripts.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
    window.__violations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


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


def drop_errors(page_errors: list[str], expected: str) -> None:
    """Chromium logs every answer it gets that is not 2xx; a test drops those it asked for."""
    page_errors[:] = [e for e in page_errors if expected not in e]


def choose_task(page: Page, name: str) -> None:
    """Pick a task in the form, once the catalogue is there, and wait for its fields."""
    expect(page.locator(f'#task-name option[value="{name}"]')).to_have_count(1)
    page.get_by_test_id("task-name").select_option(name)
    expect(page.locator('#task-args [data-path^="args."]').first).to_be_attached()


def field(page: Page, path: str) -> Locator:
    return page.locator(f'.field[data-path="{path}"]')


def submit_form(page: Page) -> Response:
    with page.expect_response(
        lambda r: r.request.method == "POST" and urlsplit(r.url).path == "/tasks"
    ) as info:
        page.get_by_test_id("task-submit").click()
    return info.value


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (31, 111, 235)).save(out, format="PNG")
    return out.getvalue()


def test_the_form_shows_the_apis_message_beside_its_field_then_submits(
    page: Page, api: ApiClient, page_errors: list[str]
) -> None:
    open_page(page)
    choose_task(page, "sleep")
    seconds = field(page, "args.seconds").locator("input")
    expect(seconds).to_have_attribute("type", "number")
    expect(seconds).to_have_attribute("min", "0")
    expect(seconds).to_have_attribute("max", "600")
    expect(field(page, "args.note").locator("input")).to_have_value("")  # its default
    expect(field(page, "priority").locator("input")).to_have_value("0")

    seconds.fill("601")  # over the maximum: the API, not the browser, says so
    assert submit_form(page).status == 422
    said = api.post("/tasks", json={"name": "sleep", "args": {"seconds": 601}}).json()
    message = next(f["message"] for f in said["fields"] if f["field"] == "args.seconds")
    error = field(page, "args.seconds").get_by_test_id("field-error")
    expect(error).to_have_text(message)
    expect(seconds).to_have_attribute("aria-invalid", "true")
    expect(field(page, "args.note").get_by_test_id("field-error")).to_be_hidden()
    drop_errors(page_errors, "status of 422")

    seconds.fill("0.5")
    field(page, "args.note").locator("input").fill(XSS)
    response = submit_form(page)
    assert response.status == 202, response.text()
    task_id = response.json()["task_id"]
    expect(error).to_be_hidden()
    expect(page.locator(f'tr[data-task-id="{task_id}"]')).to_have_count(1)
    output = page.get_by_test_id("form-output")
    expect(output).to_have_attribute("data-state", "SUCCESS", timeout=15 * MS)
    expect(output).to_contain_text(XSS)
    assert api.task(task_id)["result"] == XSS
    assert page.evaluate("typeof window.__xss") == "undefined"


# A task of every kind of argument the form knows, for the form alone (the API never sees it).
ANY_SCHEMA_TASK = {
    "name": "kinds",
    "queue": "default",
    "description": "Every kind of argument.",
    "time_limit_seconds": 5,
    "max_retries": 0,
    "args_schema": {
        "$defs": {"Colour": {"enum": ["red", "green"], "type": "string"}},
        "additionalProperties": False,
        "properties": {
            "count": {"type": "integer", "minimum": 1, "maximum": 9, "default": 3},
            "ratio": {"anyOf": [{"type": "number"}, {"type": "null"}], "default": None},
            "fast": {"type": "boolean", "default": True},
            "colour": {"$ref": "#/$defs/Colour", "default": "green"},
            "tags": {"type": "array", "items": {"type": "string"}, "default": ["a"]},
            "label": {"type": "string"},
            "data_base64": {"type": "string"},
        },
        "required": ["label"],
        "type": "object",
    },
}


def test_the_form_is_built_from_any_schema_and_sends_what_it_shows(
    page: Page, page_errors: list[str]
) -> None:
    page.route(
        lambda url: urlsplit(url).path == "/catalogue",
        lambda route: route.fulfill(json=[ANY_SCHEMA_TASK]),
    )
    sent: list[Any] = []

    def refuse(route: Route) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        sent.append(route.request.post_data_json)
        problems = [
            {"field": "args.tags.1", "message": "not a string"},
            {"field": "args.label", "message": "too short"},
            {"field": "queue", "message": "unknown queue"},
        ]
        body = {"error": "invalid_request", "message": "...", "fields": problems}
        route.fulfill(status=422, json=body)

    page.route(lambda url: urlsplit(url).path == "/tasks", refuse)
    open_page(page)
    choose_task(page, "kinds")
    count = field(page, "args.count").locator("input")
    expect(count).to_have_value("3")
    expect(count).to_have_attribute("step", "1")
    expect(count).to_have_attribute("max", "9")
    expect(field(page, "args.ratio").locator("input")).to_have_attribute("step", "any")
    expect(field(page, "args.fast").locator("input")).to_be_checked()
    colour = field(page, "args.colour").locator("select")
    expect(colour.locator("option")).to_have_text(["red", "green"])
    expect(colour.locator("option:checked")).to_have_text("green")
    expect(field(page, "args.tags").locator("textarea")).to_have_value('["a"]')
    expect(field(page, "args.label").locator("label")).to_have_attribute("data-required", "true")
    expect(field(page, "args.data_base64").locator("input")).to_have_attribute("type", "file")

    field(page, "args.tags").locator("textarea").fill('["a", 2]')
    field(page, "args.fast").locator("input").uncheck()
    field(page, "args.label").locator("input").fill("x")
    submit_form(page)
    # Empty optional boxes are left out, for their defaults to apply.
    assert sent == [
        {
            "name": "kinds",
            "args": {"count": 3, "fast": False, "colour": "green", "tags": ["a", 2], "label": "x"},
            "priority": 0,
        }
    ]
    # A problem inside a field shows beside it with where; one the form has no field for, below.
    expect(field(page, "args.tags").get_by_test_id("field-error")).to_have_text("1: not a string")
    expect(field(page, "args.label").get_by_test_id("field-error")).to_have_text("too short")
    expect(page.get_by_test_id("form-error")).to_have_text("queue: unknown queue")
    drop_errors(page_errors, "status of 422")


def test_a_thumbnail_round_trip_shows_the_thumbnail(
    page: Page, api: ApiClient, tmp_path: Path
) -> None:
    picture = tmp_path / "picture.png"
    picture.write_bytes(png(300, 200))
    open_page(page)
    choose_task(page, "thumbnail")
    expect(field(page, "args.format").locator("option:checked")).to_have_text("PNG")
    field(page, "args.image_base64").locator("input").set_input_files(picture)
    field(page, "args.max_size").locator("input").fill("64")
    response = submit_form(page)
    assert response.status == 202, response.text()
    task_id = response.json()["task_id"]

    image = page.get_by_test_id("form-output").get_by_test_id("result-image")
    expect(image).to_be_visible(timeout=20 * MS)
    assert image.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [64, 43]
    assert (image.get_attribute("src") or "").startswith("data:image/png;base64,")
    assert api.task(task_id)["result"]["size"] == [64, 43]
    row = page.locator(f'tr[data-task-id="{task_id}"] [data-field="result"]')
    expect(row.get_by_test_id("result-image")).to_be_visible()  # in the list, too
    sent = json.loads(response.request.post_data or "{}")
    assert sent["args"]["image_base64"] == base64.b64encode(picture.read_bytes()).decode()


def test_a_tasks_details_show_its_arguments_times_and_outcome(page: Page, api: ApiClient) -> None:
    done = api.submit("sleep", {"seconds": 0.2, "note": "done"})
    waiting = api.submit("sleep", {"seconds": 1, "note": XSS}, countdown=600)
    not_an_image = base64.b64encode(b"no image").decode()
    failed = api.submit("thumbnail", {"image_base64": not_an_image})
    done_view = api.wait_task(done, {"SUCCESS"}, timeout=20)
    api.wait_task(failed, {"FAILURE"}, timeout=20)
    details = page.get_by_test_id("task-details")
    facts = details.get_by_test_id("details-list")
    args = details.get_by_test_id("details-args")
    outcome = details.get_by_test_id("details-outcome")

    def show(task_id: str) -> None:
        page.locator(f'tr[data-task-id="{task_id}"]').get_by_test_id("details").click()
        expect(details.locator('[data-field="id"]')).to_have_text(task_id[:8])

    def local_time(iso: str) -> str:
        text: str = page.evaluate("(iso) => new Date(iso).toLocaleString()", iso)
        return text

    try:
        open_page(page)
        show(done)
        expect(details).to_be_visible()
        expect(facts.locator('[data-field="state"]')).to_have_text("SUCCESS")
        expect(facts.locator('[data-field="attempts"]')).to_have_text("1")
        expect(facts.locator('[data-field="retries"]')).to_have_text("0")
        expect(facts.locator('[data-field="worker"]')).to_contain_text(done_view["worker"])
        for shown in ("submitted", "started", "finished"):
            time = local_time(done_view[f"{shown}_at"])
            expect(facts.locator(f'[data-field="{shown}"]')).to_have_text(time)
        expect(facts.locator('[data-field="waited"]')).to_have_text(re.compile(r"^\d+\.\d+ s$"))
        expect(facts.locator('[data-field="ran"]')).to_have_text(re.compile(r"^0\.\d+ s$"))
        expect(outcome).to_have_text("Result: done")
        expect(args).to_have_attribute("data-loaded", "true")
        expect(args.locator('[data-field="none"]')).to_contain_text("keeps its result")

        show(waiting)  # its countdown runs: arguments kept, due, not started
        expect(facts.locator('[data-field="state"]')).to_have_text("PENDING")
        due = local_time(api.task(waiting)["due_at"])
        expect(facts.locator('[data-field="due"]')).to_have_text(due)
        expect(facts.locator('[data-field="started"]')).to_have_count(0)
        expect(args.locator('[data-field="seconds"]')).to_have_text("1")
        expect(args.locator('[data-field="note"]')).to_have_text(XSS)
        assert details.locator("img").count() == 0
        assert page.evaluate("typeof window.__xss") == "undefined"

        show(failed)
        expect(outcome).to_contain_text("Error: BadImage: not a readable image")
        expect(outcome).to_have_attribute("data-kind", "error")
        expect(args.locator('[data-field="image_base64"]')).to_have_text(not_an_image)
        page.get_by_test_id("details-close").click()
        expect(details).to_be_hidden()
    finally:
        api.post(f"/tasks/{waiting}/cancel")


def listed_ids(api: ApiClient, **params: str) -> list[list[str]]:
    """The API's own listing, page after page (the page's own size, 20)."""
    pages: list[list[str]] = []
    cursor = None
    while True:
        query = {**params, "limit": "20", **({"cursor": cursor} if cursor else {})}
        answer = api.get("/tasks", params=query).json()
        pages.append([view["task_id"] for view in answer["items"]])
        cursor = answer["next_cursor"]
        if not cursor:
            return pages


def shown_ids(page: Page) -> list[str]:
    ids: list[str] = page.locator("tr[data-task-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.taskId)"
    )
    return ids


def test_the_list_filters_by_state_and_name_and_pages_on_with_more(
    page: Page, api: ApiClient
) -> None:
    sums = [api.submit("add", {"a": i, "b": 1}) for i in range(25)]
    failed = api.submit("thumbnail", {"image_base64": base64.b64encode(b"no image").decode()})
    for task_id in [*sums, failed]:
        api.wait_task(task_id, timeout=30)

    open_page(page)
    tasks = page.get_by_test_id("tasks-body")
    more = page.get_by_test_id("tasks-more")
    with page.expect_response(lambda r: "state=FAILURE" in r.url):
        page.get_by_test_id("filter-state").select_option("FAILURE")
    expect(tasks).to_have_attribute("data-loaded", "true")
    assert shown_ids(page) == listed_ids(api, state="FAILURE")[0]
    assert failed in shown_ids(page)
    expect(page.locator('tr[data-task-id]:not([data-state="FAILURE"])')).to_have_count(0)

    page.get_by_test_id("filter-state").select_option("SUCCESS")
    page.get_by_test_id("filter-name").select_option("add")
    expect(tasks).to_have_attribute("data-loaded", "true")
    pages = listed_ids(api, state="SUCCESS", name="add")
    assert len(pages) >= 2  # 25 sums: "more" has a next page to bring
    expect(page.locator("tr[data-task-id]")).to_have_count(len(pages[0]))
    assert shown_ids(page) == pages[0]
    for n in range(1, len(pages)):
        expect(more).to_be_visible()
        more.click()
        expected = [i for p in pages[: n + 1] for i in p]
        expect(page.locator("tr[data-task-id]")).to_have_count(len(expected))
        assert shown_ids(page) == expected
    expect(more).to_be_hidden()
    assert set(sums) <= set(shown_ids(page))
    names = page.locator('tr[data-task-id] [data-field="name"]').all_text_contents()
    assert set(names) == {"add"}

    page.get_by_test_id("filter-state").select_option("")
    page.get_by_test_id("filter-name").select_option("")
    expect(tasks).to_have_attribute("data-loaded", "true")
    expect(page.locator("tr[data-task-id]")).to_have_count(20)
    assert shown_ids(page) == listed_ids(api)[0]


def test_the_backlog_chart_shows_a_queue_growing_with_no_worker(
    browser: Browser, make_stack: Callable[..., Stack]
) -> None:
    idle = make_stack()
    idle.start_redis()
    idle.start_api()  # no worker: whatever is submitted waits
    context = browser.new_context(base_url=idle.api_url)
    try:
        page = context.new_page()
        open_page(page)
        queue = page.locator('#queues-body tr[data-queue="default"]')
        with ApiClient(base_url=idle.api_url, timeout=10) as api:
            for backlog in (0, 3, 6, 9):
                while api.queue("default")["backlog"] < backlog:
                    api.submit("sleep", {"seconds": 1})
                expect(queue).to_have_attribute("data-backlog", str(backlog), timeout=10 * MS)
        line = page.locator('[data-testid="backlog-chart"] polyline[data-queue="default"]')
        expect(line).to_have_attribute("points", re.compile(r"\S+ \S+ \S+ \S+"))
        ys = [float(point.split(",")[1]) for point in (line.get_attribute("points") or "").split()]
        # SVG's y grows downwards: a growing backlog draws a line that only rises.
        assert all(later <= earlier for earlier, later in pairwise(ys)), ys
        assert ys[-1] < ys[0], ys
        assert page.locator('[data-testid="backlog-chart"]').get_attribute("data-top") == "9"
        legend = page.get_by_test_id("backlog-legend").locator('li[data-queue="default"]')
        expect(legend).to_have_text("default: 9, up 9")
    finally:
        context.close()


def test_the_content_security_policy_holds_with_nothing_refused(
    page: Page, api: ApiClient, page_errors: list[str]
) -> None:
    """Everything the page does, thumbnails drawn from data: URLs and the chart included, fits
    its policy; and the policy is really there: an inline script is refused (and reported)."""
    task_id = api.submit("thumbnail", {"image_base64": base64.b64encode(png(40, 40)).decode()})
    api.wait_task(task_id, {"SUCCESS"}, timeout=20)
    page.add_init_script(RECORD_VIOLATIONS)
    response = page.goto("/")
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    expect(page.get_by_test_id("tasks-body")).to_have_attribute("data-loaded", "true")
    page.locator(f'tr[data-task-id="{task_id}"]').get_by_test_id("details").click()
    image = page.get_by_test_id("details-outcome").get_by_test_id("result-image")
    expect(image).to_be_visible()
    page.wait_for_function("() => document.querySelector('#backlog-chart polyline') !== null")
    choose_task(page, "sleep")
    assert page.evaluate("window.__violations") == []

    page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.__inline = 1";
            document.body.append(script);
        }"""
    )
    page.wait_for_function("() => window.__violations.length > 0")
    assert page.evaluate("window.__violations")[0].startswith("script-src")
    assert page.evaluate("typeof window.__inline") == "undefined"
    drop_errors(page_errors, "Content Security Policy")


def test_a_screenshot_of_the_page_for_the_readme(
    browser: Browser, make_stack: Callable[..., Stack]
) -> None:
    """docs/page.png, for README.md: a stack of its own, so that the picture shows a few tasks
    of each kind, a backlog that rose and drained, a thumbnail and a task's details."""
    own = make_stack()
    own.start_redis()
    own.start_api()
    own.start_worker()
    context = browser.new_context(base_url=own.api_url, viewport={"width": 1280, "height": 900})
    with ApiClient(base_url=own.api_url, timeout=10) as api:
        try:
            page = context.new_page()
            open_page(page)
            burst = [api.submit("sleep", {"seconds": 1}) for _ in range(8)]
            page.locator('#queues-body tr[data-queue="default"]').wait_for()
            picture = base64.b64encode(png(320, 200)).decode()
            thumbnail = api.submit("thumbnail", {"image_base64": picture, "max_size": 96})
            api.submit("primes", {"limit": 100_000})
            api.submit("flaky", {"failures": 9})
            api.submit("thumbnail", {"image_base64": base64.b64encode(b"no image").decode()})
            running = api.submit("sleep", {"seconds": 30, "note": "still running"})
            for task_id in (*burst, thumbnail):
                api.wait_task(task_id, timeout=30)
            api.wait_task(running, {"STARTED"}, timeout=20)
            expect(page.locator('#queues-body tr[data-queue="default"]')).to_have_attribute(
                "data-backlog", "1", timeout=10 * MS
            )  # the burst drained: the chart shows it rise and fall
            # A listing again brings the tasks submitted here; the chart's history stays.
            page.get_by_test_id("filter-state").select_option("SUCCESS")
            page.get_by_test_id("filter-state").select_option("")
            expect(page.get_by_test_id("tasks-body")).to_have_attribute("data-loaded", "true")
            choose_task(page, "thumbnail")
            page.locator(f'tr[data-task-id="{thumbnail}"]').get_by_test_id("details").click()
            image = page.get_by_test_id("details-outcome").get_by_test_id("result-image")
            expect(image).to_be_visible()
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            context.close()
    assert SCREENSHOT.stat().st_size > 10_000
