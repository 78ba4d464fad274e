"""The release being replaced."""

from __future__ import annotations

import kubetasks


@kubetasks.task(name="rollout_echo", time_limit=10)
def echo(text: str) -> object:
    """Returns its text, and which release ran it."""
    return {"release": "old", "text": text}
