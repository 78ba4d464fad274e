"""What `make manifests` generates is current: the chart's catalogue and k8s/ (a valid
kustomization)."""

from __future__ import annotations

import subprocess
import sys

import kubernetes_validate
import yaml

from .rendering import KUBECTL, REPO_ROOT


def test_generated_files_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools.render_manifests", "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr


def test_kustomization_builds_valid_objects() -> None:
    built = subprocess.run(
        [str(KUBECTL), "kustomize", str(REPO_ROOT / "k8s")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    manifests = [doc for doc in yaml.safe_load_all(built) if doc]
    kinds = {m["kind"] for m in manifests}
    assert {"Deployment", "StatefulSet", "Service", "NetworkPolicy"} <= kinds
    assert "Secret" not in kinds, "k8s/ must not carry secret values"
    assert not [m for m in manifests if m["kind"] == "Pod"], "no helm test hook in k8s/"
    for manifest in manifests:
        kubernetes_validate.validate(manifest, "1.30.0", strict=True)
