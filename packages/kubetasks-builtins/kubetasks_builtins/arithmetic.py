"""Small arithmetic, the building blocks of workflow examples: a chain passes a sum on, a
chord's callback totals its group's results."""

from __future__ import annotations

from typing import Annotated

import kubetasks
from pydantic import Field

Number = int | Annotated[float, Field(allow_inf_nan=False)]  # integers stay integers


@kubetasks.task(queue="default", time_limit=5)
def add(a: Number, b: Number) -> object:
    """Returns a + b."""
    return a + b


@kubetasks.task(queue="default", time_limit=5)
def total(
    numbers: Annotated[list[Number], Field(max_length=10_000, description="What to add up.")],
) -> object:
    """Returns the sum of `numbers` (a chord's callback: its group's results)."""
    return sum(numbers)
