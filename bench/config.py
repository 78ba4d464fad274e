"""What one run measures: sizes, durations and repetitions (full or `--quick`)."""

from __future__ import annotations

from dataclasses import dataclass, field

SUBMIT_BODY = b'{"name":"sleep","args":{"seconds":0}}'


@dataclass(frozen=True)
class Config:
    quick: bool = False
    repeats: int = 3
    connections: int = 32
    wrk_threads: int = 1  # one wrk thread leaves the second core to the server
    wrk_seconds: int = 10
    warmup_seconds: int = 2
    drain_tasks: int = 5_000
    drain_pairs: int = 5  # a bare Celery drain and ours back to back, who goes first alternating
    bare_submit_tasks: int = 5_000
    growth_sizes: tuple[int, ...] = (1_000, 100_000, 1_000_000)
    queued_messages: int = 1_000_000
    latency_requests: int = 500  # sequential GETs per repetition in the growth phase
    scrape_requests: int = 50
    redis_benchmark_requests: int = 200_000
    redis_cost_tasks: int = 3_000  # per round, 3 rounds each (bench.redis_cost)
    time_limit_seconds: int = 1_800  # the whole run; a watchdog stops it past this
    profile: bool = False
    profile_seconds: int = 10
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def quick_config(cls, **kw: object) -> Config:
        return cls(
            quick=True,
            wrk_seconds=5,
            warmup_seconds=1,
            drain_tasks=2_000,
            drain_pairs=3,
            bare_submit_tasks=2_000,
            growth_sizes=(1_000, 10_000, 100_000),
            queued_messages=100_000,
            latency_requests=200,
            scrape_requests=20,
            redis_benchmark_requests=50_000,
            redis_cost_tasks=1_000,
            time_limit_seconds=600,
            **kw,  # type: ignore[arg-type]
        )
