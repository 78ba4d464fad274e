"""One worker command: the image's default, the chart's and k8s/'s are the same, and what they
leave out (mingle, gossip) the app leaves out by itself."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import yaml

from devstack.processes import Stack

from .rendering import REPO_ROOT, one, pod_spec, render


def _worker_command(deployment: dict[str, Any]) -> list[str]:
    (container,) = [c for c in pod_spec(deployment)["containers"] if c["name"] == "worker"]
    command: list[str] = container["command"]
    return command


def test_the_image_the_chart_and_the_manifests_run_the_same_worker_command() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile.worker").read_text()
    match = re.search(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE)
    assert match is not None
    image = json.loads(match.group(1))
    chart = _worker_command(one(render(), "Deployment", "-worker"))
    documents = yaml.safe_load_all((REPO_ROOT / "k8s" / "worker.yaml").read_text())
    manifests = _worker_command(next(d for d in documents if d and d["kind"] == "Deployment"))
    assert (
        image == chart == manifests == ["celery", "--app=worker.app", "worker", "--loglevel=INFO"]
    )


def test_a_worker_started_without_flags_runs_no_mingle_and_no_gossip(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    stack.start_redis()
    worker = stack.start_worker()  # `celery -A worker.app worker`, no --without-* flags
    worker.stop()
    output = worker.output()
    assert "worker@" in output and "ready." in output
    assert "mingle:" not in output  # mingle logs "mingle: searching for neighbors" when on
