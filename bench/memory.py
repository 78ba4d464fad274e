"""RSS and PSS of a process and its children (psutil; PSS from /proc/<pid>/smaps_rollup)."""

from __future__ import annotations

from typing import Any

import psutil

MIB = 1024 * 1024


def tree(pid: int) -> dict[str, Any]:
    root = psutil.Process(pid)
    processes = [root, *root.children(recursive=True)]
    rss = pss = 0
    for p in processes:
        try:
            info = p.memory_full_info()
        except psutil.NoSuchProcess:
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return {"rss_mib": rss / MIB, "pss_mib": pss / MIB, "processes": len(processes)}
