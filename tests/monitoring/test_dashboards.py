"""Every PromQL query we ship (dashboards, alerts, autoscaling) names only metrics that exist.

The metric names come from the `exposed_metric_names` fixture (tests/conftest.py): what the real
API, worker and scheduler serve on /metrics. Prometheus' own `up` and Flower's metrics (read from
the installed Flower package) are the only other names a query may use.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.tooling import require_binary

FILES = Path(__file__).resolve().parents[2] / "helm" / "kubetasks" / "files"
DASHBOARDS = sorted((FILES / "dashboards").glob("*.json"))
ALERT_RULES = FILES / "prometheus" / "alerts.rules.yaml"
ADAPTER_RULES = FILES / "prometheus" / "adapter-rules.yaml"
KEDA_TRIGGER = FILES / "prometheus" / "keda-trigger.yaml"

# Series Prometheus writes itself for every scrape target, not served by any /metrics.
SCRAPE_SERIES = frozenset({"up"})

_NAME_MATCHER = re.compile(r"""__name__\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
# Grafana variables ($var, ${var}, [[var]]) and prometheus-adapter templates (<<.Series>>).
_TEMPLATE_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[[^\]]*\]\]|<<[^>]*>>")
_LABEL_LIST = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
# A name not glued to a number (1e3, 5m, 0x1F) and not called like a function.
_IDENTIFIER = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}
    | {"by", "without", "on", "ignoring", "group_left", "group_right"}
)
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.*),\s*\w+\s*\)\s*$", re.DOTALL)


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (Grafana variables and adapter templates allowed)."""
    names = {a or b for a, b in _NAME_MATCHER.findall(expr)}
    stripped = _STRING.sub('""', expr)
    stripped = _TEMPLATE_VARIABLE.sub(" ", stripped)
    stripped = _LABEL_LIST.sub(" ", stripped)
    stripped = _MATCHERS.sub(" ", stripped)
    stripped = _RANGE.sub(" ", stripped)
    names.update(token for token in _IDENTIFIER.findall(stripped) if token.lower() not in _KEYWORDS)
    return names


def variable_promql(query: str) -> str:
    """The PromQL inside a Grafana Prometheus variable query (label_values or plain PromQL)."""
    match = _LABEL_VALUES.match(query)
    if match:
        return match.group("selector")
    if query.strip().startswith("label_values("):
        return ""  # label_values(label): no metric involved
    return query


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _load(dashboard: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(dashboard.read_text(encoding="utf-8"))
    return loaded


def dashboard_queries(dashboard: Path) -> Iterator[tuple[str, str]]:
    """(where, query) for every panel target and query variable of one dashboard."""
    data = _load(dashboard)
    for panel in _panels(data["panels"]):
        for target in panel.get("targets", []):
            yield f"{dashboard.name} panel {panel['title']!r} {target['refId']}", target["expr"]


def dashboard_variable_queries(dashboard: Path) -> Iterator[tuple[str, str]]:
    for variable in _load(dashboard)["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            yield f"{dashboard.name} variable {variable['name']}", variable_promql(text)


def alert_queries() -> Iterator[tuple[str, str]]:
    rules = yaml.safe_load(ALERT_RULES.read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            yield f"alert {rule.get('alert') or rule.get('record')}", rule["expr"]


def autoscaling_queries() -> Iterator[tuple[str, str]]:
    adapter = yaml.safe_load(ADAPTER_RULES.read_text(encoding="utf-8"))
    for rule in adapter["externalRules"]:
        yield f"adapter seriesQuery {rule['name']['as']}", rule["seriesQuery"]
        (series_name,) = promql_metric_names(rule["seriesQuery"])
        yield (
            f"adapter metricsQuery {rule['name']['as']}",
            rule["metricsQuery"].replace("<<.Series>>", series_name),
        )
    keda = yaml.safe_load(KEDA_TRIGGER.read_text(encoding="utf-8"))
    for trigger in keda["triggers"]:
        yield "KEDA trigger", trigger["metadata"]["query"]


def unknown_metric_names(
    queries: Iterator[tuple[str, str]], known: set[str] | frozenset[str]
) -> dict[str, set[str]]:
    unknown = {}
    for where, query in queries:
        missing = promql_metric_names(query) - known
        if missing:
            unknown[where] = missing
    return unknown


@pytest.fixture(scope="module")
def flower_metric_names() -> frozenset[str]:
    """Sample names Flower's PrometheusMetrics defines, from the installed Flower package.

    Imported in a child process so that Flower's metrics stay out of this process' registry.
    """
    program = (
        "from flower.events import PrometheusMetrics\n"
        "from prometheus_client import REGISTRY\n"
        "PrometheusMetrics()\n"
        "for family in REGISTRY.collect():\n"
        "    print(family.name, family.type)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"cannot read Flower's metric names (is flower installed?):\n{done.stderr}")
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    names: set[str] = set()
    for line in done.stdout.splitlines():
        family, kind = line.split()
        if family.startswith("flower_"):
            names.update(family + suffix for suffix in suffixes.get(kind, ("",)))
    return frozenset(names)


def test_extractor_finds_metric_names_and_ignores_the_rest() -> None:
    assert promql_metric_names(
        "histogram_quantile(0.95, sum by (route, le) (rate(kubetasks_http_request_duration"
        '_seconds_bucket{route="/tasks/{task_id}",namespace=~"$namespace"}[$__rate_interval])))'
    ) == {"kubetasks_http_request_duration_seconds_bucket"}
    assert promql_metric_names(
        "max by (namespace, queue) (backlog) > 0 unless on (namespace, queue) group_left (x) "
        "max by (namespace, queue) (workers) > bool 1e3 or absent(gone offset 5m) * inf"
    ) == {"backlog", "workers", "gone"}
    assert promql_metric_names('{__name__="by_name",queue!=""}') == {"by_name"}
    assert promql_metric_names("max by (queue) (<<.Series>>{<<.LabelMatchers>>})") == set()
    assert promql_metric_names(
        variable_promql('label_values(kubetasks_queue_backlog{namespace=~"$namespace"}, queue)')
    ) == {"kubetasks_queue_backlog"}
    assert variable_promql("label_values(queue)") == ""


def test_extractor_reports_a_misspelt_metric() -> None:
    """The checker itself: a hand-written bad query must be caught, with the bad name only."""
    bad = [
        (
            "bad panel",
            'sum by (queue) (rate(kubetasks_worker_tasks_complete_total{outcome="failed"}[5m]))'
            " / sum by (queue) (rate(kubetasks_worker_tasks_completed_total[5m]))",
        )
    ]
    known = {"kubetasks_worker_tasks_completed_total"}
    assert unknown_metric_names(iter(bad), known) == {
        "bad panel": {"kubetasks_worker_tasks_complete_total"}
    }


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda path: path.name)
def test_dashboard_shape(dashboard: Path) -> None:
    data = _load(dashboard)
    assert data["schemaVersion"] >= 39
    variables = {variable["name"]: variable for variable in data["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    queue_query = variables["queue"]["query"]["query"]
    assert re.fullmatch(r"label_values\(kubetasks_queue_backlog(\{.*\})?, queue\)", queue_query)
    panels = list(_panels(data["panels"]))
    assert len({panel["id"] for panel in panels}) == len(panels), "panel ids must be unique"
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]


def test_dashboards_are_shipped() -> None:
    assert [path.name for path in DASHBOARDS] == ["kubetasks-overview.json"]
    uids = [_load(path)["uid"] for path in DASHBOARDS]
    assert len(set(uids)) == len(uids)


def test_dashboard_metrics_are_exposed(
    exposed_metric_names: set[str], flower_metric_names: frozenset[str]
) -> None:
    known = exposed_metric_names | flower_metric_names
    for dashboard in DASHBOARDS:
        assert unknown_metric_names(dashboard_queries(dashboard), known) == {}
        assert unknown_metric_names(dashboard_variable_queries(dashboard), known) == {}


def test_alert_rule_metrics_are_exposed(exposed_metric_names: set[str]) -> None:
    assert unknown_metric_names(alert_queries(), exposed_metric_names | SCRAPE_SERIES) == {}


def test_autoscaling_metrics_are_exposed(exposed_metric_names: set[str]) -> None:
    assert unknown_metric_names(autoscaling_queries(), exposed_metric_names) == {}


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses every panel query (Grafana variables replaced by plain values)."""
    promtool = require_binary("promtool", "apt-get install -y prometheus")
    rules = []
    for dashboard in DASHBOARDS:
        for index, (_, expr) in enumerate(dashboard_queries(dashboard)):
            concrete = expr.replace("$__rate_interval", "5m")
            concrete = re.sub(r"\$\{?\w+\}?", ".*", concrete)
            rules.append({"record": f"dashboard:query:{index}", "expr": concrete})
    rules_file = tmp_path / "dashboard-queries.rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    done = subprocess.run(
        [promtool, "check", "rules", str(rules_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
