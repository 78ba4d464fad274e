"""`make run`: Redis, API, worker and Flower on this machine until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
from pathlib import Path
from types import FrameType

from devstack.lifetime import adopt_orphans, reap_orphans
from devstack.processes import ROOT, Process, Stack, StartAbandoned

# How long Ctrl-C lets running tasks finish before they go back to the queue, where Redis's
# append-only file keeps them for the next make run. A pod gets 25 s; a developer waits for this.
SOFT_SHUTDOWN_SECONDS = "10"

STOP_STEPS = {
    "worker": "stopping the worker: running tasks have {soft:g} s to finish, then go back to "
    "the queue (Ctrl-C again kills everything at once)",
    "scheduler": "stopping the scheduler",
    "api": "stopping the API",
    "flower": "stopping Flower",
    "redis": "stopping Redis: its append-only file in {data} keeps the queues",
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("--api-port", type=int, default=8000, help="0: any free port")
    parser.add_argument("--flower-port", type=int, default=5555, help="0: any free port")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".run")
    options = parser.parse_args()

    options.workdir.mkdir(parents=True, exist_ok=True)
    flower_auth = os.environ.get("FLOWER_BASIC_AUTH") or f"admin:{secrets.token_urlsafe(12)}"
    # The developer's KUBETASKS_* settings configure make run; nothing else of the shell does.
    settings = {name: v for name, v in os.environ.items() if name.startswith("KUBETASKS_")}
    settings.setdefault("KUBETASKS_WORKER_SOFT_SHUTDOWN_TIMEOUT", SOFT_SHUTDOWN_SECONDS)
    soft_shutdown = float(settings["KUBETASKS_WORKER_SOFT_SHUTDOWN_TIMEOUT"])
    adopt_orphans()
    try:
        stack = Stack(
            workdir=options.workdir,
            api_port=options.api_port,
            flower_port=options.flower_port,
            flower_auth=flower_auth,
            extra_env=settings,
            console=True,
        )
    except OSError as exc:
        print(f"cannot listen on 127.0.0.1:{options.api_port}: {exc.strerror}", file=sys.stderr)
        return 1
    signals = 0

    def on_signal(signum: int, _: FrameType | None) -> None:
        nonlocal signals
        signals += 1
        stack.stopping.set()
        if signals > 1:
            stack.kill_all()

    # The children run in sessions of their own (devstack.lifetime): a terminal's Ctrl-C
    # reaches only this process, which stops them in order.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    def announce(process: Process) -> None:
        step = STOP_STEPS[process.name].format(soft=soft_shutdown, data=options.workdir / "redis")
        print(step, flush=True)

    try:
        return serve(stack, flower_auth, options.workdir, soft_shutdown)
    finally:
        stack.stop_all(timeout=soft_shutdown + 15, announce=announce)
        reap_orphans(timeout=5)
        print("killed" if signals > 1 else "stopped", flush=True)


def serve(stack: Stack, flower_auth: str, workdir: Path, soft_shutdown: float) -> int:
    try:
        # Append-only Redis in .run/: queued tasks and results survive a restart of the stack.
        stack.start_redis(appendonly=True)
        stack.start_api()
        worker = stack.start_worker()
        scheduler = stack.start_scheduler()
        stack.start_flower()
    except StartAbandoned:
        return 0
    except (RuntimeError, TimeoutError) as exc:
        print(f"\nthe stack did not start: {exc}", file=sys.stderr)
        return 1
    user, password = flower_auth.split(":", 1)
    print(
        f"""
kubetasks is running (Ctrl-C stops everything; running tasks get {soft_shutdown:g} s to finish,
or wait in the queue for the next make run):
  web page  {stack.api_url}/
  API docs  {stack.api_url}/docs
  Flower    {stack.flower_url}/   (user {user}, password {password})
  metrics   {stack.api_url}/metrics (API and queues), {worker.metrics_url} (worker),
            {scheduler.metrics_url} (scheduler of /schedules)
  Redis     {stack.redis_url}   (data in {workdir / "redis"})
""",
        flush=True,
    )
    while not stack.stopping.wait(0.5):
        dead = [p.name for p in stack.processes if not p.alive()]
        if dead:
            print(f"{', '.join(dead)} exited; stopping the stack", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
