"""The chart refuses the time limits the workers would refuse (worker/app.py check_profile), so
`helm install` fails instead of rolling out workers that crash-loop; the catalogue it checks
against (files/catalogue.json) is the built-in tasks of packages/kubetasks-builtins."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from contracts.catalogue import QUEUES
from worker.catalogue import specs

from .rendering import CHART_DIR, REPO_ROOT, one, render, render_failure

TASKS = specs()
CATALOGUE_FILE = CHART_DIR / "files" / "catalogue.json"
LONGEST_BY_DEFAULT = max(TASKS, key=lambda name: TASKS[name].time_limit_seconds)

# Overrides of settings.taskTimeLimits, each with its own smallest accepted visibility timeout.
LIMIT_SETS = {
    "catalogue-defaults": {},
    # The other tasks' catalogue defaults still count when the longest one is lowered.
    "longest-lowered": {LONGEST_BY_DEFAULT: 1},
    "one-raised": {LONGEST_BY_DEFAULT: 7000},
    "margin-floor": dict.fromkeys(TASKS, 40),
    "fractional-margin": dict.fromkeys(TASKS, 55),
    "whole-margin": dict.fromkeys(TASKS, 70),
}

# Runs in a subprocess: importing worker.app builds the Celery app and connects its signals.
WORKER_MINIMUMS = """
import json, sys
from contracts.settings import Settings
from worker.app import ConfigurationError, check_profile
from worker.catalogue import served_by


def accepts(limits, visibility):
    try:
        settings = Settings(task_time_limits=limits, visibility_timeout_seconds=visibility)
        check_profile(settings, served_by(settings))
    except ConfigurationError:
        return False
    return True

def smallest_accepted(limits):
    low, high = 1, 10**9
    while low < high:
        middle = (low + high) // 2
        if accepts(limits, middle):
            high = middle
        else:
            low = middle + 1
    return low

limit_sets = json.load(sys.stdin)
print(json.dumps({name: smallest_accepted(limits) for name, limits in limit_sets.items()}))
"""


@pytest.fixture(scope="module")
def worker_minimums() -> dict[str, int]:
    """The smallest visibility timeout the worker's own check accepts, for each limit set."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("KUBETASKS_")}
    result = subprocess.run(
        [sys.executable, "-c", WORKER_MINIMUMS],
        input=json.dumps(LIMIT_SETS),
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    minimums: dict[str, int] = json.loads(result.stdout)
    return minimums


def limits_file(tmp_path: Path, limits: dict[str, int]) -> Path:
    # A values file, not --set: Helm reads its numbers as float64 and --set ones as int64.
    path = tmp_path / "limits-values.yaml"
    path.write_text(yaml.safe_dump({"settings": {"taskTimeLimits": limits}}))
    return path


def test_chart_catalogue_is_the_python_catalogue() -> None:
    catalogue = json.loads(CATALOGUE_FILE.read_text())
    expected = {name: {"timeLimitSeconds": t.time_limit_seconds} for name, t in TASKS.items()}
    stale = "helm/kubetasks/files/catalogue.json is stale: run `make manifests`"
    assert catalogue["tasks"] == expected, stale
    assert catalogue["queues"] == sorted(QUEUES), stale


def test_defaults_render() -> None:
    config = one(render(), "ConfigMap", "-config")["data"]
    assert config["KUBETASKS_VISIBILITY_TIMEOUT_SECONDS"] == "7200"
    assert config["KUBETASKS_TASK_TIME_LIMITS"] == "{}"


@pytest.mark.parametrize("limit_set", LIMIT_SETS)
def test_chart_accepts_from_the_visibility_timeout_the_worker_accepts(
    limit_set: str, worker_minimums: dict[str, int], tmp_path: Path
) -> None:
    minimum = worker_minimums[limit_set]
    values = [limits_file(tmp_path, LIMIT_SETS[limit_set])]
    rendered = render(values, [f"settings.visibilityTimeoutSeconds={minimum}"])
    config = one(rendered, "ConfigMap", "-config")["data"]
    assert json.loads(config["KUBETASKS_TASK_TIME_LIMITS"]) == LIMIT_SETS[limit_set]

    error = render_failure([f"settings.visibilityTimeoutSeconds={minimum - 1}"], values)
    assert f"settings.visibilityTimeoutSeconds ({minimum - 1}) must be at least {minimum}" in error
    assert "lower settings.taskTimeLimits" in error


def test_refusal_names_the_longest_limit_and_the_margin(tmp_path: Path) -> None:
    values = [limits_file(tmp_path, LIMIT_SETS["fractional-margin"])]
    error = render_failure(["settings.visibilityTimeoutSeconds=60"], values)
    assert (
        "settings.visibilityTimeoutSeconds (60) must be at least 61: the longest task time limit "
        f"(55 s, task {min(TASKS)}) plus a margin of 5.5 s"
    ) in error


def test_a_raised_limit_is_refused_with_the_default_visibility_timeout() -> None:
    error = render_failure([f"settings.taskTimeLimits.{LONGEST_BY_DEFAULT}=7000"])
    assert "settings.visibilityTimeoutSeconds (7200) must be at least 7700" in error


def test_limits_of_tasks_only_an_image_has_count_too() -> None:
    """The chart cannot see a team's tasks: their limits are accepted, and checked like the
    built-ins' against the visibility timeout."""
    render(set_values=["settings.taskTimeLimits.acme_report=6000", "worker.queues={default}"])
    error = render_failure(["settings.taskTimeLimits.acme_report=8000"])
    assert "must be at least 8800: the longest task time limit (8000 s, task acme_report)" in error


def test_a_chart_without_its_catalogue_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "kubetasks"
    shutil.copytree(CHART_DIR, copy, ignore=shutil.ignore_patterns(CATALOGUE_FILE.name))
    error = render_failure([], chart_dir=copy)
    assert "files/catalogue.json (the task catalogue) is missing" in error
