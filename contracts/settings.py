"""The one settings object for API and worker, read from `KUBETASKS_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KUBETASKS_", env_ignore_empty=True, extra="ignore", frozen=True
    )

    # One Redis holds the queues and the task records: a submit writes both in one atomic
    # script, so they cannot live on different servers.
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_timeout_seconds: float = Field(default=0.75, gt=0, le=10)

    # Reliability profile.
    visibility_timeout_seconds: int = Field(default=7200, ge=1)
    # How often a worker looks for unacknowledged messages older than the visibility timeout
    # (left by a worker that died) and puts them back on their queue.
    restore_interval_seconds: int = Field(default=10, ge=1)
    # A task PENDING this long whose message is nowhere (a worker died while taking it) is
    # queued again by the workers' orphan reaper.
    orphan_after_seconds: int = Field(default=900, ge=1)
    max_redeliveries: int = Field(default=3, ge=0, le=100)
    record_ttl_seconds: int = Field(default=86400, ge=1)
    tombstone_ttl_seconds: int = Field(default=7 * 86400, ge=1)
    idempotency_ttl_seconds: int = Field(default=86400, ge=1)

    # Hard time limit per task name, overriding the task's own (soft limit follows); a worker
    # ignores the names of tasks it does not serve (another pool's).
    task_time_limits: dict[str, int] = {}
    # Modules of task definitions to import besides the `kubetasks.tasks` entry points.
    task_modules: list[str] = []
    # A task version no worker has published for this long leaves the catalogue (a task whose
    # workers are scaled to zero stays submittable until then).
    catalogue_retention_seconds: int = Field(default=30 * 86400, ge=60)

    # API.
    api_key: SecretStr | None = None
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    show_tracebacks: bool = False
    cors_origins: list[str] = []
    retry_after_seconds: int = Field(default=2, ge=1)
    # Event streams (GET /events, /tasks/{id}/events, /workflows/{id}/events) one API process
    # serves at once; more are answered 503 with Retry-After. Each costs about 31 KiB of memory
    # (docs/benchmarks.md): 4,000 take about 120 MiB, which fits the chart's 256 MiB limit.
    events_max_streams: int = Field(default=4_000, ge=1)
    # Most steps one workflow may have (POST /workflows answers 422 above).
    workflow_max_steps: int = Field(default=500, ge=1, le=10_000)
    # Per-queue limit of waiting tasks past which submits get 429 (catalogue defaults).
    queue_max_backlog: dict[str, int] = {}
    # The value of a `release` label on the queue gauges (api/metrics.py), so the autoscalers can
    # tell two releases in one namespace apart however Prometheus scrapes the API; empty = no label.
    metrics_release: str = ""

    # Worker.
    worker_queues: list[str] = ["default", "cpu"]
    worker_concurrency: int = Field(default=2, ge=1)
    worker_soft_shutdown_timeout: float = Field(default=25.0, ge=0)
    worker_heartbeat_file: Path = Path("/tmp/kubetasks/heartbeat")
    worker_ready_file: Path = Path("/tmp/kubetasks/ready")
    worker_heartbeat_interval_seconds: float = Field(default=5.0, gt=0)
    worker_heartbeat_max_age_seconds: float = Field(default=60.0, gt=0)
    worker_metrics_port: int = Field(default=9808, ge=0, le=65535)
    # Celery task events feed Flower; without Flower they cost about a third of a worker's time.
    worker_task_events: bool = True
    # The transport's fetch-and-record script and local acks (worker/broker.py); off = kombu's
    # own round trips, same behaviour.
    worker_fast_path: bool = True
    worker_logfile: Path | None = None
    # How often a worker moves delayed tasks (countdowns, retries) that are due to their queues.
    scheduler_interval_seconds: float = Field(default=0.5, gt=0)

    # The schedules' scheduler (python -m scheduler): how often it looks for due ticks, how long
    # its lease lasts (a replica that took over fires within this of the holder's death; the
    # missed ticks fire then), and its metrics port.
    schedules_poll_seconds: float = Field(default=1.0, gt=0)
    schedules_lease_seconds: float = Field(default=15.0, gt=0)
    schedules_metrics_port: int = Field(default=9810, ge=0, le=65535)

    @model_validator(mode="after")
    def _tombstones_outlive_records(self) -> Settings:
        if self.tombstone_ttl_seconds < self.record_ttl_seconds:
            raise ValueError(
                "KUBETASKS_TOMBSTONE_TTL_SECONDS must be >= KUBETASKS_RECORD_TTL_SECONDS, "
                "or an expired task would read as never submitted (404 instead of 410)"
            )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
