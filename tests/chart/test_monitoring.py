"""Monitoring objects: rendered only where their CRDs exist, built from the chart's files/ so the
alert rules and dashboards have one source."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from .rendering import (
    CHART_DIR,
    CI_VALUES,
    MONITORING_APIS,
    REPO_ROOT,
    by_kind,
    one,
    render,
    render_failure,
)

METRICS_DOC = REPO_ROOT / "docs" / "metrics.md"
RULES_FILE = CHART_DIR / "files" / "prometheus" / "alerts.rules.yaml"
DASHBOARDS = sorted((CHART_DIR / "files" / "dashboards").glob("*.json"))
MONITORING_VALUES = next(p for p in CI_VALUES if p.name == "ingress-monitoring-values.yaml")
MONITORING_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}


@pytest.fixture(scope="module")
def monitored() -> list[dict[str, object]]:
    return render([MONITORING_VALUES], api_versions=MONITORING_APIS)


def test_monitoring_objects_need_their_crds() -> None:
    manifests = render([MONITORING_VALUES], api_versions=())
    assert not [m for m in manifests if m["kind"] in MONITORING_KINDS]


def test_api_flower_and_workers_are_scraped(monitored: list[dict[str, object]]) -> None:
    api = one(monitored, "ServiceMonitor", "-api")
    assert api["spec"]["endpoints"][0]["port"] == "http"
    assert api["spec"]["endpoints"][0]["path"] == "/metrics"
    assert api["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    worker = one(monitored, "PodMonitor", "-worker")
    assert worker["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert one(monitored, "ServiceMonitor", "-flower")


def test_every_monitor_sets_a_job_name_of_the_contract(monitored: list[dict[str, Any]]) -> None:
    """docs/metrics.md lists the job names the alerts select on; every scrape sets one of them,
    and each of them is set."""
    documented = set(re.findall(r"^\| `(kubetasks-[a-z]+)` \|", METRICS_DOC.read_text(), re.M))
    jobs = set()
    for monitor in by_kind(monitored, "ServiceMonitor") + by_kind(monitored, "PodMonitor"):
        spec = monitor["spec"]
        for endpoint in spec.get("endpoints", []) + spec.get("podMetricsEndpoints", []):
            [job] = [r for r in endpoint["relabelings"] if r["targetLabel"] == "job"]
            jobs.add(job["replacement"])
    assert jobs == documented
    assert "kubetasks-scheduler" in jobs


def test_prometheus_rule_embeds_the_groups_of_the_rules_file(
    monitored: list[dict[str, object]],
) -> None:
    rule = one(monitored, "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(RULES_FILE.read_text())["groups"]


def test_dashboard_config_map_ships_every_dashboard(monitored: list[dict[str, object]]) -> None:
    config_map = one(monitored, "ConfigMap", "-dashboards")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert sorted(config_map["data"]) == [path.name for path in DASHBOARDS]
    for path in DASHBOARDS:
        assert json.loads(config_map["data"][path.name]) == json.loads(path.read_text())


def test_dashboards_are_off_by_default() -> None:
    assert not [
        m for m in by_kind(render(), "ConfigMap") if m["metadata"]["name"].endswith("-dashboards")
    ]


@pytest.fixture()
def chart_without_files(tmp_path: Path) -> Path:
    """The chart without its monitoring files (the task catalogue stays: every render needs it)."""
    copy = tmp_path / "kubetasks"
    shutil.copytree(CHART_DIR, copy, ignore=shutil.ignore_patterns("prometheus", "dashboards"))
    return copy


def test_missing_rules_file_is_a_clear_error(chart_without_files: Path) -> None:
    error = render_failure([], [MONITORING_VALUES], chart_dir=chart_without_files)
    assert "files/prometheus/alerts.rules.yaml" in error or "files/dashboards" in error


def test_rules_file_without_groups_is_refused(chart_without_files: Path) -> None:
    rules = chart_without_files / "files" / "prometheus" / "alerts.rules.yaml"
    rules.parent.mkdir(parents=True)
    rules.write_text("rules: []\n")
    error = render_failure(["monitoring.dashboards.enabled=false"], chart_dir=chart_without_files)
    assert "must be a Prometheus rules file with top-level groups" in error
