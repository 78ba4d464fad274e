"""The benchmark harness of issue 6: `python -m bench` (or `make bench`).

Loopback only and bounded: it starts its own redis-server, API (one uvicorn process) and
worker (prefork, 2 processes) with `devstack.processes.Stack`, measures, stops everything and
writes the figures and plots to docs/benchmarks.md and docs/benchmarks/.
"""
