"""Alert rules and autoscaling queries, checked and unit-tested by promtool.

promtool comes with Debian's `prometheus` package. Outside CI the promtool tests skip when it
is missing; in CI (any truthy CI variable) a missing promtool fails them, so the check can't
silently vanish.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.rendering import NAMESPACE, one, render
from tests.tooling import require_binary

PROMETHEUS_FILES = (
    Path(__file__).resolve().parents[2] / "helm" / "kubetasks" / "files" / "prometheus"
)
ALERT_RULES = PROMETHEUS_FILES / "alerts.rules.yaml"
ALERT_TESTS = PROMETHEUS_FILES / "alerts.test.yaml"
ADAPTER_RULES = PROMETHEUS_FILES / "adapter-rules.yaml"
KEDA_TRIGGER = PROMETHEUS_FILES / "keda-trigger.yaml"

SEVERITIES = {"warning", "critical"}


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_binary("promtool", "apt-get install -y prometheus")


def run_promtool(promtool: str, *args: str, cwd: Path) -> str:
    done = subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERT_RULES)["groups"] for rule in group["rules"]]


def test_alert_rules_pass_promtool_check(promtool: str) -> None:
    output = run_promtool(promtool, "check", "rules", ALERT_RULES.name, cwd=PROMETHEUS_FILES)
    assert f"SUCCESS: {len(alert_rules())} rules found" in output


def test_alert_rules_unit_tests_pass(promtool: str) -> None:
    output = run_promtool(promtool, "test", "rules", ALERT_TESTS.name, cwd=PROMETHEUS_FILES)
    assert "SUCCESS" in output


def test_every_alert_is_complete() -> None:
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} == {
        "KubetasksQueueBacklogHigh",
        "KubetasksQueueOldestMessageTooOld",
        "KubetasksTaskFailureRatioHigh",
        "KubetasksQueueHasNoWorkers",
        "KubetasksDeadLetters",
        "KubetasksApiErrorRatioHigh",
        "KubetasksRedisDown",
        "KubetasksScheduleLate",
        "KubetasksSchedulerHasNoLeader",
    }
    for rule in rules:
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert rule["for"], f"{rule['alert']} needs a `for:`"


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in load_yaml(ALERT_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in alert_rules()}
    assert alerts - firing == set(), "alerts never tested firing"
    assert alerts - quiet == set(), "alerts never tested not firing"


def check_queries(
    promtool: str,
    tmp_path: Path,
    queries: dict[str, str],
    series: list[tuple[str, str]],
    expected: dict[str, list[dict[str, Any]]],
) -> None:
    """Record each query of `queries` (name -> PromQL) over kubetasks_queue_backlog `series`
    (labels, promtool values) and check its samples at 2m against `expected` (name -> samples)."""
    rules = {
        "groups": [
            {
                "name": "autoscaling",
                "rules": [{"record": name, "expr": expr} for name, expr in queries.items()],
            }
        ]
    }
    tests = {
        "rule_files": ["autoscaling.rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f"kubetasks_queue_backlog{labels}", "values": values}
                    for labels, values in series
                ],
                "promql_expr_test": [
                    {"expr": name, "eval_time": "2m", "exp_samples": samples}
                    for name, samples in expected.items()
                ],
            }
        ],
    }
    (tmp_path / "autoscaling.rules.yaml").write_text(yaml.safe_dump(rules))
    (tmp_path / "autoscaling.test.yaml").write_text(yaml.safe_dump(tests))
    run_promtool(promtool, "check", "rules", "autoscaling.rules.yaml", cwd=tmp_path)
    run_promtool(promtool, "test", "rules", "autoscaling.test.yaml", cwd=tmp_path)


def adapter_query(label_matchers: str) -> str:
    """The query prometheus-adapter runs for the rule of adapter-rules.yaml."""
    (adapter_rule,) = load_yaml(ADAPTER_RULES)["externalRules"]
    return str(
        adapter_rule["metricsQuery"]
        .replace("<<.Series>>", "kubetasks_queue_backlog")
        .replace("<<.LabelMatchers>>", label_matchers)
    )


def test_autoscaling_queries_count_each_queue_once(promtool: str, tmp_path: Path) -> None:
    """The adapter and KEDA queries, run by promtool on two API replicas' identical gauges.

    KEDA's query sums the deployment's queues (30 + 20); the adapter's answers per queue, as
    the HPA's selector queue=default asks (30, not 60). Another namespace never leaks in.
    """
    (keda_trigger,) = load_yaml(KEDA_TRIGGER)["triggers"]
    assert keda_trigger["type"] == "prometheus"
    queries = {
        "adapter:kubetasks_queue_backlog": adapter_query('namespace="kubetasks",queue="default"'),
        "keda:kubetasks_queue_backlog": keda_trigger["metadata"]["query"],
    }
    series = [
        ('{namespace="kubetasks",queue="default",instance="api-a"}', "30x5"),
        ('{namespace="kubetasks",queue="default",instance="api-b"}', "30x5"),
        ('{namespace="kubetasks",queue="cpu",instance="api-a"}', "20x5"),
        ('{namespace="kubetasks",queue="cpu",instance="api-b"}', "20x5"),
        ('{namespace="other",queue="default",instance="api-c"}', "999x5"),
    ]
    expected = {
        "adapter:kubetasks_queue_backlog": [
            {"labels": 'adapter:kubetasks_queue_backlog{queue="default"}', "value": 30}
        ],
        "keda:kubetasks_queue_backlog": [{"labels": "keda:kubetasks_queue_backlog", "value": 50}],
    }
    check_queries(promtool, tmp_path, queries, series, expected)


# The API series of two releases in one namespace (this one, `kubetasks`, and `other`) as each way
# of scraping labels them: a ServiceMonitor adds the API Service's name; a PodMonitor or a pod job
# adds none, so only the release label the API exports itself tells the releases apart.
SCRAPED_SERIES = {
    "service-monitor": [
        (
            '{namespace="tasks",service="kubetasks-api",release="kubetasks",pod="a",queue="default"}',
            "30x5",
        ),
        (
            '{namespace="tasks",service="kubetasks-api",release="kubetasks",pod="b",queue="default"}',
            "30x5",
        ),
        (
            '{namespace="tasks",service="kubetasks-api",release="kubetasks",pod="a",queue="cpu"}',
            "20x5",
        ),
        (
            '{namespace="tasks",service="other-kubetasks-api",release="other",pod="c",queue="default"}',
            "999x5",
        ),
    ],
    "pod-monitor": [
        ('{namespace="tasks",release="kubetasks",pod="a",queue="default"}', "30x5"),
        ('{namespace="tasks",release="kubetasks",pod="b",queue="default"}', "30x5"),
        ('{namespace="tasks",release="kubetasks",pod="a",queue="cpu"}', "20x5"),
        ('{namespace="tasks",release="other",pod="c",queue="default"}', "999x5"),
    ],
}


@pytest.mark.parametrize(
    ("series_label", "scrape", "found"),
    [
        ("service", "service-monitor", True),
        ("release", "service-monitor", True),
        ("release", "pod-monitor", True),
        ("service", "pod-monitor", False),  # the failure seen on a cluster: nothing to scale on
    ],
)
def test_chart_autoscalers_read_only_their_release(
    promtool: str, tmp_path: Path, series_label: str, scrape: str, found: bool
) -> None:
    """The chart's KEDA query and the query the adapter builds from the chart's HPA selector
    (an `In` requirement becomes `=~` joined by `|`), on two releases' series in one namespace."""
    label = f"worker.autoscaling.seriesLabel={series_label}"
    keda = one(render(set_values=["worker.autoscaling.mode=keda", label]), "ScaledObject")
    hpa = one(render(set_values=["worker.autoscaling.mode=hpa", label]), "HorizontalPodAutoscaler")
    selector = hpa["spec"]["metrics"][0]["external"]["metric"]["selector"]["matchExpressions"]
    assert {e["operator"] for e in selector} == {"In"}
    matchers = [f'namespace="{NAMESPACE}"'] + [
        f'{e["key"]}=~"{"|".join(e["values"])}"' for e in selector
    ]
    queries = {
        "adapter:kubetasks_queue_backlog": adapter_query(",".join(matchers)),
        "keda:kubetasks_queue_backlog": keda["spec"]["triggers"][0]["metadata"]["query"],
    }
    expected: dict[str, list[dict[str, Any]]] = {name: [] for name in queries}
    if found:
        expected = {
            "adapter:kubetasks_queue_backlog": [
                {"labels": 'adapter:kubetasks_queue_backlog{queue="cpu"}', "value": 20},
                {"labels": 'adapter:kubetasks_queue_backlog{queue="default"}', "value": 30},
            ],
            "keda:kubetasks_queue_backlog": [
                {"labels": "keda:kubetasks_queue_backlog", "value": 50}
            ],
        }
    check_queries(promtool, tmp_path, queries, SCRAPED_SERIES[scrape], expected)
