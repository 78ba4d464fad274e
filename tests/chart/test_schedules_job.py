"""Schedules declared in the values: a ConfigMap with them as JSON and a post-install/post-upgrade
hook Job that applies them through the API Service (`python -m scheduler.apply`) from the API image,
as the scheduler runs; nothing without them, and a refusal of what cannot work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.schemas import ScheduleBody

from .rendering import (
    CHART_DIR,
    CI_VALUES,
    JOB_SHARED_POD_FIELDS,
    Manifest,
    by_kind,
    one,
    pod_spec,
    render,
    render_failure,
)

SCHEDULES = CHART_DIR / "ci" / "schedules-values.yaml"
SCALE_TO_ZERO = CHART_DIR / "ci" / "scale-to-zero-values.yaml"
HELM_DEFAULT_TIMEOUT = 300
# The container fields the Job shares with the scheduler (pod fields: JOB_SHARED_POD_FIELDS).
SHARED_CONTAINER_FIELDS = ("image", "imagePullPolicy", "securityContext")


def declared() -> list[dict[str, Any]]:
    return yaml.safe_load(SCHEDULES.read_text())["schedules"]  # type: ignore[no-any-return]


def values_file(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def schedules_job(manifests: list[Manifest]) -> Manifest:
    return one(manifests, "Job", "-schedules")


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_schedules_configuration_renders_the_job_for_the_policy_checks() -> None:
    """ci/ renderings are what test_policy and test_validate check: one of them must hold it."""
    assert SCHEDULES in CI_VALUES
    assert schedules_job(render([SCHEDULES]))


def test_the_config_map_holds_the_declared_schedules_as_json() -> None:
    manifests = render([SCHEDULES])
    config = one(manifests, "ConfigMap", "-schedules")
    assert len(declared()) == 2
    assert json.loads(config["data"]["schedules.json"]) == declared()
    assert "helm.sh/hook" not in config["metadata"].get("annotations", {}), "a release object"


def test_the_job_applies_them_through_the_api_service_from_the_api_image(tmp_path: Path) -> None:
    placement = {"nodeSelector": {"kubetasks.io/node-class": "system"}, "podLabels": {"team": "a"}}
    values = values_file(
        tmp_path,
        {
            "schedules": declared(),
            "imagePullSecrets": [{"name": "registry"}],
            "api": {
                "image": {"repository": "registry.example.com/kt-api", "tag": "1.2.3"},
                "service": {"port": 8080},
            },
            "scheduler": placement,
        },
    )
    manifests = render([values])
    job = schedules_job(manifests)
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    spec = pod_spec(job)
    assert spec["restartPolicy"] == "Never"
    [container] = spec["containers"]
    service = one(manifests, "Service", "-api")
    command = container["command"]
    assert command[:4] == ["python", "-m", "scheduler.apply", command[3]]
    url = f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    assert url == "http://kubetasks-api:8080"
    assert option(command, "--api-url") == url
    # The file it reads is the ConfigMap's.
    [mount] = container["volumeMounts"]
    assert command[3] == f"{mount['mountPath']}/schedules.json"
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    config = one(manifests, "ConfigMap", "-schedules")
    assert volume["configMap"]["name"] == config["metadata"]["name"]
    scheduler = one(manifests, "Deployment", "-scheduler")
    [runs] = pod_spec(scheduler)["containers"]
    assert container["image"] == "registry.example.com/kt-api:1.2.3"
    for field in SHARED_CONTAINER_FIELDS:
        assert container.get(field) == runs.get(field), field
    for field in JOB_SHARED_POD_FIELDS:
        assert spec.get(field) == pod_spec(scheduler).get(field), field
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels["team"] == "a"
    # Not the scheduler's component: its PodDisruptionBudget and PodMonitor select its replicas.
    assert labels["app.kubernetes.io/component"] == "schedules"


@pytest.mark.parametrize("api_key", [True, False], ids=["api-key", "no-api-key"])
def test_the_job_sends_the_api_key_the_api_requires(tmp_path: Path, api_key: bool) -> None:
    values = {"schedules": declared(), "api": {"apiKey": {"enabled": api_key}}}
    manifests = render([values_file(tmp_path, values)])
    [container] = pod_spec(schedules_job(manifests))["containers"]
    [api] = pod_spec(one(manifests, "Deployment", "-api"))["containers"]
    api_env = [e for e in api["env"] if e["name"] == "KUBETASKS_API_KEY"]
    assert container.get("env", []) == api_env
    assert bool(api_env) == api_key


def test_the_job_runs_after_the_catalogue_jobs_within_helms_timeout(tmp_path: Path) -> None:
    """Helm runs hooks one at a time by weight: a schedule whose task only a pool at zero has
    would wait its whole deadline for that pool's catalogue Job to publish it."""
    manifests = render([SCALE_TO_ZERO, SCHEDULES])
    jobs = by_kind(manifests, "Job")
    job = schedules_job(manifests)
    catalogue = [j for j in jobs if j is not job]
    assert catalogue

    def weight(hook: Manifest) -> int:
        return int(hook["metadata"]["annotations"].get("helm.sh/hook-weight", "0"))

    assert all(weight(c) < weight(job) for c in catalogue)
    spec = job["spec"]
    deadline = float(option(pod_spec(job)["containers"][0]["command"], "--deadline"))
    assert deadline < spec["activeDeadlineSeconds"] < HELM_DEFAULT_TIMEOUT
    assert spec["backoffLimit"] <= 1, "the command retries by itself"
    assert spec["ttlSecondsAfterFinished"] > 0


def test_no_schedules_render_no_job_and_no_config_map() -> None:
    manifests = render()
    assert not by_kind(manifests, "Job")
    assert not [m for m in manifests if m["metadata"]["name"].endswith("-schedules")]


def test_the_names_fit_in_a_pod_label_whatever_the_full_name(tmp_path: Path) -> None:
    # Without KEDA, whose ScaledObject names allow 54 characters: a check of their own.
    values = {
        "fullnameOverride": "k" * 63,
        "worker": {"autoscaling": {"mode": "none"}},
        "schedules": declared(),
    }
    manifests = render([values_file(tmp_path, values)])
    name = schedules_job(manifests)["metadata"]["name"]
    assert len(name) <= 63
    assert one(manifests, "ConfigMap", "-schedules")["metadata"]["name"] == name


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        pytest.param({"name": "Nightly"}, "/schedules/0/name", id="upper-case"),
        pytest.param({"name": "nightly-"}, "/schedules/0/name", id="trailing-dash"),
        pytest.param({"name": "n" * 64}, "/schedules/0/name", id="too-long"),
        pytest.param({"every": 60}, "additional properties 'every' not allowed", id="typo"),
        pytest.param({"misfire": "run"}, "/schedules/0/misfire", id="unknown-misfire"),
        pytest.param({"priority": 10}, "/schedules/0/priority", id="priority-above-9"),
    ],
)
def test_the_schema_refuses_a_bad_schedule(
    tmp_path: Path, schedule: dict[str, Any], message: str
) -> None:
    values = {"schedules": [{"name": "nightly", "task": "sleep", "cron": "0 2 * * *", **schedule}]}
    error = render_failure([], [values_file(tmp_path, values)])
    assert "values don't meet the specifications of the schema" in error
    assert message in error


def test_a_schedule_without_a_task_is_refused_by_the_schema(tmp_path: Path) -> None:
    values = {"schedules": [{"name": "nightly", "cron": "0 2 * * *"}]}
    assert "missing property 'task'" in render_failure([], [values_file(tmp_path, values)])


def test_declared_schedules_without_the_scheduler_are_refused(tmp_path: Path) -> None:
    values = {"schedules": declared(), "scheduler": {"enabled": False}}
    error = render_failure([], [values_file(tmp_path, values)])
    assert "schedules declares 2 schedule(s), but scheduler.enabled is false" in error
    assert render(set_values=["scheduler.enabled=false"]), "without schedules it may be off"


def test_two_schedules_of_one_name_are_refused(tmp_path: Path) -> None:
    first, second = declared()
    values = {"schedules": [first, {**second, "name": first["name"]}]}
    error = render_failure([], [values_file(tmp_path, values)])
    assert f"schedules: two are named {first['name']}" in error


def constraints(schema: dict[str, Any]) -> dict[str, Any]:
    """The types and bounds a JSON schema puts on one value, whichever way it spells a union."""
    parts = schema.get("anyOf", [schema])
    types: set[str] = set()
    found: dict[str, Any] = {}
    for part in parts:
        kind = part.get("type", [])
        types |= {kind} if isinstance(kind, str) else set(kind)
        for keyword in ("minimum", "maximum", "maxLength", "pattern", "enum"):
            if keyword in part:
                found[keyword] = part[keyword]
    return {"type": types, **found}


def test_a_declared_schedule_takes_what_post_schedules_takes() -> None:
    """The chart's schema of an entry follows ScheduleBody: its fields, required ones, types and
    bounds (the API checks the rest when the Job applies it)."""
    chart = json.loads((CHART_DIR / "values.schema.json").read_text())
    entry = chart["properties"]["schedules"]["items"]
    api = ScheduleBody.model_json_schema()
    assert entry["properties"].keys() == api["properties"].keys()
    assert sorted(entry["required"]) == sorted(api["required"])
    for field, schema in api["properties"].items():
        assert constraints(entry["properties"][field]) == constraints(schema), field
