"""`python -m bench`: the pipeline benchmark (bench/pipeline.py); `python -m bench notify`:
the notifier benchmark (bench/notify.py); `python -m bench web`: the web benchmark
(bench/web.py). Figures and method: docs/benchmarks.md."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bench.common import positive




def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="oO pipeline benchmark against the real local Kafka broker, side by side in "
        "one run: the raw aiokafka consume rate of the signal topics (the ceiling), the engine "
        "worker's signals/s (RocksDB tables) and its ratio to the raw rate, CPU µs per signal "
        "per stage, and signal → decision latency under an open-loop constant rate. Starts its "
        "own Kafka (127.0.0.1:39092) and PostgreSQL (127.0.0.1:35432) in /var/tmp/oo-bench-USER "
        "and stops them at the end. The notifier benchmark is a subcommand: "
        "`python -m bench notify --help`.",
    )
    p.add_argument("--signals", type=positive(int), default=50_000,
                   help="signals produced up front and consumed by each run (default 50000)")
    p.add_argument("--runs", type=positive(int), default=3,
                   help="runs of raw ceiling, Faust floor, engine and latency; figures are "
                   "medians (default 3)")
    p.add_argument("--rate", type=positive(float), action="append", dest="rates",
                   help="open-loop app openings per second of a latency phase; repeatable "
                   "(default: 200, then 1000, the target)")
    p.add_argument("--duration", type=float, default=10.0,
                   help="seconds of each latency phase per run; 0 skips them (default 10)")
    p.add_argument("--no-split", action="store_true",
                   help="skip the latency phases with the engine and the notifier in two "
                   "processes (oo worker --role engine / --role notify)")
    p.add_argument("--stage-signals", type=int, default=20_000,
                   help="signals of the in-process CPU-per-stage measurement; 0 skips it "
                   "(default 20000)")
    p.add_argument("--stage-repeats", type=positive(int), default=5,
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


def notify_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench notify",
        description="oO notifier benchmark, side by side in one run against the local push "
        "service over HTTPS (python -m oo.pushservice on 127.0.0.1:38443, its test CA in "
        "/var/tmp/oo-bench-USER/push-ca; started and stopped here, no Kafka or PostgreSQL): a "
        "naive one-call-at-a-time pywebpush.webpush() loop; the production PushSender as the "
        "notify agent builds it (pushes/s, p50/p99, CPU µs per push); bare aiohttp POSTs of "
        "pre-encrypted bodies (the most any client gets through this push service here); the "
        "notify path at an open-loop constant rate; and the CPU µs per push of the encryption "
        "alone. Medians of the runs, ratios, and the targets MET or MISSED.",
    )
    p.add_argument("--runs", type=positive(int), default=3,
                   help="runs of every phase; figures are medians (default 3)")
    p.add_argument("--devices", type=positive(int), default=200,
                   help="simulated devices subscribed to the push service (default 200)")
    p.add_argument("--pushes", type=positive(int), default=5000,
                   help="pushes of the notify path per run, as fast as possible (default 5000)")
    p.add_argument("--round", type=positive(int), default=2000,
                   help="most pushes per push service instance: the notify path and the ceiling "
                   "run in rounds, each on a fresh push service, whose CPU per push grows with "
                   "the messages it holds (default 2000)")
    p.add_argument("--naive-pushes", type=positive(int), default=500,
                   help="pushes of the naive webpush() loop per run (default 500)")
    p.add_argument("--window", type=positive(int), default=16,
                   help="decisions in flight on the notify path (default 16: the sender's "
                   "per-origin concurrency; more only queue inside the sender)")
    p.add_argument("--rate", type=positive(float), default=1000.0,
                   help="pushes per second of the open-loop phase (default 1000, the target)")
    p.add_argument("--duration", type=float, default=5.0,
                   help="seconds of the open-loop phase per run; 0 skips it (default 5)")
    p.add_argument("--crypto-pushes", type=positive(int), default=2000,
                   help="encryptions per pass of the in-process CPU measurement (default 2000)")
    p.add_argument("--crypto-passes", type=positive(int), default=5,
                   help="passes of the in-process measurement; the median is reported (default 5)")
    p.add_argument("--quick", action="store_true",
                   help="a short run (~30 s): 2 runs, 2000 pushes, 100 naive, 2 s open loop, "
                   "500 encryptions x 3")
    p.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["notify"]:
        return notify_main(argv[1:])
    if argv[:1] == ["web"]:
        from bench.web import main as web_main

        return web_main(argv[1:])
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


def notify_main(argv: Sequence[str]) -> int:
    args = notify_parser().parse_args(argv)
    if args.quick:
        args.runs, args.pushes, args.naive_pushes, args.duration = 2, 2000, 100, 2.0
        args.crypto_pushes, args.crypto_passes = 500, 3
    if args.duration < 0:
        notify_parser().error("--duration must be 0 or more")
    from bench.common import BenchError
    from bench.notify import run

    try:
        run(args)
    except BenchError as err:
        print(f"bench notify: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
