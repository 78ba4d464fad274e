"""Build the api and worker images with podman from a local Debian base and smoke-run them: the
API answers /livez, and a worker pointed at a throwaway Redis completes a task submitted through
the API container."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from devstack.processes import free_port
from tests.tooling import require_binary

REPO_ROOT = Path(__file__).resolve().parents[2]
API_KEY = "image-test-key"

pytestmark = [
    pytest.mark.images,
    # A cold run debootstraps the base and builds both images inside the first test's fixtures.
    pytest.mark.timeout(900),
    pytest.mark.usefixtures("podman_installed"),
]


@pytest.fixture(scope="module")
def podman_installed() -> str:
    return require_binary("podman", "apt-get install -y podman buildah runc debootstrap")


def load_images_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("images_tool", REPO_ROOT / "tools" / "images.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


IMAGES = load_images_tool()


def podman(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
        env=IMAGES.engine_env(),
    )


def http(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("X-API-Key", API_KEY)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw.startswith((b"{", b"[")) else raw
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_for(url: str, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if http("GET", url)[0] == 200:
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    pytest.fail(f"{url} did not answer 200 within {deadline_s} s")


def submit_once_published(api: str, body: dict[str, Any], deadline: float) -> str:
    """Submit as soon as the API knows the task: a worker publishes its tasks when it starts."""
    status, answer = http("POST", f"{api}/tasks", body)
    while status == 422 and time.monotonic() < deadline:
        time.sleep(0.5)
        status, answer = http("POST", f"{api}/tasks", body)
    assert status == 202, answer
    return str(answer["task_id"])


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    tool = IMAGES.engine()
    base = IMAGES.ensure_local_base(tool)
    return {name: IMAGES.build(tool, name, base, "test") for name in ("api", "worker")}


@pytest.fixture(scope="module")
def acme_image(images: dict[str, str]) -> str:
    """examples/own-tasks built FROM the worker image, as a team builds its own."""
    example = REPO_ROOT / "examples" / "own-tasks"
    ref = "localhost/kubetasks-acme:test"
    return str(
        IMAGES.build_context(
            IMAGES.engine(), example / "Dockerfile", example, ref, WORKER_IMAGE=images["worker"]
        )
    )


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    server = require_binary("redis-server", "apt-get install -y redis-server")
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


class Container:
    """A detached podman container, removed at the end; logs shown when a test fails."""

    def __init__(self, image: str, args: list[str], env: dict[str, str], init: bool = True):
        options = [
            "run",
            "-d",
            "--network",
            "host",
            "--read-only",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
        ]
        if init:
            options.append("--init")
        for key, value in env.items():
            options += ["-e", f"{key}={value}"]
        self.id = podman(*options, image, *args).stdout.strip()

    def logs(self) -> str:
        result = podman("logs", self.id, check=False)
        return result.stdout + result.stderr

    def remove(self) -> None:
        podman("rm", "-f", "-t", "2", self.id, check=False)


@pytest.fixture(scope="module")
def api(images: dict[str, str], redis_url: str) -> Iterator[str]:
    port = free_port()
    container = Container(
        images["api"],
        [
            "uvicorn",
            "api.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        {"KUBETASKS_REDIS_URL": redis_url, "KUBETASKS_API_KEY": API_KEY},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/livez", 30)
        yield base
    except BaseException:
        print(container.logs())
        raise
    finally:
        container.remove()


def test_api_answers_livez_and_readyz(api: str) -> None:
    for path in ("/livez", "/readyz", "/readyz?deep=1"):  # the chart's probes
        assert http("GET", f"{api}{path}")[0] == 200, path


def test_api_image_has_no_task_code_and_runs_as_non_root(images: dict[str, str]) -> None:
    probe = (
        "import importlib.util as u, os; print(os.getuid(), u.find_spec('worker'), "
        "u.find_spec('PIL'))"
    )
    result = podman("run", "--rm", images["api"], "python", "-c", probe)
    assert result.stdout.split() == ["10001", "None", "None"]


def test_worker_image_has_pillow_and_flower(images: dict[str, str]) -> None:
    probe = "import PIL, flower, worker.probe, os; print(os.getuid())"
    result = podman("run", "--rm", images["worker"], "python", "-c", probe)
    assert result.stdout.strip() == "10001"


def test_worker_completes_a_task_submitted_through_the_api(
    images: dict[str, str], api: str, redis_url: str
) -> None:
    worker = Container(
        images["worker"],
        [],
        {
            "KUBETASKS_REDIS_URL": redis_url,
            "KUBETASKS_WORKER_METRICS_PORT": str(free_port()),
            "PROMETHEUS_MULTIPROC_DIR": "/tmp/kubetasks/metrics",
        },
        init=False,
    )  # as in Kubernetes: celery itself is PID 1
    try:
        deadline = time.monotonic() + 60
        task_id = submit_once_published(api, {"name": "sleep", "args": {"seconds": 0}}, deadline)
        state = ""
        while time.monotonic() < deadline and not state.endswith("SUCCESS"):
            status, record = http("GET", f"{api}/tasks/{task_id}")
            state = str(record.get("state", "")) if status == 200 else ""
            time.sleep(0.5)
        assert state.endswith("SUCCESS"), f"task {task_id} is {state!r}\n{worker.logs()}"
        ready = podman("exec", worker.id, "python", "-m", "worker.probe", "ready", check=False)
        assert ready.returncode == 0, worker.logs()
        started = time.monotonic()
        podman("stop", "-t", "40", worker.id, timeout=60)
        assert time.monotonic() - started < 30, "SIGTERM did not reach celery as PID 1"
    except BaseException:
        print(worker.logs())
        raise
    finally:
        worker.remove()


def test_flower_serves_health_and_metrics_under_its_prefix_without_auth(
    images: dict[str, str], redis_url: str
) -> None:
    """The chart's probes and ServiceMonitor rely on exactly this."""
    port = free_port()
    flower = Container(
        images["worker"],
        [
            "celery",
            "--app=worker.app",
            "flower",
            f"--port={port}",
            "--address=127.0.0.1",
            "--url_prefix=flower",
        ],
        {"KUBETASKS_REDIS_URL": redis_url, "FLOWER_BASIC_AUTH": "admin:secret"},
    )
    base = f"http://127.0.0.1:{port}/flower"
    try:
        wait_for(f"{base}/healthcheck", 30)
        status, metrics = http("GET", f"{base}/metrics")
        assert status == 200 and b"flower_" in metrics
        assert http("GET", f"{base}/workers")[0] == 401, "the UI must stay behind basic auth"
    except BaseException:
        print(flower.logs())
        raise
    finally:
        flower.remove()


def test_a_teams_image_built_from_the_worker_image_runs_its_own_tasks(
    acme_image: str, api: str, redis_url: str
) -> None:
    worker = Container(
        acme_image,
        [],
        {
            "KUBETASKS_REDIS_URL": redis_url,
            "KUBETASKS_WORKER_QUEUES": '["acme"]',
            "KUBETASKS_WORKER_METRICS_PORT": str(free_port()),
            "PROMETHEUS_MULTIPROC_DIR": "/tmp/kubetasks/metrics",
        },
        init=False,
    )
    try:
        deadline = time.monotonic() + 60
        body = {"name": "describe_size", "args": {"size_bytes": 2048}}
        task_id = submit_once_published(api, body, deadline)
        record: Any = {}
        while time.monotonic() < deadline and record.get("state") != "SUCCESS":
            _, record = http("GET", f"{api}/tasks/{task_id}")
            time.sleep(0.5)
        assert record.get("result") == {"size": "2.0 kB"}, f"{record}\n{worker.logs()}"
    except BaseException:
        print(worker.logs())
        raise
    finally:
        worker.remove()
