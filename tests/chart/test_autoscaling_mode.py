"""worker.autoscaling.mode auto: the autoscaler follows the APIs the cluster serves (KEDA first,
then an external metrics API, else a fixed replica count and a note on how to turn scaling on),
the explicit modes ignore them, and the Deployment leaves `replicas` out exactly when an
autoscaler owns it."""

from __future__ import annotations

import pytest
import yaml

from .rendering import (
    CHART_DIR,
    RELEASE,
    Manifest,
    by_kind,
    helm,
    one,
    render,
    render_failure,
    render_notes,
)

KEDA = "keda.sh/v1alpha1"
EXTERNAL_METRICS = "external.metrics.k8s.io/v1beta1"
CLUSTERS = {
    "no-autoscaling-api": (),
    "external-metrics-only": (EXTERNAL_METRICS,),
    "keda-only": (KEDA,),
    # A cluster lists a group version alone and with each kind; --api-versions only as given.
    "keda-only-listed-by-kind": (f"{KEDA}/ScaledObject",),
    # KEDA's metrics server is then the external metrics API, so an External HPA would read
    # nothing: KEDA wins.
    "keda-and-external-metrics": (KEDA, EXTERNAL_METRICS),
}
AUTO_CHOICE = {
    "no-autoscaling-api": "none",
    "external-metrics-only": "hpa",
    "keda-only": "keda",
    "keda-only-listed-by-kind": "keda",
    "keda-and-external-metrics": "keda",
}


def worker_autoscaler(manifests: list[Manifest]) -> str:
    """Which autoscaler owns the worker Deployment's replicas, checked against the Deployment."""
    worker = one(manifests, "Deployment", "-worker")
    name = worker["metadata"]["name"]
    owners = [
        kind
        for kind in ("HorizontalPodAutoscaler", "ScaledObject")
        for m in by_kind(manifests, kind)
        if m["spec"]["scaleTargetRef"]["name"] == name
    ]
    assert len(owners) <= 1, f"one autoscaler at most, found {owners}"
    assert ("replicas" in worker["spec"]) == (not owners), "replicas iff no autoscaler owns them"
    return (
        {"HorizontalPodAutoscaler": "hpa", "ScaledObject": "keda"}[owners[0]] if owners else "none"
    )


def test_auto_is_the_default() -> None:
    assert worker_autoscaler(render(api_versions=CLUSTERS["keda-only"])) == "keda"


@pytest.mark.parametrize("cluster", sorted(CLUSTERS))
def test_auto_picks_the_autoscaler_the_cluster_serves(cluster: str) -> None:
    manifests = render(set_values=["worker.replicaCount=3"], api_versions=CLUSTERS[cluster])
    assert worker_autoscaler(manifests) == AUTO_CHOICE[cluster]
    if AUTO_CHOICE[cluster] == "none":
        assert one(manifests, "Deployment", "-worker")["spec"]["replicas"] == 3


def test_helm_template_without_a_cluster_renders_the_fixed_count() -> None:
    """What `make manifests` and anyone without a cluster run: no --api-versions at all."""
    result = helm("template", RELEASE, str(CHART_DIR), "--set", "worker.replicaCount=2")
    assert result.returncode == 0, result.stderr
    manifests = [m for m in yaml.safe_load_all(result.stdout) if m]
    assert worker_autoscaler(manifests) == "none"
    assert one(manifests, "Deployment", "-worker")["spec"]["replicas"] == 2


@pytest.mark.parametrize("mode", ["none", "hpa", "keda"])
@pytest.mark.parametrize("cluster", sorted(CLUSTERS))
def test_explicit_modes_ignore_the_cluster(mode: str, cluster: str) -> None:
    manifests = render(
        set_values=[f"worker.autoscaling.mode={mode}"], api_versions=CLUSTERS[cluster]
    )
    assert worker_autoscaler(manifests) == mode


@pytest.mark.parametrize("cluster", sorted(CLUSTERS))
def test_notes_name_the_autoscaler_and_how_to_turn_scaling_on(cluster: str) -> None:
    notes = render_notes(api_versions=CLUSTERS[cluster])
    chosen = AUTO_CHOICE[cluster]
    assert f"autoscaling: {chosen} (chosen by mode auto)." in notes
    off = "Its workers do not scale" in notes
    assert off == (chosen == "none")
    if off:
        assert "run at worker.replicaCount (1)" in notes
        assert "install KEDA" in notes and "prometheus-adapter" in notes
        assert "set worker.autoscaling.mode to keda or hpa" in notes
    if chosen == "hpa":
        assert "prometheus-adapter needs the externalRules" in notes
    if chosen == "keda":
        assert "worker.autoscaling.keda.serverAddress" in notes


def test_notes_of_an_explicit_none_do_not_offer_scaling() -> None:
    notes = render_notes(set_values=["worker.autoscaling.mode=none"], api_versions=())
    assert "autoscaling: none." in notes
    assert "Its workers do not scale" not in notes


def test_auto_scale_to_zero_needs_keda_or_the_hpa_gate() -> None:
    zero = "worker.autoscaling.minReplicas=0"
    error = render_failure([zero], api_versions=CLUSTERS["external-metrics-only"])
    assert "mode auto chose an HPA" in error and "HPAScaleToZero feature gate" in error
    gated = render(
        set_values=[zero, "worker.autoscaling.hpa.allowScaleToZero=true"],
        api_versions=CLUSTERS["external-metrics-only"],
    )
    assert one(gated, "HorizontalPodAutoscaler", "-worker")["spec"]["minReplicas"] == 0
    keda = render(set_values=[zero], api_versions=CLUSTERS["keda-only"])
    assert one(keda, "ScaledObject", "-worker")["spec"]["minReplicaCount"] == 0
    # No autoscaler to scale to zero: the fixed count, as NOTES.txt says.
    fixed = render(set_values=[zero], api_versions=())
    assert one(fixed, "Deployment", "-worker")["spec"]["replicas"] == 1


def test_keda_takes_an_empty_answer_for_an_error_not_for_zero() -> None:
    scaled = one(render(api_versions=CLUSTERS["keda-only"]), "ScaledObject", "-worker")
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["metadata"]["ignoreNullValues"] == "false"
