"""The scheduler's metrics (one process; served on KUBETASKS_SCHEDULES_METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RUNS = Counter("kubetasks_schedule_runs", "Runs a schedule submitted.", ["schedule"])
MISFIRES = Counter(
    "kubetasks_schedule_misfires",
    "Ticks of a schedule that never ran: missed for longer than the grace and dropped by its "
    "misfire policy, or refused by a full queue.",
    ["schedule"],
)
LAST_RUN = Gauge(
    "kubetasks_schedule_last_run_timestamp_seconds",
    "The tick of a schedule's newest run (Unix time).",
    ["schedule"],
)
NEXT_RUN = Gauge(
    "kubetasks_schedule_next_run_timestamp_seconds",
    "A schedule's next tick (Unix time); absent while it is paused.",
    ["schedule"],
)
INTERVAL = Gauge(
    "kubetasks_schedule_interval_seconds",
    "The time between a schedule's two next ticks: how late it may be before it is overdue.",
    ["schedule"],
)
LEADER = Gauge("kubetasks_scheduler_leader", "1 while this replica holds the lease.")
