"""A team's own tasks (examples/own-tasks), installed beside a worker and nowhere else: the
worker publishes them, the API (which has never seen their code) lists and validates them,
and their messages go to the pool that has them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.processes import ROOT, Stack
from tests.helpers import ApiClient

EXAMPLE = ROOT / "examples" / "own-tasks"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example package and its one dependency, installed into a directory of their own."""
    target = tmp_path_factory.mktemp("acme-site")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target)]
    subprocess.run([*pip, "--require-hashes", "-r", str(EXAMPLE / "requirements.txt")], check=True)
    subprocess.run([*pip, "--no-build-isolation", str(EXAMPLE)], check=True)
    return target


@pytest.fixture
def acme(make_stack: Callable[..., Stack], site: Path) -> Iterator[tuple[Stack, ApiClient]]:
    stack = make_stack()
    stack.start_redis()
    stack.start_api()
    stack.start_worker(queues=["acme"], PYTHONPATH=f"{site}:{ROOT}")
    with ApiClient(base_url=stack.api_url, timeout=10) as api:
        yield stack, api


def test_the_api_lists_validates_and_runs_a_teams_own_tasks(
    acme: tuple[Stack, ApiClient],
) -> None:
    with pytest.raises(ImportError):
        __import__("acme_tasks")  # the API's environment (this one) has no such package
    _, api = acme
    listed = {entry["name"]: entry for entry in api.get("/catalogue").json()}
    assert listed["describe_size"]["queue"] == "acme"
    assert listed["count_words"]["description"] == "Counts the words of a text, reporting progress."
    assert "sleep" in listed  # the built-ins come the same way

    bad = api.post("/tasks", json={"name": "describe_size", "args": {"size_bytes": -1}})
    assert bad.status_code == 422, bad.text
    [problem] = bad.json()["fields"]
    assert problem["field"] == "args.size_bytes", problem

    task_id = api.submit("describe_size", {"size_bytes": 1_500_000})
    done = api.wait_task(task_id)
    assert done["state"] == "SUCCESS", done
    assert done["result"] == {"size": "1.5 MB"}


def test_a_worker_without_the_package_leaves_its_queue_alone(
    acme: tuple[Stack, ApiClient],
) -> None:
    stack, api = acme
    stack.start_worker("plain", queues=["default"])
    ids = [api.submit("count_words", {"text": f"one two {i}"}) for i in range(4)]
    for task_id in ids:
        done = api.wait_task(task_id)
        assert done["state"] == "SUCCESS", done
        assert done["result"] == {"words": 3}
        assert done["worker"].startswith("worker@"), done
