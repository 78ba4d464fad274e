"""The HTTP API: submit tasks, read and cancel them, watch queues. Never imports `worker/`."""
