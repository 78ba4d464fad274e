"""Every rendered object is valid: strict Kubernetes schemas for built-in kinds, CRD models for
the prometheus-operator and KEDA kinds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from cloudcoil.models.keda.v1alpha1 import ScaledObject
from cloudcoil.models.prometheus_operator.v1 import PodMonitor, PrometheusRule, ServiceMonitor

from .rendering import ALL_CRD_APIS, CI_VALUES, Manifest, render

KUBERNETES_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
CRD_MODELS: dict[str, Callable[[Manifest], Any]] = {
    "ServiceMonitor": ServiceMonitor.model_validate,
    "PodMonitor": PodMonitor.model_validate,
    "PrometheusRule": PrometheusRule.model_validate,
    "ScaledObject": ScaledObject.model_validate,
}
RENDERINGS = [
    pytest.param(values_file, apis, id=f"{values_file.stem}-{'crds' if apis else 'plain'}")
    for values_file in CI_VALUES
    for apis in (ALL_CRD_APIS, ())
]


@pytest.mark.parametrize(("values_file", "api_versions"), RENDERINGS)
def test_rendered_objects_are_valid(values_file: Path, api_versions: tuple[str, ...]) -> None:
    manifests = render([values_file], api_versions=api_versions)
    assert manifests
    for manifest in manifests:
        kind = manifest["kind"]
        if kind in CRD_MODELS:
            # Monitoring objects follow the cluster's capabilities; a ScaledObject is rendered
            # whenever KEDA scaling is chosen, so a missing KEDA fails the install loudly.
            if kind != "ScaledObject":
                assert api_versions, f"{kind} rendered without its API being available"
            CRD_MODELS[kind](manifest)
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(manifest, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                name = manifest["metadata"]["name"]
                pytest.fail(f"{kind}/{name} invalid for Kubernetes {version}: {error.message}")


def test_latest_kubernetes_version_is_newer_than_the_baseline() -> None:
    assert KUBERNETES_VERSIONS[1] != KUBERNETES_VERSIONS[0]


def test_crd_models_reject_a_broken_scaled_object() -> None:
    manifests = render([p for p in CI_VALUES if p.name == "keda-values.yaml"])
    scaled = next(m for m in manifests if m["kind"] == "ScaledObject")
    scaled["spec"]["minReplicaCount"] = "many"
    with pytest.raises(ValueError):
        ScaledObject.model_validate(scaled)
