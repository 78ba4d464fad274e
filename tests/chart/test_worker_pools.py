"""worker.pools: each pool its own Deployment, PodDisruptionBudget, autoscaler and PodMonitor, on
its own queues, with worker: as the defaults; the default pool keeps the single-pool names and
selector (immutable in a Deployment), and no pool's selector reaches another pool's pods."""

from __future__ import annotations

import re
import shutil
from itertools import permutations
from pathlib import Path
from typing import Any

import pytest
import yaml

from .rendering import (
    CHART_DIR,
    CI_VALUES,
    KEDA_APIS,
    MONITORING_APIS,
    RELEASE,
    REPO_ROOT,
    Manifest,
    by_kind,
    one,
    pod_spec,
    render,
    render_failure,
    render_notes,
)

TWO_POOLS = CHART_DIR / "ci" / "two-pools-values.yaml"
CLUSTER = MONITORING_APIS + KEDA_APIS
# Where the two pools both get HPAs: KEDA would hold the external metrics API (NOTES warns).
EXTERNAL_METRICS_CLUSTER = (*MONITORING_APIS, "external.metrics.k8s.io/v1beta1")
# What every release installed before worker pools has in its worker Deployment's selector.
SINGLE_POOL_SELECTOR = {
    "app.kubernetes.io/name": "kubetasks",
    "app.kubernetes.io/instance": RELEASE,
    "app.kubernetes.io/component": "worker",
}
POOL_ENV = {
    "KUBETASKS_WORKER_QUEUES",
    "KUBETASKS_WORKER_CONCURRENCY",
    "KUBETASKS_WORKER_SOFT_SHUTDOWN_TIMEOUT",
}


def workers(manifests: list[Manifest]) -> dict[str, Manifest]:
    return {
        d["metadata"]["name"]: d
        for d in by_kind(manifests, "Deployment")
        if d["metadata"]["name"].startswith(f"{RELEASE}-worker")
    }


def pod_labels(deployment: Manifest) -> dict[str, str]:
    return deployment["spec"]["template"]["metadata"]["labels"]  # type: ignore[no-any-return]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and In expressions, all the chart uses) against pod labels."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", expression
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def container_env(deployment: Manifest) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in pod_spec(deployment)["containers"][0]["env"]}


def pools_file(tmp_path: Path, pools: list[dict[str, Any]], **worker: Any) -> Path:
    path = tmp_path / "pools-values.yaml"
    path.write_text(yaml.safe_dump({"worker": {**worker, "pools": pools}}))
    return path


@pytest.fixture(scope="module")
def two_pools() -> list[Manifest]:
    return render([TWO_POOLS], api_versions=EXTERNAL_METRICS_CLUSTER)


def test_the_two_pool_configuration_is_one_of_the_ci_renderings() -> None:
    """Lint, schema validation and the policy tests iterate over CI_VALUES."""
    assert TWO_POOLS in CI_VALUES


def test_default_values_render_the_single_pool_worker_unchanged() -> None:
    manifests = render(api_versions=CLUSTER)
    [worker] = workers(manifests).values()
    assert worker["metadata"]["name"] == f"{RELEASE}-worker"
    assert worker["spec"]["selector"] == {"matchLabels": SINGLE_POOL_SELECTOR}
    assert not POOL_ENV & container_env(worker).keys(), "the ConfigMap's values, not overrides"
    for kind in ("PodDisruptionBudget", "ScaledObject", "PodMonitor"):
        [obj] = [m for m in by_kind(manifests, kind) if "worker" in m["metadata"]["name"]]
        assert obj["metadata"]["name"] == f"{RELEASE}-worker", kind
    pdb = one(manifests, "PodDisruptionBudget", "-worker")
    assert pdb["spec"]["selector"] == {"matchLabels": SINGLE_POOL_SELECTOR}


def test_values_without_pools_keep_the_single_pool_worker(tmp_path: Path) -> None:
    """`helm upgrade --reuse-values` renders with the defaults of the chart the release was
    installed from: those of a chart before pools have no worker.pools."""
    chart = tmp_path / "kubetasks"
    shutil.copytree(CHART_DIR, chart)
    values = chart / "values.yaml"
    pools = "  pools:\n    - name: default\n"
    assert pools in values.read_text()
    values.write_text(values.read_text().replace(pools, ""))
    [worker] = workers(render(chart_dir=chart)).values()
    assert worker["metadata"]["name"] == f"{RELEASE}-worker"
    assert worker["spec"]["selector"] == {"matchLabels": SINGLE_POOL_SELECTOR}


def test_each_pool_has_its_deployment_pdb_scaler_and_pod_monitor(
    two_pools: list[Manifest],
) -> None:
    deployments = workers(two_pools)
    default, cpu = f"{RELEASE}-worker", f"{RELEASE}-worker-cpu"
    assert sorted(deployments) == [default, cpu]
    assert deployments[default]["spec"]["selector"] == {"matchLabels": SINGLE_POOL_SELECTOR}
    for kind in ("PodDisruptionBudget", "PodMonitor"):
        objects = {
            m["metadata"]["name"]: m
            for m in by_kind(two_pools, kind)
            if "-worker" in m["metadata"]["name"]
        }
        assert sorted(objects) == [default, cpu], kind
        for name, obj in objects.items():
            matched = [
                n for n, d in deployments.items() if selects(obj["spec"]["selector"], pod_labels(d))
            ]
            assert matched == [name], f"{kind} {name} selects the pods of {matched}"
    # The default pool inherits mode auto (an HPA on this cluster); cpu asks for one.
    hpas = {
        h["spec"]["scaleTargetRef"]["name"]: h
        for h in by_kind(two_pools, "HorizontalPodAutoscaler")
        if "-worker" in h["metadata"]["name"]
    }
    assert sorted(hpas) == [default, cpu]
    for name, queues, target in ((default, ["default"], "10"), (cpu, ["cpu"], "1")):
        metric = hpas[name]["spec"]["metrics"][0]["external"]
        expressions = metric["metric"]["selector"]["matchExpressions"]
        assert {e["key"]: e["values"] for e in expressions}["queue"] == queues
        assert metric["target"]["averageValue"] == target
    for deployment in deployments.values():
        assert "replicas" not in deployment["spec"], "an autoscaler owns each pool's count"


def test_each_pool_gets_its_overrides_over_the_worker_defaults(two_pools: list[Manifest]) -> None:
    deployments = workers(two_pools)
    default = deployments[f"{RELEASE}-worker"]
    cpu = deployments[f"{RELEASE}-worker-cpu"]
    config = one(two_pools, "ConfigMap", "-config")["data"]
    assert config["KUBETASKS_WORKER_QUEUES"] == '["default","cpu"]', "worker.queues, the defaults"
    assert container_env(default)["KUBETASKS_WORKER_QUEUES"] == '["default"]'
    assert container_env(cpu)["KUBETASKS_WORKER_QUEUES"] == '["cpu"]'
    assert container_env(cpu)["KUBETASKS_WORKER_CONCURRENCY"] == "1"
    assert "KUBETASKS_WORKER_CONCURRENCY" not in container_env(default)
    cpu_pod, default_pod = pod_spec(cpu), pod_spec(default)
    assert cpu_pod["containers"][0]["image"].startswith("example/kubetasks-worker-own:")
    assert default_pod["containers"][0]["image"].startswith("kubetasks-worker:")
    flower = pod_spec(one(two_pools, "Deployment", "-flower"))["containers"][0]
    assert flower["image"] == default_pod["containers"][0]["image"], "Flower keeps worker.image"
    assert cpu_pod["nodeSelector"] == {"kubetasks.io/node-class": "cpu"}
    assert "nodeSelector" not in default_pod
    assert cpu_pod["containers"][0]["resources"]["requests"] == {"cpu": "1", "memory": "512Mi"}
    assert default_pod["containers"][0]["resources"]["requests"] == {
        "cpu": "250m",
        "memory": "256Mi",
    }
    # What a pool does not set it inherits: probes, grace period, the soft shutdown.
    assert cpu_pod["terminationGracePeriodSeconds"] == default_pod["terminationGracePeriodSeconds"]
    assert cpu_pod["containers"][0]["startupProbe"] == default_pod["containers"][0]["startupProbe"]


def test_a_pool_override_leaves_the_defaults_of_the_other_pools_alone(tmp_path: Path) -> None:
    values = pools_file(
        tmp_path,
        [
            {"name": "cpu", "queues": ["cpu"], "autoscaling": {"maxReplicas": 3}},
            {"name": "default", "queues": ["default"]},
        ],
    )
    scaled = {s["metadata"]["name"]: s for s in by_kind(render([values]), "ScaledObject")}
    assert scaled[f"{RELEASE}-worker-cpu"]["spec"]["maxReplicaCount"] == 3
    assert scaled[f"{RELEASE}-worker"]["spec"]["maxReplicaCount"] == 10


def test_no_pool_selector_matches_another_pools_pods(two_pools: list[Manifest]) -> None:
    deployments = list(workers(two_pools).values())
    for one_pool, other in permutations(deployments, 2):
        assert not selects(one_pool["spec"]["selector"], pod_labels(other)), (
            f"{one_pool['metadata']['name']} selects the pods of {other['metadata']['name']}"
        )


def test_redis_admits_and_prometheus_scrapes_the_pods_of_every_pool(
    two_pools: list[Manifest],
) -> None:
    policy = one(two_pools, "NetworkPolicy", "-redis")
    [peer] = policy["spec"]["ingress"][0]["from"]
    monitors = by_kind(two_pools, "PodMonitor")
    for name, deployment in workers(two_pools).items():
        labels = pod_labels(deployment)
        assert selects(peer["podSelector"], labels), f"Redis refuses the pods of {name}"
        assert [m for m in monitors if selects(m["spec"]["selector"], labels)], name


def test_mode_auto_resolves_per_pool() -> None:
    """On a cluster without autoscaling APIs the default pool (mode auto) runs a fixed count,
    while the cpu pool keeps the HPA it asks for."""
    manifests = render([TWO_POOLS], api_versions=())
    deployments = workers(manifests)
    assert deployments[f"{RELEASE}-worker"]["spec"]["replicas"] == 1
    assert "replicas" not in deployments[f"{RELEASE}-worker-cpu"]["spec"]
    assert one(manifests, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"] == (
        f"{RELEASE}-worker-cpu"
    )
    assert not by_kind(manifests, "ScaledObject")


def test_two_pools_may_consume_one_queue(tmp_path: Path) -> None:
    values = pools_file(
        tmp_path,
        [{"name": "default", "queues": ["default", "cpu"]}, {"name": "cpu", "queues": ["cpu"]}],
    )
    queries = [
        s["spec"]["triggers"][0]["metadata"]["query"]
        for s in by_kind(render([values]), "ScaledObject")
    ]
    assert len(queries) == 2
    assert all("cpu" in query for query in queries)


@pytest.mark.parametrize(
    ("pools", "message"),
    [
        pytest.param(
            [{"name": "Big_Pool"}], "'Big_Pool' does not match pattern", id="not-a-dns-label"
        ),
        pytest.param(
            [{"name": "p" * 57}], "/worker/pools/0/name': maxLength", id="too-long-for-a-label"
        ),
        pytest.param(
            [{"name": "default", "metricsPort": 9000}],
            "/worker/pools/0': additional properties 'metricsPort' not allowed",
            id="release-wide-key-in-a-pool",
        ),
        pytest.param(
            [{"name": "default"}, {"name": "gpu"}, {"name": "gpu"}],
            "worker.pools: two pools are named gpu",
            id="duplicate-name",
        ),
        pytest.param(
            [{"name": "default"}, {"name": "gpu", "queues": ["GPU", "cpu"]}],
            "'GPU' does not match pattern",
            id="not-a-queue-name",
        ),
        pytest.param(
            [{"name": "p" * 38}],
            f"worker pool {'p' * 38}: its ScaledObject would be named {RELEASE}-worker-{'p' * 38} "
            "(55 characters), and KEDA accepts 54 at most",
            id="scaledobject-name-too-long-for-keda",
        ),
    ],
)
def test_bad_pools_are_refused_naming_the_pool(
    tmp_path: Path, pools: list[dict[str, Any]], message: str
) -> None:
    assert message in render_failure([], [pools_file(tmp_path, pools)])


@pytest.mark.parametrize(
    ("defaults", "pools", "message"),
    [
        pytest.param(
            {},
            [{"name": "default"}, {"name": "long", "softShutdownTimeoutSeconds": 600}],
            "worker pool long: worker.terminationGracePeriodSeconds (45) must be at least 610, "
            "worker.pools[1].softShutdownTimeoutSeconds (600) + 10 s",
            id="grace-period",
        ),
        pytest.param(
            {"autoscaling": {"mode": "none"}},
            [{"name": "default"}, {"name": "idle", "autoscaling": {"minReplicas": 0}}],
            "worker pool idle: worker.pools[1].autoscaling.minReplicas 0 (scale to zero) needs "
            "worker.autoscaling.mode keda or hpa",
            id="scale-to-zero-without-autoscaler",
        ),
        pytest.param(
            {},
            [
                {"name": "default"},
                {"name": "hpa", "autoscaling": {"mode": "hpa", "minReplicas": 0}},
            ],
            "worker pool hpa: worker.pools[1].autoscaling.minReplicas 0 with mode hpa needs the "
            "HPAScaleToZero feature gate: set worker.autoscaling.hpa.allowScaleToZero=true",
            id="hpa-scale-to-zero-without-gate",
        ),
        pytest.param(
            {"autoscaling": {"minReplicas": 2}},
            [{"name": "small", "autoscaling": {"maxReplicas": 1}}, {"name": "default"}],
            "worker pool small: worker.autoscaling.minReplicas (2) must not exceed "
            "worker.pools[0].autoscaling.maxReplicas (1)",
            id="min-above-max",
        ),
    ],
)
def test_per_pool_checks_name_the_pool_and_the_value(
    tmp_path: Path, defaults: dict[str, Any], pools: list[dict[str, Any]], message: str
) -> None:
    assert message in render_failure([], [pools_file(tmp_path, pools, **defaults)])


def test_a_catalogue_queue_no_pool_consumes_is_a_notes_warning() -> None:
    notes = render_notes(
        set_values=["worker.pools[0].name=default", "worker.pools[0].queues={default}"]
    )
    assert "WARNING: no worker pool consumes the catalogue queue(s) cpu." in notes
    assert "Worker pool default (kubetasks-worker) consumes default;" in notes
    assert "WARNING" not in render_notes()


@pytest.mark.parametrize("mode", ["hpa", "keda"])
def test_values_of_a_chart_before_series_labels_select_by_service(
    tmp_path: Path, mode: str
) -> None:
    """`--reuse-values` from a release whose chart had no autoscaling.seriesLabel."""
    chart = tmp_path / "kubetasks"
    shutil.copytree(CHART_DIR, chart)
    values = chart / "values.yaml"
    text = values.read_text()
    key = re.search(r"\n    seriesLabel: service\n", text)
    assert key is not None
    values.write_text(text.replace(key.group(0), "\n"))
    manifests = render(chart_dir=chart, set_values=[f"worker.autoscaling.mode={mode}"])
    if mode == "hpa":
        hpa = one(manifests, "HorizontalPodAutoscaler", "-worker")
        selector = hpa["spec"]["metrics"][0]["external"]["metric"]["selector"]
        keys = [e["key"] for e in selector["matchExpressions"]]
        assert keys == ["queue", "service"]
    else:
        query = one(manifests, "ScaledObject", "-worker")["spec"]["triggers"][0]["metadata"]
        assert f'service="{RELEASE}-api"' in query["query"]


def test_a_pool_with_mode_hpa_on_a_keda_cluster_is_warned_about() -> None:
    notes = render_notes(["worker.autoscaling.mode=hpa"], api_versions=CLUSTER)
    assert "this HPA will read nothing and never scale" in notes
    assert "this HPA will read nothing" not in render_notes(
        ["worker.autoscaling.mode=hpa"], api_versions=EXTERNAL_METRICS_CLUSTER
    )


def test_the_longest_pool_name_keda_accepts_renders(tmp_path: Path) -> None:
    """54 characters: the release name, -worker- and a 37-character pool name."""
    values = pools_file(tmp_path, [{"name": "p" * 37}])
    scaled = one(render([values]), "ScaledObject", "p" * 37)
    assert len(scaled["metadata"]["name"]) == 54


def test_a_long_pool_name_is_fine_under_an_hpa(tmp_path: Path) -> None:
    values = pools_file(tmp_path, [{"name": "p" * 56}], autoscaling={"mode": "hpa"})
    one(render([values]), "HorizontalPodAutoscaler", "p" * 56)


def test_a_pool_may_consume_a_queue_only_its_images_tasks_use(tmp_path: Path) -> None:
    """The chart cannot see an image's tasks: their queues are the workers' to check."""
    values = pools_file(tmp_path, [{"name": "default"}, {"name": "acme", "queues": ["acme"]}])
    acme = one(render([values]), "Deployment", "-worker-acme")
    assert container_env(acme)["KUBETASKS_WORKER_QUEUES"] == '["acme"]'


def test_the_examples_second_pool_runs_its_image_on_its_queue() -> None:
    values = REPO_ROOT / "examples" / "own-tasks" / "values.yaml"
    acme = one(render([values]), "Deployment", "-worker-acme")
    assert container_env(acme)["KUBETASKS_WORKER_QUEUES"] == '["acme"]'
    image = pod_spec(acme)["containers"][0]["image"]
    assert image == "registry.example.com/acme/kubetasks-worker-acme:1.0.0"
