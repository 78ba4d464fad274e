"""Render the kubetasks chart with the real helm binary and hand the objects to the tests."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "helm" / "kubetasks"
CI_VALUES = sorted((CHART_DIR / "ci").glob("*-values.yaml"))
HELM = REPO_ROOT / ".tools" / "bin" / "helm"
KUBECTL = REPO_ROOT / ".tools" / "bin" / "kubectl"

MONITORING_APIS = (
    "monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1/PodMonitor",
    "monitoring.coreos.com/v1/PrometheusRule",
)
KEDA_APIS = ("keda.sh/v1alpha1/ScaledObject",)
ALL_CRD_APIS = MONITORING_APIS + KEDA_APIS

RELEASE = "kubetasks"
NAMESPACE = "tasks"

Manifest = dict[str, Any]


@dataclass(frozen=True)
class HelmResult:
    returncode: int
    stdout: str
    stderr: str


def helm(*args: str) -> HelmResult:
    if not HELM.exists():
        raise RuntimeError(f"{HELM} is missing: run `make helm-tools` first")
    proc = subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=120)
    return HelmResult(proc.returncode, proc.stdout, proc.stderr)


def template_args(
    values_files: Iterable[Path] = (),
    set_values: Sequence[str] = (),
    api_versions: Sequence[str] = ALL_CRD_APIS,
    extra: Sequence[str] = (),
    chart_dir: Path = CHART_DIR,
) -> list[str]:
    args = ["template", RELEASE, str(chart_dir), "--namespace", NAMESPACE, *extra]
    for values_file in values_files:
        args += ["--values", str(values_file)]
    for assignment in set_values:
        args += ["--set", assignment]
    for api in api_versions:
        args += ["--api-versions", api]
    return args


def render(
    values_files: Iterable[Path] = (),
    set_values: Sequence[str] = (),
    api_versions: Sequence[str] = ALL_CRD_APIS,
    extra: Sequence[str] = (),
    chart_dir: Path = CHART_DIR,
) -> list[Manifest]:
    result = helm(*template_args(values_files, set_values, api_versions, extra, chart_dir))
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_failure(
    set_values: Sequence[str],
    values_files: Iterable[Path] = (),
    chart_dir: Path = CHART_DIR,
    api_versions: Sequence[str] = ALL_CRD_APIS,
) -> str:
    """Render values that must be refused; returns helm's error output."""
    result = helm(*template_args(values_files, set_values, api_versions, chart_dir=chart_dir))
    assert result.returncode != 0, f"helm accepted {set_values}"
    return result.stderr


def render_notes(set_values: Sequence[str] = (), api_versions: Sequence[str] = ALL_CRD_APIS) -> str:
    """NOTES.txt as `helm install` prints it. `helm template` leaves NOTES.txt out, so a copy of
    the chart renders the same text into a ConfigMap."""
    with tempfile.TemporaryDirectory() as tmp:
        chart = Path(tmp) / CHART_DIR.name
        shutil.copytree(CHART_DIR, chart)
        templates = chart / "templates"
        notes = templates / "NOTES.txt"
        (templates / "_notes_under_test.tpl").write_text(
            '{{- define "notes-under-test" -}}\n' + notes.read_text() + "{{- end }}\n"
        )
        notes.unlink()
        (templates / "notes-under-test.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes-under-test\n"
            'data:\n  notes: {{ include "notes-under-test" . | quote }}\n'
        )
        manifests = render(set_values=set_values, api_versions=api_versions, chart_dir=chart)
    return str(one(manifests, "ConfigMap", "notes-under-test")["data"]["notes"])


def by_kind(manifests: Iterable[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: Iterable[Manifest], kind: str, name_suffix: str = "") -> Manifest:
    found = [m for m in by_kind(manifests, kind) if m["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"expected one {kind} *{name_suffix}, found {len(found)}"
    return found[0]


# Pod fields a chart Job takes from the workload it serves (the catalogue Job from its pool's
# workers, the schedules Job from the scheduler), compared by their tests.
JOB_SHARED_POD_FIELDS = (
    "serviceAccountName",
    "automountServiceAccountToken",
    "imagePullSecrets",
    "securityContext",
    "nodeSelector",
    "tolerations",
    "affinity",
)


def pod_spec(manifest: Manifest) -> dict[str, Any]:
    if manifest["kind"] == "Pod":
        return manifest["spec"]  # type: ignore[no-any-return]
    return manifest["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def workloads(manifests: Iterable[Manifest]) -> list[Manifest]:
    return [m for m in manifests if m["kind"] in {"Deployment", "StatefulSet", "Job", "Pod"}]
