"""Kubernetes exec probes: `python -m worker.probe live|ready` (exit 0 when healthy).

`live` (start-up and liveness): the heartbeat file is younger than the max age, i.e. the
consumer's loop ran, or was excused while it waited for Redis or a task held it. A Redis outage
never fails it: restarting every worker would not bring Redis back.
`ready`: live, and the ready file exists, i.e. the last heartbeat reached Redis. Unlike the API's,
this readiness checks the shared Redis on purpose: no Service selects workers, so it routes no
traffic; it only decides whether a worker counts as available, which holds back a rollout (a new
worker that cannot reach Redis, say with a wrong password, replaces no old one) and, through the
worker PDB, node drains while Redis is down.

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
