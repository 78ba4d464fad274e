# Benchmarks (issue 6); included by the top-level Makefile.
#   make bench                          full run (about 4 min on 2 cores), figures and plots
#                                       into docs/benchmarks.md and docs/benchmarks/
#   make bench BENCH_ARGS=--quick       smaller sizes (growth to 100k records, 100k queued)
#   make bench BENCH_ARGS=--profile     also py-spy the API and the worker under load
# Needs Debian's wrk and redis-tools (redis-benchmark): apt-get install -y wrk redis-tools
BENCH_ARGS ?=

.PHONY: bench

bench: venv
	@command -v wrk >/dev/null || { echo "make bench needs wrk: apt-get install -y wrk"; exit 1; }
	@command -v redis-benchmark >/dev/null || \
	  { echo "make bench needs redis-benchmark: apt-get install -y redis-tools"; exit 1; }
	$(BIN)/python -m bench $(BENCH_ARGS)
