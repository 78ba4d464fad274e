"""Kubernetes exec probes: `python -m worker.probe live|ready` (exit 0 when healthy).

Reads two files the worker's housekeeping writes; imports neither Celery nor the tasks, so a
probe costs a few milliseconds.
"""

from __future__ import annotations

import sys
import time

from contracts.settings import get_settings


def live() -> bool:
    settings = get_settings()
    try:
        age = time.time() - settings.worker_heartbeat_file.stat().st_mtime
    except FileNotFoundError:
        return False
    return age <= settings.worker_heartbeat_max_age_seconds


def ready() -> bool:
    return get_settings().worker_ready_file.exists() and live()


def main(argv: list[str]) -> int:
    checks = {"live": live, "ready": ready}
    if len(argv) != 1 or argv[0] not in checks:
        print("usage: python -m worker.probe live|ready", file=sys.stderr)
        return 2
    healthy = checks[argv[0]]()
    print(f"{argv[0]}: {'ok' if healthy else 'failing'}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
