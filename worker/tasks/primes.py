"""A CPU-bound task for autoscaling demos: count primes below a limit with a sieve."""

from __future__ import annotations

from contracts.catalogue import PrimesArgs
from worker.registry import TaskContext, implements

CHUNK = 1_000_000


@implements("primes")
def primes(args: PrimesArgs, ctx: TaskContext) -> object:
    sieve = bytearray([1]) * args.limit
    sieve[0:2] = b"\x00\x00"
    i = 2
    while i * i < args.limit:
        if sieve[i]:
            sieve[i * i :: i] = bytes(len(range(i * i, args.limit, i)))
        if i % 1000 == 0:
            ctx.progress(i * i, args.limit, "sieving")
        i += 1
    count = sum(sieve[lo : lo + CHUNK].count(1) for lo in range(0, args.limit, CHUNK))
    ctx.progress(args.limit, args.limit, "counted")
    return {"limit": args.limit, "primes": count}
