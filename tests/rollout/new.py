"""The new release: an argument more, which the old one would refuse."""

from __future__ import annotations

import kubetasks


@kubetasks.task(name="rollout_echo", time_limit=10)
def echo(text: str, shout: bool = False) -> object:
    """Returns its text (upper case when shouted), and which release ran it."""
    return {"release": "new", "text": text.upper() if shout else text}
