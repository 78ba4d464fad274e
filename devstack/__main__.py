"""`make run`: Redis, API, worker and Flower on this machine until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from devstack.processes import ROOT, Stack


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
    stopping = threading.Event()

    def stop(signum: int, _: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        return serve(stack, flower_auth, options.workdir, stopping)
    finally:
        try:
            print("stopping: the worker finishes or requeues its tasks, then the rest", flush=True)
        finally:  # a closed terminal must not leave the processes running
            stack.stop_all()


def serve(stack: Stack, flower_auth: str, workdir: Path, stopping: threading.Event) -> int:
    try:
        # Append-only Redis in .run/: queued tasks and results survive a restart of the stack.
        stack.start_redis(appendonly=True)
        stack.start_api()
        worker = stack.start_worker()
        stack.start_flower()
    except (RuntimeError, TimeoutError) as exc:
        print(f"\nthe stack did not start: {exc}", file=sys.stderr)
        return 1
    user, password = flower_auth.split(":", 1)
    print(
        f"""
kubetasks is running (Ctrl-C stops everything):
  web page  {stack.api_url}/
  API docs  {stack.api_url}/docs
  Flower    {stack.flower_url}/   (user {user}, password {password})
  metrics   {stack.api_url}/metrics (API and queues), {worker.metrics_url} (worker)
  Redis     {stack.redis_url}   (data in {workdir / "redis"})
""",
        flush=True,
    )
    while not stopping.wait(0.5):
        dead = [p.name for p in stack.processes if not p.alive()]
        if dead:
            print(f"{', '.join(dead)} exited; stopping the stack", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
