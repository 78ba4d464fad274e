"""`python -m bench [--quick] [--profile]`: run every measurement, write the figures."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from bench import report
from bench.config import Config
from bench.run import log, run
from devstack.processes import ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes: 2k drain, growth to 100k, 5 s wrk")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3, help="repetitions (>= 3)")
    parser.add_argument("--profile", action="store_true",
                        help="also sample the API and worker with py-spy under load")  # fmt: skip
    parser.add_argument("--workdir", type=Path, default=None,
                        help="logs and profiles (default .run/bench-<time>)")  # fmt: skip
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    if args.repeats < 3:
        parser.error("--repeats must be at least 3")
    options = {"repeats": args.repeats, "profile": args.profile}
    cfg = Config.quick_config(**options) if args.quick else Config(**options)
    workdir = args.workdir or ROOT / ".run" / time.strftime("bench-%Y%m%d-%H%M%S")
    log(f"logs in {workdir}")
    results = run(cfg, workdir)
    command = "python -m bench" + "".join(f" {shlex.quote(a)}" for a in (argv or sys.argv[1:]))
    report.save(results, args.doc, args.doc.parent / "benchmarks", command)
    for target, figure, met in report.targets(results):
        log(f"{'met   ' if met else 'MISSED'} {target}: {figure}")
    log(f"done in {results['elapsed_seconds'] / 60:.1f} min; figures in {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
