"""helm lint --strict accepts the chart with its defaults and with every ci/ values file."""

from __future__ import annotations

from pathlib import Path

import pytest

from .rendering import CHART_DIR, CI_VALUES, helm


def test_ci_values_cover_the_documented_configurations() -> None:
    names = {path.name for path in CI_VALUES}
    expected = {
        "default-values.yaml",
        "keda-values.yaml",
        "external-redis-values.yaml",
        "ingress-monitoring-values.yaml",
        "scale-to-zero-values.yaml",
        "schedules-values.yaml",
        "two-pools-values.yaml",
    }
    assert expected <= names


@pytest.mark.parametrize("values_file", [None, *CI_VALUES], ids=lambda p: p.name if p else "none")
def test_helm_lint_strict(values_file: Path | None) -> None:
    args = ["lint", "--strict", str(CHART_DIR)]
    if values_file is not None:
        args += ["--values", str(values_file)]
    result = helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_chart_requires_kubernetes_1_26() -> None:
    too_old = helm("template", "kubetasks", str(CHART_DIR), "--kube-version", "1.25.0")
    assert too_old.returncode != 0
    assert "kubeVersion" in too_old.stderr
    assert helm("template", "kubetasks", str(CHART_DIR), "--kube-version", "1.26.0").returncode == 0
