"""The scheduler's Deployment (`python -m scheduler` from the API image): its image, command,
settings and probes, its PodDisruptionBudget, its scrape job, and nothing at all when disabled."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.settings import Settings

from .rendering import Manifest, by_kind, one, pod_spec, render, render_failure
from .test_manifests import kustomize_build


def scheduler_container(manifests: list[Manifest]) -> dict[str, Any]:
    [container] = pod_spec(one(manifests, "Deployment", "-scheduler"))["containers"]
    return container  # type: ignore[no-any-return]


def env_values(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def test_the_scheduler_runs_from_the_api_image_with_the_apis_redis() -> None:
    manifests = render(
        set_values=["api.image.repository=registry.example.com/kt-api", "api.image.tag=1.2.3"]
    )
    [api] = pod_spec(one(manifests, "Deployment", "-api"))["containers"]
    scheduler = scheduler_container(manifests)
    assert scheduler["image"] == api["image"] == "registry.example.com/kt-api:1.2.3"
    assert scheduler["imagePullPolicy"] == api["imagePullPolicy"]
    assert scheduler["command"] == ["python", "-m", "scheduler"]
    assert scheduler["envFrom"] == api["envFrom"]
    for name in ("REDIS_PASSWORD", "KUBETASKS_REDIS_URL"):
        assert env_values(scheduler)[name] == env_values(api)[name]


def test_unedited_k8s_runs_the_scheduler_from_the_api_image() -> None:
    """`kustomize edit set image kubetasks-api=...` points the scheduler at the new image too."""
    deployments = {d["metadata"]["name"]: d for d in by_kind(kustomize_build(), "Deployment")}
    images = {
        name: pod_spec(deployments[f"kubetasks-{name}"])["containers"][0]["image"]
        for name in ("api", "scheduler")
    }
    assert images["scheduler"] == images["api"]


def test_the_scheduler_settings_come_from_its_values(tmp_path: Any) -> None:
    values = tmp_path / "values.yaml"  # --set would pass 0.5 as a string
    values.write_text("scheduler: {pollSeconds: 0.5, leaseSeconds: 10, metricsPort: 9900}\n")
    env = env_values(scheduler_container(render([values])))
    assert env["KUBETASKS_SCHEDULES_POLL_SECONDS"] == "0.5"
    assert env["KUBETASKS_SCHEDULES_LEASE_SECONDS"] == "10"
    assert env["KUBETASKS_SCHEDULES_METRICS_PORT"] == "9900"
    for name in env:
        if name.startswith("KUBETASKS_") and name != "KUBETASKS_REDIS_URL":
            assert name.removeprefix("KUBETASKS_").lower() in Settings.model_fields, name


def test_the_scheduler_probes_hit_the_port_its_metrics_are_served_on() -> None:
    manifests = render(set_values=["scheduler.metricsPort=9900"])
    scheduler = scheduler_container(manifests)
    [port] = scheduler["ports"]
    assert (port["name"], port["containerPort"]) == ("metrics", 9900)
    assert env_values(scheduler)["KUBETASKS_SCHEDULES_METRICS_PORT"] == "9900"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert scheduler[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}, probe
    grace = pod_spec(one(manifests, "Deployment", "-scheduler"))["terminationGracePeriodSeconds"]
    assert grace <= 30


@pytest.mark.parametrize(("replicas", "budget"), [(2, True), (3, True), (1, False)])
def test_a_disruption_budget_comes_with_more_than_one_replica(replicas: int, budget: bool) -> None:
    manifests = render(set_values=[f"scheduler.replicaCount={replicas}"])
    deployment = one(manifests, "Deployment", "-scheduler")
    assert deployment["spec"]["replicas"] == replicas
    budgets = [
        p
        for p in by_kind(manifests, "PodDisruptionBudget")
        if p["metadata"]["name"].endswith("-scheduler")
    ]
    assert len(budgets) == int(budget)
    if budget:
        [pdb] = budgets
        assert pdb["spec"]["maxUnavailable"] == 1
        assert pdb["spec"]["selector"] == deployment["spec"]["selector"]


def test_the_scheduler_is_scraped_as_job_kubetasks_scheduler() -> None:
    manifests = render()
    monitor = one(manifests, "PodMonitor", "-scheduler")
    deployment = one(manifests, "Deployment", "-scheduler")
    assert monitor["spec"]["selector"] == deployment["spec"]["selector"]
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["relabelings"] == [{"targetLabel": "job", "replacement": "kubetasks-scheduler"}]


def test_a_disabled_scheduler_renders_nothing_and_gets_no_redis_access() -> None:
    manifests = render(set_values=["scheduler.enabled=false"])
    assert not [m for m in manifests if "scheduler" in m["metadata"]["name"]]
    [rule] = one(manifests, "NetworkPolicy", "-redis")["spec"]["ingress"]
    [expressions] = [
        e
        for e in rule["from"][0]["podSelector"]["matchExpressions"]
        if e["key"] == "app.kubernetes.io/component"
    ]
    assert "scheduler" not in expressions["values"]


def test_a_lease_of_twice_the_poll_is_the_shortest_accepted(tmp_path: Any) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("scheduler: {pollSeconds: 0.5, leaseSeconds: 1}\n")
    assert render([values])
    values.write_text("scheduler: {pollSeconds: 0.5, leaseSeconds: 0.9}\n")
    error = render_failure([], [values])
    assert (
        "scheduler.leaseSeconds (0.9) must be at least twice scheduler.pollSeconds (0.5)" in error
    )
