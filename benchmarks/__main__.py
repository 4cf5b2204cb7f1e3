"""`python -m benchmarks [NAME ...]`: run benchmarks and print a summary table.

Exit code 0 when every benchmark ran (PASS or MISS: benchmarks report, they do not assert on
time), 1 when one of them crashed, 2 for an unknown name.
"""

from __future__ import annotations

import argparse
import sys

from . import BENCHMARKS, BenchResult, run_benchmarks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="Run personae's benchmarks (all by default).",
        epilog="example: python -m benchmarks cached_rerun embedded_generation")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"one of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, (_, what) in BENCHMARKS.items():
            print(f"{name:22s} {what}")
        return 0
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    outcomes = run_benchmarks(args.names or None)
    return 0 if all(isinstance(r, BenchResult) for r in outcomes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
