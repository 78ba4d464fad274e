"""`python -m scheduler`: fire the schedules until SIGTERM or SIGINT (then give up the lease)."""

from __future__ import annotations

import logging
import signal
from types import FrameType

import redis
from prometheus_client import start_http_server

from contracts.settings import get_settings
from scheduler.runner import Scheduler


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings()
    client = redis.Redis.from_url(
        settings.redis_url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
    )
    scheduler = Scheduler(settings, client)

    def stop(signum: int, _: FrameType | None) -> None:
        logging.getLogger(__name__).info("signal %d: stopping", signum)
        scheduler.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    start_http_server(settings.schedules_metrics_port)
    logging.getLogger(__name__).info(
        "scheduler %s polling every %s s", scheduler.holder, settings.schedules_poll_seconds
    )
    scheduler.run()


if __name__ == "__main__":
    main()
