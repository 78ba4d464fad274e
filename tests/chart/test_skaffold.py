"""skaffold.yaml follows the skaffold/v4beta14 schema (kept in ../shared/schemas when present)."""

from __future__ import annotations

import subprocess
import sys

import yaml

from tests.tooling import require_file

from .rendering import REPO_ROOT

SKAFFOLD = REPO_ROOT / "skaffold.yaml"
SCHEMA = REPO_ROOT.parent / "shared" / "schemas" / "skaffold-v4beta14.json"


def load() -> dict[str, object]:
    return yaml.safe_load(SKAFFOLD.read_text())  # type: ignore[no-any-return]


def test_api_version_and_kind() -> None:
    config = load()
    assert config["apiVersion"] == "skaffold/v4beta14"
    assert config["kind"] == "Config"


def test_matches_the_skaffold_schema() -> None:
    schema = require_file(SCHEMA, "the skaffold/v4beta14 schema, kept in ../shared/schemas")
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--schemafile", str(schema), str(SKAFFOLD)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_builds_both_images_and_deploys_the_chart_with_their_tags() -> None:
    config = load()
    artifacts = {a["image"]: a for a in config["build"]["artifacts"]}  # type: ignore[index]
    assert artifacts["kubetasks-api"]["docker"]["dockerfile"] == "Dockerfile.api"
    assert artifacts["kubetasks-worker"]["docker"]["dockerfile"] == "Dockerfile.worker"
    [release] = config["deploy"]["helm"]["releases"]  # type: ignore[index]
    assert release["chartPath"] == "helm/kubetasks"
    templates = release["setValueTemplates"]
    assert templates["api.image.repository"] == "{{.IMAGE_REPO_kubetasks_api}}"
    assert (
        templates["worker.image.tag"]
        == "{{.IMAGE_TAG_kubetasks_worker}}@{{.IMAGE_DIGEST_kubetasks_worker}}"
    )


def test_dev_profile_syncs_files_and_forwards_api_and_flower() -> None:
    [dev] = [p for p in load()["profiles"] if p["name"] == "dev"]  # type: ignore[attr-defined]
    forwarded = {f["resourceName"] for f in dev["portForward"]}
    assert forwarded == {"kubetasks-api", "kubetasks-flower"}
    patches = str(dev["patches"])
    assert "sync" in patches
