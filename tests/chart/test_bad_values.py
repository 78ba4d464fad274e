"""Values that would deploy a broken release are refused with a message that names the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from .rendering import one, render, render_failure

SCHEMA_ERRORS = [
    pytest.param(
        ["api.replicaCunt=3"], "additional properties 'replicaCunt' not allowed", id="typo-in-a-key"
    ),
    pytest.param(["worker.autoscaling.mode=both"], "/worker/autoscaling/mode", id="unknown-mode"),
    pytest.param(["worker.concurrency=0"], "/worker/concurrency", id="zero-concurrency"),
    pytest.param(["worker.queues={}"], "/worker/queues", id="no-queues"),
    pytest.param(["redis.maxmemory=lots"], "/redis/maxmemory", id="bad-maxmemory"),
    pytest.param(
        ["api.resources.limits.memory=null"], "/api/resources/limits", id="no-memory-limit"
    ),
    pytest.param(
        ["worker.resources.requests.cpu=null"], "/worker/resources/requests", id="no-cpu-request"
    ),
    pytest.param(
        ["worker.autoscaling.keda.serverAddress=prometheus:9090"],
        "/worker/autoscaling/keda/serverAddress",
        id="keda-address-without-scheme",
    ),
    pytest.param(["flower.auth.username=a:b"], "/flower/auth/username", id="colon-in-username"),
    pytest.param(["scheduler.replicaCount=0"], "/scheduler/replicaCount", id="no-scheduler"),
]

TEMPLATE_ERRORS = [
    pytest.param(
        ["worker.softShutdownTimeoutSeconds=60", "worker.terminationGracePeriodSeconds=65"],
        "worker.terminationGracePeriodSeconds (65) must be at least 70, "
        "worker.softShutdownTimeoutSeconds (60) + 10 s",
        id="grace-shorter-than-soft-shutdown",
    ),
    pytest.param(
        ["worker.softShutdownTimeoutSeconds=600", "worker.terminationGracePeriodSeconds=45"],
        "Raise worker.terminationGracePeriodSeconds or lower worker.softShutdownTimeoutSeconds",
        id="soft-shutdown-for-long-tasks-without-the-grace-period",
    ),
    pytest.param(
        ["api.gracefulShutdownSeconds=30", "api.terminationGracePeriodSeconds=30"],
        "api.gracefulShutdownSeconds (30) must be lower than",
        id="api-grace",
    ),
    pytest.param(
        ["worker.autoscaling.mode=hpa", "worker.autoscaling.minReplicas=0"],
        "HPAScaleToZero feature gate",
        id="hpa-scale-to-zero-without-gate",
    ),
    pytest.param(
        ["worker.autoscaling.mode=none", "worker.autoscaling.minReplicas=0"],
        "needs worker.autoscaling.mode keda or hpa",
        id="scale-to-zero-without-autoscaler",
    ),
    pytest.param(
        [
            "worker.autoscaling.mode=keda",
            "worker.autoscaling.minReplicas=5",
            "worker.autoscaling.maxReplicas=2",
        ],
        "minReplicas (5) must not exceed",
        id="min-above-max",
    ),
    pytest.param(
        ["redis.enabled=false"], "needs externalRedis.existingSecret", id="no-redis-at-all"
    ),
    pytest.param(
        ["scheduler.leaseSeconds=1"],
        "scheduler.leaseSeconds (1) must be at least twice scheduler.pollSeconds (1)",
        id="lease-shorter-than-two-polls",
    ),
    pytest.param(
        ["worker.queues={default,Images}"], "'Images' does not match pattern", id="bad-queue-name"
    ),
]


@pytest.mark.parametrize(("assignments", "message"), SCHEMA_ERRORS)
def test_schema_refuses(assignments: list[str], message: str) -> None:
    error = render_failure(assignments)
    assert "values don't meet the specifications of the schema" in error
    assert message in error


@pytest.mark.parametrize(("assignments", "message"), TEMPLATE_ERRORS)
def test_chart_refuses(assignments: list[str], message: str) -> None:
    error = render_failure(assignments)
    assert message in error


def test_hpa_scale_to_zero_is_allowed_when_the_gate_is_declared() -> None:
    manifests = render(
        set_values=[
            "worker.autoscaling.mode=hpa",
            "worker.autoscaling.minReplicas=0",
            "worker.autoscaling.hpa.allowScaleToZero=true",
        ]
    )
    assert one(manifests, "HorizontalPodAutoscaler", "-worker")["spec"]["minReplicas"] == 0


def test_a_grace_period_of_exactly_the_soft_shutdown_plus_10_is_accepted() -> None:
    manifests = render(
        set_values=[
            "worker.softShutdownTimeoutSeconds=600",
            "worker.terminationGracePeriodSeconds=610",
        ]
    )
    worker = one(manifests, "Deployment", "-worker")
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 610
    config = one(manifests, "ConfigMap", "-config")["data"]
    assert config["KUBETASKS_WORKER_SOFT_SHUTDOWN_TIMEOUT"] == "600"


def test_a_fractional_soft_shutdown_rounds_the_grace_period_up(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"  # --set would pass 60.5 as a string
    values.write_text(
        "worker: {softShutdownTimeoutSeconds: 60.5, terminationGracePeriodSeconds: 70}"
    )
    assert "worker.terminationGracePeriodSeconds (70) must be at least 71" in render_failure(
        [], [values]
    )
