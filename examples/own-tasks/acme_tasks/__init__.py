"""ACME's tasks: one with a dependency the worker image lacks (humanize), one without."""

from __future__ import annotations

from typing import Annotated

import humanize
import kubetasks
from pydantic import Field


@kubetasks.task(queue="acme", time_limit=30)
def describe_size(
    size_bytes: Annotated[int, Field(ge=0, description="A size in bytes.")],
    binary: bool = False,
) -> dict[str, str]:
    """Describes a size in bytes for people: 1.5 MB, or 1.4 MiB when binary."""
    return {"size": humanize.naturalsize(size_bytes, binary=binary)}


@kubetasks.task(queue="acme", time_limit=30)
def count_words(
    text: Annotated[str, Field(max_length=100_000)], *, ctx: kubetasks.Context
) -> dict[str, int]:
    """Counts the words of a text, reporting progress."""
    words = text.split()
    ctx.progress(len(words), len(words), "counted")
    return {"words": len(words)}
