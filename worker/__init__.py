"""The Celery worker: `celery -A worker.app worker`. Task implementations live in `worker.tasks`."""
