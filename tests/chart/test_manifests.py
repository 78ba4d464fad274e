"""What `make manifests` generates is current: the chart's catalogue and k8s/ (a valid
kustomization)."""

from __future__ import annotations

import subprocess
import sys

import kubernetes_validate
import yaml

from .rendering import CHART_DIR, KUBECTL, REPO_ROOT, Manifest, pod_spec, workloads

# RFC 2606 reserves .example: no such registry can exist.
PLACEHOLDER_REGISTRY = "REGISTRY.example"


def test_generated_files_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools.render_manifests", "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr


def kustomize_build() -> list[Manifest]:
    built = subprocess.run(
        [str(KUBECTL), "kustomize", str(REPO_ROOT / "k8s")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(built) if doc]


def test_kustomization_builds_valid_objects() -> None:
    manifests = kustomize_build()
    kinds = {m["kind"] for m in manifests}
    assert {"Deployment", "StatefulSet", "Service", "NetworkPolicy"} <= kinds
    assert "Secret" not in kinds, "k8s/ must not carry secret values"
    assert not [m for m in manifests if m["kind"] == "Pod"], "no helm test hook in k8s/"
    for manifest in manifests:
        kubernetes_validate.validate(manifest, "1.30.0", strict=True)


def test_unedited_k8s_names_its_images_in_a_registry_that_does_not_exist() -> None:
    """An apply that skipped setting the images fails to pull images that say so, never pulls
    docker.io/library/kubetasks-*."""
    tag = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["appVersion"]
    images = {
        container["image"]
        for workload in workloads(kustomize_build())
        for container in pod_spec(workload)["containers"]
    }
    redis = {image for image in images if image.startswith("docker.io/library/redis:")}
    assert images - redis == {
        f"{PLACEHOLDER_REGISTRY}/kubetasks-api:{tag}",
        f"{PLACEHOLDER_REGISTRY}/kubetasks-worker:{tag}",
    }
