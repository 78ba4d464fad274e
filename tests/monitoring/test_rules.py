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


def test_autoscaling_queries_count_each_queue_once(promtool: str, tmp_path: Path) -> None:
    """The adapter and KEDA queries, run by promtool on two API replicas' identical gauges.

    KEDA's query sums the deployment's queues (30 + 20); the adapter's answers per queue, as
    the HPA's selector queue=default asks (30, not 60). Another namespace never leaks in.
    """
    (adapter_rule,) = load_yaml(ADAPTER_RULES)["externalRules"]
    adapter_query = (
        adapter_rule["metricsQuery"]
        .replace("<<.Series>>", "kubetasks_queue_backlog")
        .replace("<<.LabelMatchers>>", 'namespace="kubetasks",queue="default"')
    )
    (keda_trigger,) = load_yaml(KEDA_TRIGGER)["triggers"]
    assert keda_trigger["type"] == "prometheus"
    keda_query = keda_trigger["metadata"]["query"]
    rules = {
        "groups": [
            {
                "name": "autoscaling",
                "rules": [
                    {"record": "adapter:kubetasks_queue_backlog", "expr": adapter_query},
                    {"record": "keda:kubetasks_queue_backlog", "expr": keda_query},
                ],
            }
        ]
    }
    adapter_sample = 'adapter:kubetasks_queue_backlog{queue="default"}'
    series = [
        ('{namespace="kubetasks",queue="default",instance="api-a"}', "30x5"),
        ('{namespace="kubetasks",queue="default",instance="api-b"}', "30x5"),
        ('{namespace="kubetasks",queue="cpu",instance="api-a"}', "20x5"),
        ('{namespace="kubetasks",queue="cpu",instance="api-b"}', "20x5"),
        ('{namespace="other",queue="default",instance="api-c"}', "999x5"),
    ]
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
                    {
                        "expr": "adapter:kubetasks_queue_backlog",
                        "eval_time": "2m",
                        "exp_samples": [{"labels": adapter_sample, "value": 30}],
                    },
                    {
                        "expr": "keda:kubetasks_queue_backlog",
                        "eval_time": "2m",
                        "exp_samples": [{"labels": "keda:kubetasks_queue_backlog", "value": 50}],
                    },
                ],
            }
        ],
    }
    (tmp_path / "autoscaling.rules.yaml").write_text(yaml.safe_dump(rules))
    (tmp_path / "autoscaling.test.yaml").write_text(yaml.safe_dump(tests))
    run_promtool(promtool, "check", "rules", "autoscaling.rules.yaml", cwd=tmp_path)
    run_promtool(promtool, "test", "rules", "autoscaling.test.yaml", cwd=tmp_path)
