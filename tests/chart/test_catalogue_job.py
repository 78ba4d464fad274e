"""The catalogue Job: a worker pool that may have no worker gets a post-install/post-upgrade hook
that publishes its tasks (`python -m worker.catalogue`) from its image, with exactly its workers'
environment, security context and placement; a pool that always has a worker gets none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from .rendering import (
    CHART_DIR,
    JOB_SHARED_POD_FIELDS,
    KEDA_APIS,
    MONITORING_APIS,
    RELEASE,
    Manifest,
    by_kind,
    pod_spec,
    render,
    render_failure,
)

SCALE_TO_ZERO = CHART_DIR / "ci" / "scale-to-zero-values.yaml"
# The container fields the Job shares with the pool's workers (pod fields: JOB_SHARED_POD_FIELDS).
SHARED_CONTAINER_FIELDS = ("image", "imagePullPolicy", "envFrom", "env", "securityContext")
# A pool unlike worker:'s defaults in everything the Job must take from it.
OWN_POOL: dict[str, Any] = {
    "name": "own",
    "image": {"repository": "registry.example.com/team/worker-own", "tag": "1.2.3"},
    "queues": ["own"],
    "concurrency": 1,
    "softShutdownTimeoutSeconds": 40,
    "terminationGracePeriodSeconds": 60,
    "nodeSelector": {"kubetasks.io/node-class": "own"},
    "tolerations": [{"key": "own", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]}
                        ]
                    }
                ]
            }
        }
    },
    "extraEnv": [{"name": "KUBETASKS_TASK_MODULES", "value": '["own_tasks"]'}],
    "autoscaling": {"mode": "keda", "minReplicas": 0},
}


def values_file(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def pools(*pools: dict[str, Any]) -> dict[str, Any]:
    return {
        "imagePullSecrets": [{"name": "registry"}],
        "settings": {"taskTimeLimits": {"sleep": 30}},
        "worker": {"pools": list(pools)},
    }


def jobs(manifests: list[Manifest]) -> dict[str, Manifest]:
    return {job["metadata"]["name"]: job for job in by_kind(manifests, "Job")}


def deployment(manifests: list[Manifest], name: str) -> Manifest:
    [found] = [d for d in by_kind(manifests, "Deployment") if d["metadata"]["name"] == name]
    return found


def assert_publishes_as_the_pool(job: Manifest, pool: Manifest) -> None:
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    spec = pod_spec(job)
    assert spec["restartPolicy"] == "Never"
    [container] = spec["containers"]
    assert container["command"] == ["python", "-m", "worker.catalogue"]
    [worker] = pod_spec(pool)["containers"]
    for field in SHARED_CONTAINER_FIELDS:
        assert container.get(field) == worker.get(field), field
    for field in JOB_SHARED_POD_FIELDS:
        assert spec.get(field) == pod_spec(pool).get(field), field
    # Not the pool's component: its PodDisruptionBudget and PodMonitor select its workers by it.
    component = job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
    assert component == "catalogue"


def test_the_scale_to_zero_configuration_renders_the_job_for_the_policy_checks() -> None:
    """ci/ renderings are what test_policy and test_validate check: one of them must hold it."""
    manifests = render([SCALE_TO_ZERO])
    assert_publishes_as_the_pool(
        jobs(manifests)[f"{RELEASE}-worker-catalogue"], deployment(manifests, f"{RELEASE}-worker")
    )


@pytest.mark.parametrize(
    ("autoscaling", "api_versions"),
    [
        pytest.param({"mode": "keda", "minReplicas": 0}, (), id="keda"),
        pytest.param({"mode": "auto", "minReplicas": 0}, KEDA_APIS, id="auto-keda"),
        pytest.param(
            {"mode": "hpa", "minReplicas": 0, "hpa": {"allowScaleToZero": True}}, (), id="hpa"
        ),
        pytest.param({"mode": "none", "minReplicas": 1}, (), id="none-replica-count-0"),
    ],
)
def test_a_pool_that_may_have_no_worker_publishes_as_its_workers_would(
    tmp_path: Path, autoscaling: dict[str, Any], api_versions: tuple[str, ...]
) -> None:
    own = {**OWN_POOL, "autoscaling": autoscaling}
    if autoscaling["mode"] == "none":
        own["replicaCount"] = 0
    manifests = render(
        [values_file(tmp_path, pools({"name": "default"}, own))],
        api_versions=(*MONITORING_APIS, *api_versions),
    )
    assert list(jobs(manifests)) == [f"{RELEASE}-worker-own-catalogue"]
    job = jobs(manifests)[f"{RELEASE}-worker-own-catalogue"]
    kubernetes_validate.validate(job, "1.30.0", strict=True)  # the ci/ renderings: test_validate
    assert_publishes_as_the_pool(job, deployment(manifests, f"{RELEASE}-worker-own"))
    env = {e["name"]: e.get("value") for e in pod_spec(job)["containers"][0]["env"]}
    assert env["KUBETASKS_TASK_MODULES"] == '["own_tasks"]'
    assert env["KUBETASKS_WORKER_QUEUES"] == '["own"]'


@pytest.mark.parametrize(
    ("values", "api_versions"),
    [
        pytest.param({}, (), id="defaults"),
        pytest.param({"autoscaling": {"mode": "keda", "minReplicas": 1}}, (), id="keda-min-1"),
        # mode auto without either API: the fixed replicaCount (1) runs, minReplicas has no effect.
        pytest.param({"autoscaling": {"minReplicas": 0}}, (), id="auto-without-apis"),
        pytest.param({"autoscaling": {"mode": "none"}, "replicaCount": 2}, (), id="none"),
        pytest.param({"autoscaling": {"mode": "hpa", "minReplicas": 2}}, (), id="hpa-min-2"),
    ],
)
def test_a_pool_that_always_has_a_worker_gets_no_job(
    tmp_path: Path, values: dict[str, Any], api_versions: tuple[str, ...]
) -> None:
    manifests = render([values_file(tmp_path, {"worker": values})], api_versions=api_versions)
    assert not by_kind(manifests, "Job")
    policy = by_kind(manifests, "NetworkPolicy")[0]
    assert "catalogue" not in yaml.safe_dump(policy), "Redis admits no catalogue pods then"


def test_the_job_retries_while_redis_starts_within_its_deadline() -> None:
    spec = jobs(render([SCALE_TO_ZERO]))[f"{RELEASE}-worker-catalogue"]["spec"]
    # The Job controller waits 10 s before the first retry and doubles it each time.
    waits = sum(10 * 2**attempt for attempt in range(spec["backoffLimit"]))
    assert 60 <= waits < spec["activeDeadlineSeconds"] < 300, "helm's default --timeout is 5m"
    assert spec["ttlSecondsAfterFinished"] > 0


def test_a_pool_may_set_the_jobs_resources(tmp_path: Path) -> None:
    own = {**OWN_POOL, "catalogueJob": {"resources": {"limits": {"memory": "1Gi"}}}}
    manifests = render([values_file(tmp_path, pools({"name": "default"}, own))])
    resources = pod_spec(jobs(manifests)[f"{RELEASE}-worker-own-catalogue"])["containers"][0][
        "resources"
    ]
    assert resources == {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}}


def test_a_job_name_too_long_for_its_pod_labels_is_refused(tmp_path: Path) -> None:
    # 36 characters fit <release>-worker-<name>-catalogue in 63; HPA, since KEDA allows fewer.
    scaling = {"mode": "hpa", "minReplicas": 0, "hpa": {"allowScaleToZero": True}}
    longest = {"name": "p" * 36, "autoscaling": scaling}
    render([values_file(tmp_path, pools(longest))], api_versions=())
    error = render_failure([], [values_file(tmp_path, pools({**longest, "name": "p" * 37}))])
    assert f"worker pool {'p' * 37}: its catalogue Job" in error
