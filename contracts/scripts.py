"""The Lua scripts that change task records (and `fetch.lua`, the worker transport's fetch), each
prefixed with the shared `_lib.lua`.

Every state change of a task happens in one of these scripts, atomically in Redis, so the API
and the worker cannot disagree on the state machine: they run the same code.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def lua(name: str) -> str:
    folder = resources.files("contracts") / "lua"
    return (folder / "_lib.lua").read_text() + "\n" + (folder / f"{name}.lua").read_text()
