"""`helm test` for kubetasks: submit a task through the API Service and wait for it to succeed.

Runs in the API image with the standard library only. Environment: KUBETASKS_TEST_URL (the API
Service), KUBETASKS_TEST_API_KEY (optional) and KUBETASKS_TEST_TIMEOUT_SECONDS.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any


def call(method: str, url: str, api_key: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    # The URL is the chart's own http:// Service address, never user input.
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if api_key:
        request.add_header("X-API-Key", api_key)
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.load(response)


def main() -> int:
    base = os.environ["KUBETASKS_TEST_URL"].rstrip("/")
    api_key = os.environ.get("KUBETASKS_TEST_API_KEY", "")
    deadline = time.monotonic() + float(os.environ.get("KUBETASKS_TEST_TIMEOUT_SECONDS", "120"))
    submitted = None
    while submitted is None:
        try:
            submitted = call(
                "POST", f"{base}/tasks", api_key, {"name": "sleep", "args": {"seconds": 0}}
            )
        except (urllib.error.URLError, OSError) as error:
            if time.monotonic() > deadline:
                print(f"FAIL: could not submit a task to {base}: {error}")
                return 1
            time.sleep(2)
    task_id = submitted["task_id"]
    print(f"submitted task {task_id}")
    state = ""
    while time.monotonic() < deadline:
        try:
            state = str(call("GET", f"{base}/tasks/{task_id}", api_key).get("state", ""))
        except (urllib.error.URLError, OSError) as error:
            print(f"poll failed, retrying: {error}")
        if state.endswith("SUCCESS"):
            print(f"task {task_id} reached {state}")
            return 0
        if state.endswith(("FAILURE", "REVOKED", "DEADLETTER")):
            print(f"FAIL: task {task_id} ended in {state}")
            return 1
        time.sleep(1)
    print(f"FAIL: task {task_id} still {state or 'unknown'} at the deadline")
    return 1


if __name__ == "__main__":
    sys.exit(main())
