"""The docs stay true to the code: every setting and every task is documented."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from contracts.settings import Settings
from worker.catalogue import specs

TASKS = specs()

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    readme = (ROOT / "README.md").read_text()
    for name, field in Settings.model_fields.items():
        variable = field.alias or f"KUBETASKS_{name.upper()}"
        assert f"`{variable}`" in readme, f"{variable} is not documented in README.md"


def test_every_task_is_named_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in TASKS:
        assert f"`{name}`" in readme


def _registered(module: str) -> set[str]:
    """The metric names a module registers, as Prometheus exposes them (a counter's `_total`),
    read in a fresh interpreter: the worker's metrics set their multiprocess mode at import."""
    code = (
        "import json, os, sys, tempfile\n"
        "os.environ['PROMETHEUS_MULTIPROC_DIR'] = tempfile.mkdtemp()\n"
        f"import {module} as m\n"
        "from prometheus_client import REGISTRY\n"
        "registry = getattr(m, 'REGISTRY', REGISTRY)\n"
        "names = [f.name + ('_total' if f.type == 'counter' else '') for f in registry.collect()]\n"
        "print(json.dumps(sorted(n for n in names if n.startswith('kubetasks_'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout))


def test_docs_metrics_lists_every_metric_the_code_registers() -> None:
    documented = set(
        re.findall(r"^\| `(kubetasks_\w+)`", (ROOT / "docs/metrics.md").read_text(), re.M)
    )
    registered = (
        _registered("api.metrics")
        | _registered("worker.metrics")
        | _registered("scheduler.metrics")
    )
    assert "kubetasks_tasks_rejected_total" in registered  # the worker's, read for real
    assert documented == registered


def test_readme_and_deploy_guide_say_to_set_the_k8s_images_first() -> None:
    step = re.compile(r"kustomize edit set image kubetasks-api=\S+ +\\?\s*kubetasks-worker=\S+")
    for doc in ("README.md", "docs/deploy.md"):
        text = (ROOT / doc).read_text()
        assert step.search(text), f"{doc} does not give the step that sets both images"
        assert "REGISTRY.example" in text, f"{doc} does not name the placeholder registry"
