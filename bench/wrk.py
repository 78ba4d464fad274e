"""HTTP throughput with Debian's `wrk`: a Lua script for the request, JSON out of `done()`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.config import SUBMIT_BODY

# wrk calls done() once at the end; it prints one line the harness parses.
DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"non2xx":%d,"socket_errors":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
"""

POST_SCRIPT = (
    'wrk.method = "POST"\n'
    f"wrk.body = '{SUBMIT_BODY.decode()}'\n"
    'wrk.headers["Content-Type"] = "application/json"\n' + DONE
)
GET_SCRIPT = DONE


def require_wrk() -> str:
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("no wrk: apt-get install -y wrk")
    return found


def run(
    url: str,
    script: str,
    workdir: Path,
    *,
    seconds: int,
    connections: int,
    threads: int,
) -> dict[str, Any]:
    """One wrk run; requests/s, latency percentiles in ms, non-2xx and socket errors."""
    path = workdir / ("post.lua" if script == POST_SCRIPT else "get.lua")
    path.write_text(script)
    argv = [
        require_wrk(), "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
        "--timeout", "5s", "-s", str(path), url,
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no figures:\n{done.stdout}\n{done.stderr}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    seconds_run = raw["duration_us"] / 1e6
    return {
        "rps": raw["requests"] / seconds_run,
        "requests": raw["requests"],
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "non2xx": raw["non2xx"],
        "socket_errors": raw["socket_errors"],
    }
