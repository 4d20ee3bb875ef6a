"""`python -m bench`: the pipeline benchmark (see bench/pipeline.py and docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _positive(kind: type) -> object:
    def parse(text: str) -> object:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} must be more than 0")
        return value

    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="oO pipeline benchmark against the real local Kafka broker, side by side in "
        "one run: the raw aiokafka consume rate of the signal topics (the ceiling), the engine "
        "worker's signals/s (RocksDB tables) and its ratio to the raw rate, CPU µs per signal "
        "per stage, and signal → decision latency under an open-loop constant rate. Starts its "
        "own Kafka (127.0.0.1:39092) and PostgreSQL (127.0.0.1:35432) in /var/tmp/oo-bench-USER "
        "and stops them at the end.",
    )
    p.add_argument("--signals", type=_positive(int), default=50_000,
                   help="signals produced up front and consumed by each run (default 50000)")
    p.add_argument("--runs", type=_positive(int), default=3,
                   help="runs of raw ceiling, Faust floor, engine and latency; figures are "
                   "medians (default 3)")
    p.add_argument("--rate", type=_positive(float), action="append", dest="rates",
                   help="open-loop app openings per second of a latency phase; repeatable "
                   "(default: 200, then 1000, the target)")
    p.add_argument("--duration", type=float, default=10.0,
                   help="seconds of each latency phase per run; 0 skips them (default 10)")
    p.add_argument("--stage-signals", type=int, default=20_000,
                   help="signals of the in-process CPU-per-stage measurement; 0 skips it "
                   "(default 20000)")
    p.add_argument("--stage-repeats", type=_positive(int), default=5,
                   help="passes of the stage measurement; the median is reported (default 5)")
    p.add_argument("--quick", action="store_true",
                   help="a short run (~3 min): 20000 signals, 2 runs, 5 s latency phases, "
                   "8000 stage signals x 3")
    p.add_argument("--skip-floor", action="store_true",
                   help="skip the Faust floor (a worker doing one table update per signal "
                   "and nothing else)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                   help="OO_LOG_LEVEL of the worker (default info, as deployed)")
    p.add_argument("--faust", action="append", metavar="NAME=VALUE",
                   help="override a faust.App setting of agents/app.py for this run, e.g. "
                   "--faust broker_max_poll_records=100 (repeatable; VALUE is JSON or text)")
    p.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    p.add_argument("--keep-infra", action="store_true",
                   help="leave Kafka and PostgreSQL running at the end")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.rates:
        args.rates = [200.0, 1000.0]
    if args.quick:
        args.signals, args.runs, args.duration = 20_000, 2, 5.0
        args.stage_signals, args.stage_repeats = 8_000, 3
    if args.duration < 0:
        parser().error("--duration must be 0 or more")
    from bench.common import BenchError
    from bench.pipeline import run

    try:
        run(args)
    except BenchError as err:
        print(f"bench: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
