"""A CPU-bound task for autoscaling demos: count primes below a limit with a sieve."""

from __future__ import annotations

from typing import Annotated

import kubetasks
from pydantic import Field

CHUNK = 1_000_000


@kubetasks.task(queue="cpu", time_limit=300)
def primes(
    limit: Annotated[
        int, Field(ge=2, le=20_000_000, description="Count the primes below this number.")
    ],
    ctx: kubetasks.Context,
) -> object:
    """Counts primes with a sieve: CPU-bound, for autoscaling demos."""
    sieve = bytearray([1]) * limit
    sieve[0:2] = b"\x00\x00"
    i = 2
    while i * i < limit:
        if sieve[i]:
            sieve[i * i :: i] = bytes(len(range(i * i, limit, i)))
        if i % 1000 == 0:
            ctx.progress(i * i, limit, "sieving")
        i += 1
    count = sum(sieve[lo : lo + CHUNK].count(1) for lo in range(0, limit, CHUNK))
    ctx.progress(limit, limit, "counted")
    return {"limit": limit, "primes": count}
