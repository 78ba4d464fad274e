"""When an autoscaler owns a Deployment's count, an upgrade carries the live count instead of
leaving `replicas` out: Helm's three-way patch would otherwise remove the field the last release
set, and Kubernetes would drop the Deployment to 1 replica until the autoscaler's next sync (an
upgrade onto mode auto on a KEDA cluster would stop all but one worker). `lookup` needs a cluster,
so these tests run helm against a fake API server."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import yaml

from .fake_apiserver import fake_apiserver
from .rendering import NAMESPACE, Manifest, helm, one, template_args

KEDA = "keda.sh/v1alpha1"


def live_deployment(name: str, replicas: int) -> Manifest:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"replicas": replicas},
    }


def render_against(
    objects: Sequence[Manifest], api_versions: Sequence[str], set_values: Sequence[str] = ()
) -> list[Manifest]:
    with fake_apiserver(NAMESPACE, objects) as url:
        args = template_args(set_values=set_values, api_versions=api_versions)
        result = helm(*args, "--dry-run=server", "--kube-apiserver", url)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_upgrade_onto_keda_keeps_the_live_worker_count_fake_apiserver() -> None:
    manifests = render_against([live_deployment("kubetasks-worker", 7)], [KEDA])
    one(manifests, "ScaledObject", "-worker")
    assert one(manifests, "Deployment", "-worker")["spec"]["replicas"] == 7


def test_a_pool_scaled_to_zero_stays_at_zero_fake_apiserver() -> None:
    manifests = render_against(
        [live_deployment("kubetasks-worker", 0)], [KEDA], ["worker.autoscaling.minReplicas=0"]
    )
    assert one(manifests, "Deployment", "-worker")["spec"]["replicas"] == 0


def test_first_install_under_an_autoscaler_leaves_replicas_out_fake_apiserver() -> None:
    manifests = render_against([], [KEDA])
    assert "replicas" not in one(manifests, "Deployment", "-worker")["spec"]


@pytest.mark.parametrize(("autoscaling", "expected"), [("true", 4), ("false", 2)])
def test_api_count_follows_its_autoscaler_fake_apiserver(autoscaling: str, expected: int) -> None:
    manifests = render_against(
        [live_deployment("kubetasks-api", 4)],
        [],
        [f"api.autoscaling.enabled={autoscaling}", "api.replicaCount=2"],
    )
    assert one(manifests, "Deployment", "-api")["spec"]["replicas"] == expected


def test_a_fixed_count_wins_over_the_live_one_fake_apiserver() -> None:
    """Without an autoscaler the values own the count: the live 7 is scaled back to 2."""
    manifests = render_against(
        [live_deployment("kubetasks-worker", 7)], [], ["worker.replicaCount=2"]
    )
    assert one(manifests, "Deployment", "-worker")["spec"]["replicas"] == 2
