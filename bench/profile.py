"""py-spy while a load runs: collapsed stacks (for speedscope) and the top functions."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any


def record(
    pid: int,
    out: Path,
    seconds: int,
    load: Callable[[], object],
    *,
    subprocesses: bool = False,
) -> dict[str, Any]:
    """Sample `pid` (and its children) for `seconds` while `load()` runs; top functions."""
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        raise RuntimeError("no py-spy: pip install py-spy")
    raw = out.with_suffix(".txt")
    argv = [spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "250",
            "--nonblocking", "--format", "raw", "-o", str(raw)]  # fmt: skip
    if subprocesses:
        argv.append("--subprocesses")
    spy_run = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    load()
    spy_run.wait(seconds + 60)
    return {"raw": str(raw), **top_functions(raw)}


def top_functions(raw: Path, limit: int = 40) -> dict[str, Any]:
    """Share of samples per function: inclusive (on the stack) and self (innermost frame)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    if not raw.exists():
        return {"samples": 0, "inclusive": [], "self": []}
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_short(f) for f in stack.split(";")]
        for name in set(frames[1:] if frames[0].startswith("process ") else frames):
            inclusive[name] += count
        own[frames[-1]] += count

    def pct(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, 100 * n / total) for name, n in counter.most_common(limit)]

    return {"samples": total, "inclusive": pct(inclusive), "self": pct(own)}


def _short(frame: str) -> str:
    """`func (path/to/module.py:123)` -> `func (module.py)`: lines merged per function."""
    name, _, where = frame.partition(" (")
    module = where.rsplit("/", 1)[-1].split(":", 1)[0].rstrip(")")
    return f"{name} ({module})" if module else name
