"""`python -m scheduler.apply FILE`: make the API's schedules match a list declared elsewhere
(the chart's `schedules:` values, applied by a hook Job at install and upgrade).

Each schedule in FILE (a JSON list of POST /schedules bodies) is created, or changed to what the
file says when one of its name exists: running it twice changes nothing. Schedules the file does
not name are left alone. It goes through the API, so a declared schedule is checked exactly like
one written by hand (a refusal stops it at once, naming the schedule and the field), and it
retries while the API or the task a schedule names is not there yet (a fresh install: the API
starting, no worker has published its tasks yet) until --deadline.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from contracts.settings import get_settings

RETRY_SECONDS = 5.0


class Refused(Exception):
    """The API refused a schedule for a reason waiting will not fix (bad arguments, a bad cron
    expression, a wrong API key)."""


class NotYet(Exception):
    """The API is not there yet, or does not know the schedule's task yet."""


def _call(base: str, key: str | None, method: str, path: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(  # noqa: S310 (main accepts http(s) URLs only)
        f"{base}{path}",
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json", **({"X-API-Key": key} if key else {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        if exc.code == 409:
            return 409
        text = exc.read().decode(errors="replace")
        problem = f"{method} {path}: {exc.code} {text}"
        if exc.code >= 500 or (exc.code == 422 and _only_unknown_task(text)):
            raise NotYet(problem) from exc
        raise Refused(problem) from exc
    except OSError as exc:  # refused, unresolvable, timed out: the API is not up yet
        raise NotYet(f"{method} {path}: {exc}") from exc


def _only_unknown_task(text: str) -> bool:
    """A 422 whose one problem is a task no worker has published yet."""
    try:
        fields = json.loads(text)["fields"]
    except (ValueError, KeyError, TypeError):
        return False
    return bool(fields) and all(
        f.get("field") == "task" and str(f.get("message", "")).startswith("unknown task")
        for f in fields
    )


def apply(base: str, key: str | None, schedule: dict[str, Any]) -> str:
    """Create or change one schedule; what was done."""
    name = schedule["name"]
    if _call(base, key, "POST", "/schedules", schedule) == 201:
        return "created"
    changes = {field: value for field, value in schedule.items() if field != "name"}
    _call(base, key, "PATCH", f"/schedules/{name}", changes)
    return "updated"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scheduler.apply", description=__doc__)
    parser.add_argument("file", type=Path, help="a JSON list of POST /schedules bodies")
    parser.add_argument("--api-url", default="http://127.0.0.1:8000")
    parser.add_argument("--deadline", type=float, default=240, help="seconds to keep retrying")
    args = parser.parse_args(argv)
    if not args.api_url.startswith(("http://", "https://")):
        parser.error("--api-url must be an http:// or https:// URL")
    schedules: list[dict[str, Any]] = json.loads(args.file.read_text())
    secret = get_settings().api_key
    key = secret.get_secret_value() if secret else None
    base = args.api_url.rstrip("/")
    deadline = time.monotonic() + args.deadline
    pending = list(schedules)
    while pending:
        schedule = pending[0]
        try:
            print(f"{schedule['name']}: {apply(base, key, schedule)}", flush=True)
            pending.pop(0)
        except Refused as exc:
            print(f"{schedule['name']}: {exc}", file=sys.stderr)
            return 1
        except NotYet as exc:
            if time.monotonic() > deadline:
                print(f"{schedule['name']}: {exc}; giving up", file=sys.stderr)
                return 1
            print(f"{schedule['name']}: {exc}; trying again in {RETRY_SECONDS:g} s", flush=True)
            time.sleep(RETRY_SECONDS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
