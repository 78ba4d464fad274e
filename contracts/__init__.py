"""What the API and the worker agree on: settings, the task catalogue, Redis keys, messages.

Both images carry this package; nothing else is shared between `api/` and `worker/`.
"""
