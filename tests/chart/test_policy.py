"""Policy assertions on the rendered objects: Pod Security Standard "restricted", resources,
probes, labels and selectors, autoscaling, shutdown timing and the Redis NetworkPolicy."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from .rendering import (
    CI_VALUES,
    NAMESPACE,
    RELEASE,
    Manifest,
    by_kind,
    one,
    pod_spec,
    render,
    workloads,
)

CI = {path.stem.removesuffix("-values"): path for path in CI_VALUES}
# Workloads that run to completion: the helm test hook, the catalogue and schedules Jobs.
RUN_ONCE = {"Pod", "Job"}
# The containers that talk to Redis through the URL the chart builds.
REDIS_CLIENTS = {"api", "worker", "flower", "scheduler", "catalogue"}
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)


@pytest.fixture(scope="module", params=sorted(CI), ids=str)
def manifests(request: pytest.FixtureRequest) -> list[Manifest]:
    return render([CI[request.param]])


def containers(manifest: Manifest) -> list[dict[str, Any]]:
    spec = pod_spec(manifest)
    return [*spec.get("initContainers", []), *spec["containers"]]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


def test_every_pod_meets_the_restricted_pod_security_standard(manifests: list[Manifest]) -> None:
    for workload in workloads(manifests):
        spec = pod_spec(workload)
        pod_ctx = spec["securityContext"]
        assert pod_ctx["runAsNonRoot"] is True
        assert pod_ctx["runAsUser"] > 0
        assert pod_ctx["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec.get("hostNetwork") is not True and spec.get("hostPID") is not True
        for container in containers(workload):
            ctx = container["securityContext"]
            where = f"{workload['metadata']['name']}/{container['name']}"
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in ctx["capabilities"], where
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["runAsNonRoot"] is True, where
            assert ctx["seccompProfile"]["type"] == "RuntimeDefault", where
            assert ctx.get("privileged") is not True, where


def test_no_pod_mounts_a_service_account_token(manifests: list[Manifest]) -> None:
    for account in by_kind(manifests, "ServiceAccount"):
        assert account["automountServiceAccountToken"] is False
    for workload in workloads(manifests):
        assert pod_spec(workload)["automountServiceAccountToken"] is False


def test_every_container_has_requests_and_a_memory_limit(manifests: list[Manifest]) -> None:
    for workload in workloads(manifests):
        for container in containers(workload):
            resources = container["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys(), container["name"]
            assert "memory" in resources["limits"], container["name"]


def test_long_running_containers_have_probes(manifests: list[Manifest]) -> None:
    for workload in workloads(manifests):
        if workload["kind"] in RUN_ONCE:
            continue
        for container in pod_spec(workload)["containers"]:
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                assert probe in container, f"{container['name']} lacks {probe}"


def probe_check(probe: dict[str, Any]) -> tuple[str, ...]:
    """What a probe checks: ("http", path, port), ("exec", *command) or ("tcp", port)."""
    if "httpGet" in probe:
        return ("http", probe["httpGet"]["path"], probe["httpGet"]["port"])
    if "exec" in probe:
        return ("exec", *probe["exec"]["command"])
    return ("tcp", probe["tcpSocket"]["port"])


WORKER_LIVE = ("exec", "python", "-m", "worker.probe", "live")
FLOWER_UP = ("http", "/flower/healthcheck", "http")
SCHEDULER_UP = ("http", "/metrics", "metrics")
# (kind, name suffix) -> probe -> what it checks. Only the API's start-up probe, the worker's
# readiness and Redis's own readiness reach Redis: a Redis outage must not take the API out of
# its Service, nor restart the schedulers (docs/deploy.md, "Probes").
PROBES: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {
    ("Deployment", "-api"): {
        "startupProbe": ("http", "/readyz?deep=1", "http"),
        "readinessProbe": ("http", "/readyz", "http"),
        "livenessProbe": ("http", "/livez", "http"),
    },
    ("Deployment", "-worker"): {
        "startupProbe": WORKER_LIVE,
        "readinessProbe": ("exec", "python", "-m", "worker.probe", "ready"),
        "livenessProbe": WORKER_LIVE,
    },
    ("Deployment", "-flower"): {
        "startupProbe": FLOWER_UP,
        "readinessProbe": FLOWER_UP,
        "livenessProbe": FLOWER_UP,
    },
    ("Deployment", "-scheduler"): {
        "startupProbe": SCHEDULER_UP,
        "readinessProbe": SCHEDULER_UP,
        "livenessProbe": SCHEDULER_UP,
    },
    ("StatefulSet", "-redis"): {
        "startupProbe": ("tcp", "redis"),
        "readinessProbe": ("exec", "sh", "-c", "redis-cli -h 127.0.0.1 ping | grep -q PONG"),
        "livenessProbe": ("tcp", "redis"),
    },
}


def test_every_probe_checks_what_its_component_documents(manifests: list[Manifest]) -> None:
    pools = worker_deployments(manifests)
    rendered = {
        (w["kind"], w["metadata"]["name"].removeprefix(RELEASE)): [w]
        for w in workloads(manifests)
        if w not in pools
    }
    rendered[("Deployment", "-worker")] = pools
    assert {"-api", "-worker", "-scheduler"} <= {suffix for _, suffix in rendered}
    for key, expected in PROBES.items():
        for workload in rendered.get(key, []):  # none: external Redis
            [container] = pod_spec(workload)["containers"]
            checks = {name: probe_check(container[name]) for name in expected}
            assert checks == expected, workload["metadata"]["name"]


def test_worker_startup_probe_waits_a_minute_and_no_probe_pings_celery(
    manifests: list[Manifest],
) -> None:
    for worker in worker_deployments(manifests):
        startup = pod_spec(worker)["containers"][0]["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 60
    for workload in workloads(manifests):
        assert "inspect" not in str(pod_spec(workload)), "celery inspect ping must not be a probe"


def test_writable_tmp_is_an_empty_dir(manifests: list[Manifest]) -> None:
    for deployment in [one(manifests, "Deployment", "-api"), *worker_deployments(manifests)]:
        spec = pod_spec(deployment)
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
        assert "emptyDir" in volumes[mounts["/tmp"]]


def test_labels_are_standard_and_selectors_match(manifests: list[Manifest]) -> None:
    for manifest in manifests:
        labels = manifest["metadata"]["labels"]
        for key in STANDARD_LABELS:
            assert key in labels, f"{manifest['kind']}/{manifest['metadata']['name']} lacks {key}"
        assert labels["app.kubernetes.io/instance"] == RELEASE
    for workload in workloads(manifests):
        if workload["kind"] in RUN_ONCE:  # a Job's selector is the API server's
            continue
        selector = workload["spec"]["selector"]["matchLabels"]
        pod_labels = workload["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items()
        assert "app.kubernetes.io/component" in selector
    pods = [
        w["spec"]["template"]["metadata"]["labels"]
        for w in workloads(manifests)
        if w["kind"] != "Pod"
    ]
    for service in by_kind(manifests, "Service"):
        selector = service["spec"]["selector"]
        matched = [labels for labels in pods if selector.items() <= labels.items()]
        assert len(matched) == 1, f"Service {service['metadata']['name']} selects {len(matched)}"


def test_service_ports_exist_on_the_selected_pods(manifests: list[Manifest]) -> None:
    templates = [w["spec"]["template"] for w in workloads(manifests) if w["kind"] != "Pod"]
    for service in by_kind(manifests, "Service"):
        selector = service["spec"]["selector"]
        template = next(t for t in templates if selector.items() <= t["metadata"]["labels"].items())
        names = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in names


def worker_deployments(manifests: list[Manifest]) -> list[Manifest]:
    """The Deployment of every worker pool: <release>-worker and <release>-worker-<pool>."""
    return [
        d
        for d in by_kind(manifests, "Deployment")
        if re.fullmatch(f"{RELEASE}-worker(-.+)?", d["metadata"]["name"])
    ]


def test_every_worker_pool_is_scaled_by_hpa_or_keda_never_both(manifests: list[Manifest]) -> None:
    for worker in worker_deployments(manifests):
        hpas = [
            h
            for h in by_kind(manifests, "HorizontalPodAutoscaler")
            if h["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
        ]
        scaled = [
            s
            for s in by_kind(manifests, "ScaledObject")
            if s["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
        ]
        assert len(hpas) + len(scaled) <= 1
        if hpas or scaled:
            assert "replicas" not in worker["spec"], "the autoscaler owns replicas"
        else:
            assert worker["spec"]["replicas"] >= 1


def test_api_replicas_belong_to_its_hpa_when_enabled(manifests: list[Manifest]) -> None:
    api = one(manifests, "Deployment", "-api")
    hpas = [
        h
        for h in by_kind(manifests, "HorizontalPodAutoscaler")
        if h["metadata"]["name"] == api["metadata"]["name"]
    ]
    assert ("replicas" in api["spec"]) == (not hpas)


def test_every_worker_pool_grace_period_outlasts_its_soft_shutdown(
    manifests: list[Manifest],
) -> None:
    config = one(manifests, "ConfigMap", "-config")["data"]
    for worker in worker_deployments(manifests):
        container = pod_spec(worker)["containers"][0]
        # A pool's own soft shutdown is container env, which wins over the ConfigMap.
        own = env_of(container).get("KUBETASKS_WORKER_SOFT_SHUTDOWN_TIMEOUT", {}).get("value")
        soft = float(own or config["KUBETASKS_WORKER_SOFT_SHUTDOWN_TIMEOUT"])
        assert pod_spec(worker)["terminationGracePeriodSeconds"] >= soft + 10
        assert env_of(container)["REMAP_SIGTERM"]["value"] == "SIGQUIT"


def test_api_graceful_shutdown_fits_in_the_grace_period(manifests: list[Manifest]) -> None:
    api = pod_spec(one(manifests, "Deployment", "-api"))
    flag = next(a for a in api["containers"][0]["command"] if "--timeout-graceful-shutdown" in a)
    assert int(flag.split("=")[1]) < api["terminationGracePeriodSeconds"]


def test_kubetasks_containers_get_the_redis_url(manifests: list[Manifest]) -> None:
    for workload in workloads(manifests):
        for container in pod_spec(workload)["containers"]:
            if container["name"] in REDIS_CLIENTS:
                assert "KUBETASKS_REDIS_URL" in env_of(container)


REDIS_URL = re.compile(r"redis://[^@/\s]*@(?P<host>[^:/\s]+):(?P<port>\d+)/")


def test_every_redis_url_names_the_cluster_ip_service(manifests: list[Manifest]) -> None:
    """Clients go through a ClusterIP, whose address outlives a Redis restart; the headless
    Service stays the StatefulSet's (through it the name stops resolving while Redis is down)."""
    if not by_kind(manifests, "StatefulSet"):  # external Redis: the URL is the user's
        return
    redis = one(manifests, "StatefulSet", "-redis")
    services = {s["metadata"]["name"]: s["spec"] for s in by_kind(manifests, "Service")}
    assert services[redis["spec"]["serviceName"]]["clusterIP"] == "None"
    clients = [
        env_of(container)["KUBETASKS_REDIS_URL"]["value"]
        for workload in workloads(manifests)
        for container in pod_spec(workload)["containers"]
        if container["name"] in REDIS_CLIENTS
    ]
    urls = REDIS_URL.findall(yaml.safe_dump_all(manifests))  # anywhere in any object
    assert len(urls) == len(clients) >= 2
    pod_labels = redis["spec"]["template"]["metadata"]["labels"]
    for host, port in urls:
        service = services[host]
        assert service["type"] == "ClusterIP" and "clusterIP" not in service, host
        assert service["selector"].items() <= pod_labels.items()
        assert int(port) in [p["port"] for p in service["ports"]]


def test_service_names_stay_dns_labels_wherever_the_flower_service_name_fits() -> None:
    """-redis-client is the longest suffix; a full name as long as -flower allows must fit.
    (Without KEDA: its ScaledObject names allow 54 characters, a check of their own.)"""
    longest = "k" * (63 - len("-flower"))
    services = by_kind(
        render(set_values=[f"fullnameOverride={longest}", "worker.autoscaling.mode=none"]),
        "Service",
    )
    names = [s["metadata"]["name"] for s in services]
    assert any(n.endswith("-redis-client") for n in names)
    assert max(map(len, names)) <= 63, names


def test_redis_network_policy_admits_exactly_the_redis_clients(
    manifests: list[Manifest],
) -> None:
    statefulsets = by_kind(manifests, "StatefulSet")
    policies = by_kind(manifests, "NetworkPolicy")
    if not statefulsets:
        assert not policies
        return
    redis_labels = statefulsets[0]["spec"]["template"]["metadata"]["labels"]
    policy = one(policies, "NetworkPolicy", "-redis")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= redis_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    [rule] = policy["spec"]["ingress"]
    [peer] = rule["from"]
    expressions = {e["key"]: e for e in peer["podSelector"]["matchExpressions"]}
    clients = {
        w["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        for w in workloads(manifests)
        if {c["name"] for c in pod_spec(w)["containers"]} & REDIS_CLIENTS
    }
    assert {"api", "worker", "scheduler"} <= clients
    admitted = set(expressions["app.kubernetes.io/component"]["values"])
    assert admitted == clients
    assert expressions["app.kubernetes.io/instance"]["values"] == [RELEASE]
    assert "namespaceSelector" not in peer
    assert [p["port"] for p in rule["ports"]] == ["redis"]


def test_redis_persists_with_aof_and_never_evicts() -> None:
    manifests = render([CI["default"]])
    conf = one(manifests, "ConfigMap", "-redis")["data"]["redis.conf"]
    assert "appendonly yes" in conf.splitlines()
    assert "maxmemory-policy noeviction" in conf.splitlines()
    statefulset = one(manifests, "StatefulSet", "-redis")
    assert statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    service = one(manifests, "Service", "-redis")
    assert service["spec"]["clusterIP"] == "None"
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    image = pod_spec(statefulset)["containers"][0]["image"]
    assert image.startswith("docker.io/library/redis:"), "official image, no Bitnami"


def test_a_re_apply_finds_the_redis_objects_as_the_api_server_returns_them() -> None:
    """Client-side `kubectl apply` re-sends every field the server returns otherwise, and reports
    the object "configured" on each apply though nothing changes: a volumeClaimTemplates list
    missing what the server adds (it is compared whole), a Service bool set to false (dropped)."""
    manifests = render([CI["default"]])
    [claim] = one(manifests, "StatefulSet", "-redis")["spec"]["volumeClaimTemplates"]
    assert (claim["apiVersion"], claim["kind"]) == ("v1", "PersistentVolumeClaim")
    assert claim["spec"]["volumeMode"] == "Filesystem"
    assert claim["status"] == {"phase": "Pending"}
    assert "creationTimestamp" not in claim["metadata"]  # omitted since Kubernetes 1.34
    for service in by_kind(manifests, "Service"):
        assert False not in service["spec"].values(), service["metadata"]["name"]


def test_external_redis_uses_the_url_secret_and_renders_no_redis() -> None:
    manifests = render([CI["external-redis"]])
    assert not by_kind(manifests, "StatefulSet")
    assert not by_kind(manifests, "Secret"), "every secret comes from an existing Secret"
    api = pod_spec(one(manifests, "Deployment", "-api"))["containers"][0]
    url = env_of(api)["KUBETASKS_REDIS_URL"]["valueFrom"]["secretKeyRef"]
    assert url == {"name": "kubetasks-external-redis", "key": "url"}


def test_generated_secrets_are_referenced_by_the_pods() -> None:
    manifests = render([CI["default"]])
    secrets = {s["metadata"]["name"]: s for s in by_kind(manifests, "Secret")}
    api = pod_spec(one(manifests, "Deployment", "-api"))["containers"][0]
    key_ref = env_of(api)["KUBETASKS_API_KEY"]["valueFrom"]["secretKeyRef"]
    assert key_ref["key"] in secrets[key_ref["name"]]["data"]
    password = env_of(api)["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password["key"] in secrets[password["name"]]["data"]
    url = env_of(api)["KUBETASKS_REDIS_URL"]["value"]
    assert url == "redis://:$(REDIS_PASSWORD)@kubetasks-redis-client:6379/0"
    flower = pod_spec(one(manifests, "Deployment", "-flower"))["containers"][0]
    auth = env_of(flower)["FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"]
    assert auth["key"] in secrets[auth["name"]]["data"]


def test_hpa_scales_the_worker_on_the_backlog_of_its_queues() -> None:
    manifests = render([CI["hpa"]])
    hpa = one(manifests, "HorizontalPodAutoscaler", "-worker")
    [metric] = hpa["spec"]["metrics"]
    assert metric["type"] == "External"
    assert metric["external"]["metric"]["name"] == "kubetasks_queue_backlog"
    expressions = {
        e["key"]: e["values"] for e in metric["external"]["metric"]["selector"]["matchExpressions"]
    }
    assert expressions["queue"] == ["default"]
    assert expressions["service"] == [f"{RELEASE}-api"], "what the chart's ServiceMonitor adds"
    assert metric["external"]["target"] == {"type": "AverageValue", "averageValue": "20"}
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] > 0
    assert not by_kind(manifests, "ScaledObject")


@pytest.mark.parametrize("config", ["keda", "scale-to-zero"])
def test_keda_scales_the_worker_on_the_summed_max_backlog(config: str) -> None:
    manifests = render([CI[config]])
    scaled = one(manifests, "ScaledObject", "-worker")
    assert (
        scaled["spec"]["scaleTargetRef"]["name"]
        == one(manifests, "Deployment", "-worker")["metadata"]["name"]
    )
    [trigger] = scaled["spec"]["triggers"]
    query = trigger["metadata"]["query"]
    assert query.startswith("sum(max by (queue) (kubetasks_queue_backlog{")
    assert 'queue=~"default|cpu"' in query
    assert not [
        h
        for h in by_kind(manifests, "HorizontalPodAutoscaler")
        if h["spec"]["scaleTargetRef"]["name"].endswith("-worker")
    ]
    if config == "scale-to-zero":
        assert scaled["spec"]["minReplicaCount"] == 0


@pytest.mark.parametrize(
    ("series_label", "value"), [("service", f"{RELEASE}-api"), ("release", RELEASE)]
)
def test_hpa_and_keda_pick_the_release_by_the_same_label(series_label: str, value: str) -> None:
    label = f"worker.autoscaling.seriesLabel={series_label}"
    hpa = one(render(set_values=["worker.autoscaling.mode=hpa", label]), "HorizontalPodAutoscaler")
    selector = hpa["spec"]["metrics"][0]["external"]["metric"]["selector"]["matchExpressions"]
    assert {e["key"]: e["values"] for e in selector if e["key"] != "queue"} == {
        series_label: [value]
    }
    manifests = render(set_values=["worker.autoscaling.mode=keda", label])
    query = one(manifests, "ScaledObject")["spec"]["triggers"][0]["metadata"]["query"]
    assert f'{{namespace="{NAMESPACE}",{series_label}="{value}",queue=~"default|cpu"}}' in query
    # The API exports the release label from this setting, whichever label the autoscalers use.
    assert one(manifests, "ConfigMap", "-config")["data"]["KUBETASKS_METRICS_RELEASE"] == RELEASE


def test_flower_probes_and_scrape_path_honour_the_url_prefix() -> None:
    manifests = render([CI["ingress-monitoring"]])
    flower = pod_spec(one(manifests, "Deployment", "-flower"))["containers"][0]
    assert "--url_prefix=flower" in flower["command"]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert flower[probe]["httpGet"]["path"] == "/flower/healthcheck"
    monitor = one(manifests, "ServiceMonitor", "-flower")
    assert monitor["spec"]["endpoints"][0]["path"] == "/flower/metrics"


def test_api_ingress_routes_to_the_api_service_with_tls() -> None:
    manifests = render([CI["ingress-monitoring"]])
    ingress = one(manifests, "Ingress", "-api")
    service = one(manifests, "Service", "-api")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {
        "name": service["metadata"]["name"],
        "port": {"number": service["spec"]["ports"][0]["port"]},
    }
    assert ingress["spec"]["tls"][0]["hosts"] == ["tasks.example.com"]


def test_helm_test_hook_submits_through_the_api_service() -> None:
    manifests = render([CI["default"]])
    pod = one(manifests, "Pod", "-test-submit-task")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = pod["spec"]["containers"][0]
    api = one(manifests, "Deployment", "-api")
    assert container["image"] == pod_spec(api)["containers"][0]["image"]
    service = one(manifests, "Service", "-api")
    url = env_of(container)["KUBETASKS_TEST_URL"]["value"]
    assert url == f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    assert "X-API-Key" in container["command"][2]
    assert "KUBETASKS_TEST_API_KEY" in env_of(container)


def test_config_map_carries_settings_as_the_contract_expects(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        "worker:\n  queues: [cpu]\n  concurrency: 4\nsettings:\n  tombstoneTtlSeconds: 1209600\n"
    )
    config = one(render([values]), "ConfigMap", "-config")["data"]
    assert config["KUBETASKS_WORKER_QUEUES"] == '["cpu"]'
    assert config["KUBETASKS_WORKER_CONCURRENCY"] == "4"
    assert config["KUBETASKS_TOMBSTONE_TTL_SECONDS"] == "1209600"
    assert config["KUBETASKS_METRICS_RELEASE"] == RELEASE
    assert all(key.startswith("KUBETASKS_") for key in config)
