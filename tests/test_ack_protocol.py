"""The acknowledgement protocol (worker/broker.py) holds however the worker is started and
whether or not its fast path is on, and the worker refuses what would break it."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable

import kombu
import pytest
import redis

from devstack.processes import ROOT, Stack
from tests.conftest import client_for
from tests.helpers import programmatic_worker, wait_for
from worker import broker


def _transactions(r: redis.Redis) -> int:
    stats = r.info("commandstats").get("cmdstat_exec", {})
    return int(stats.get("calls", 0))


def _unacknowledged(r: redis.Redis) -> tuple[int, int, int]:
    return int(r.hlen("unacked")), int(r.zcard("unacked_index")), int(r.hlen("kt:inflight"))


def _drain(stack: Stack, count: int) -> None:
    with client_for(stack) as api:
        ids = [api.submit("sleep", {"seconds": 0}) for _ in range(count)]
        for task_id in ids:
            assert api.wait_task(task_id, timeout=60)["state"] == "SUCCESS"


def test_a_worker_started_through_the_api_of_celery_runs_every_task(
    make_stack: Callable[..., Stack],
) -> None:
    """No `celery worker` command, so no `celeryd_init` signal: the transport comes from the
    app's configuration. (Set at that signal, kombu's stock transport served such a worker, and
    it stalled after `concurrency` successes.)"""
    stack = make_stack()
    stack.start_redis()
    stack.start_api()
    r = redis.Redis.from_url(stack.redis_url)
    with client_for(stack) as api:
        ids = [api.submit("sleep", {"seconds": 0}) for _ in range(20)]
        before = _transactions(r)
        programmatic_worker(stack, "programmatic")
        for task_id in ids:
            assert api.wait_task(task_id, timeout=60)["state"] == "SUCCESS"
    # A backlog: fetched by the script and acknowledged in the finish, so only the worker's
    # start-up MULTIs (kombu's restore mutex), where kombu's own path makes two per task.
    assert _transactions(r) - before < 10
    assert _unacknowledged(r) == (0, 0, 0)


def test_with_the_fast_path_off_the_same_tasks_succeed_with_kombus_round_trips(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(env={"KUBETASKS_WORKER_FAST_PATH": "false"})
    stack.start_redis()
    stack.start_api()
    r = redis.Redis.from_url(stack.redis_url)
    worker = stack.start_worker()
    before = _transactions(r)
    _drain(stack, 20)
    # kombu's MULTI to record each delivery and another to acknowledge it
    assert _transactions(r) - before >= 2 * 20
    assert _unacknowledged(r) == (0, 0, 0)
    # The banner names the broker as Celery users expect (the password masked), not the
    # transport class.
    assert re.search(r"transport: +redis://(:\*\*@)?127\.0\.0\.1:\d+/0\n", worker.output())


def test_the_worker_refuses_to_consume_through_another_transport(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    stack.start_redis()
    worker = programmatic_worker(
        stack, "stock", setup="app.conf.broker_transport = 'redis'", wait_ready=False
    )
    wait_for(lambda: not worker.alive(), 30, "the worker to refuse and exit")
    assert worker.popen.returncode != 0
    assert "consumes through kombu.transport.redis.Transport, not worker.broker" in worker.output()


def test_the_transport_refuses_a_kombu_it_was_not_written_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker.check_kombu()
    monkeypatch.setattr(kombu, "__version__", "5.8.0")
    with pytest.raises(broker.ConfigurationError, match=r"kombu 5\.8\.0"):
        broker.check_kombu()
    monkeypatch.undo()
    monkeypatch.delattr(kombu.transport.redis.Channel, "_brpop_read")
    with pytest.raises(broker.ConfigurationError, match=r"Channel\._brpop_read"):
        broker.check_kombu()


def test_the_kombu_pin_is_the_series_the_transport_checks() -> None:
    pins = re.findall(r"^kombu==(\S+)", (ROOT / "requirements/worker.in").read_text(), re.M)
    assert pins == [f"{broker.KOMBU_SERIES}.*"]
    locked = re.findall(r"^kombu==(\S+)", (ROOT / "requirements/worker.txt").read_text(), re.M)
    assert [v.rsplit(".", 1)[0] for v in locked] == [broker.KOMBU_SERIES]


def test_importing_the_worker_checks_kombu() -> None:
    code = "import kombu; kombu.__version__ = '6.0.0'; import worker.app"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "pin kombu==5.7.*" in result.stderr
