"""The learning commands of `oo`: `evaluate`, `replay` and `metrics` (see `oo.cli`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from oo.settings import Settings


def add_learning_commands(sub: Any) -> None:
    """Register `oo evaluate`, `oo replay` and `oo metrics` on the `oo` subparsers."""
    evaluate = sub.add_parser(
        "evaluate", help="run policies against synthetic people with hidden preferences",
        description="Run each policy on the same seeded synthetic people (hidden tastes: what "
        "they like, the hours they answer, fatigue) for N simulated days through the real pure "
        "decision path, and report acceptance, dismiss and ignored rates, tips per day, reward "
        "and regret with 95%% intervals (people resampled), each policy against the first.")
    evaluate.add_argument("--policy", default="random,bandit",
                          help="comma-separated policies; the first is the baseline. Registered "
                          "names, NAME+timing / NAME-timing to switch learned timing, "
                          "bandit-personal (global priors only), or oracle (knows the hidden "
                          "tastes). Default random,bandit")
    evaluate.add_argument("--people", type=_positive, default=200, help="people (default 200)")
    evaluate.add_argument("--days", type=_positive, default=14, help="simulated days (default 14)")
    evaluate.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    evaluate.add_argument("--warmup", type=int, default=0, metavar="N",
                          help="first fit the bandit's global priors on N other people given "
                          "random tips (default 0: shipped priors)")
    evaluate.add_argument("--warmup-seed", type=int, default=None,
                          help="seed of the warm-up cohort (default: --seed + 1000)")
    evaluate.add_argument("--priors", default=None, metavar="PATH",
                          help="global priors to use (from `oo replay --fit-priors`)")
    evaluate.add_argument("--shadow", default="",
                          help="comma-separated shadow policies, logged beside each run")
    evaluate.add_argument("--replay-check", default=None, metavar="POLICY",
                          help="also replay POLICY on the first policy's log and compare the "
                          "estimate with the value measured by running it (switch-over "
                          "protocol, see --switch-day; and over the whole run)")
    evaluate.add_argument("--switch-day", type=float, default=None, metavar="DAY",
                          help="--replay-check: the day the logging policy hands over to the "
                          "candidate, which stops learning then (default: half the days)")
    evaluate.add_argument("--canary-share", type=float, default=0.2, metavar="SHARE",
                          help="--replay-check: the share of decision points the candidate "
                          "decides in the canary run (default 0.2)")
    evaluate.add_argument("--log", default=None, metavar="PATH",
                          help="write every decision point as JSONL (input of `oo replay`)")
    evaluate.add_argument("--events", default=None, metavar="PATH",
                          help="write the simulated event log as JSONL (input of `oo metrics`)")
    evaluate.add_argument("--bootstrap-draws", type=_positive, default=2000,
                          help="bootstrap resamples for the intervals (default 2000)")
    evaluate.add_argument("--json", action="store_true", help="print every figure as JSON")
    evaluate.set_defaults(run=_evaluate)

    replay = sub.add_parser(
        "replay", help="estimate a policy's reward from logged decisions (IPS, DR)",
        description="Read logged decision points and their answers, from a JSONL export "
        "(`oo evaluate --log`) or from the topics (--bootstrap), and estimate a candidate "
        "policy's mean reward per decision point with inverse propensity scoring and a doubly "
        "robust estimator, with 95%% intervals. The candidate must have run live or as a "
        "shadow (OO_SHADOW_POLICIES) when the decisions were logged.")
    replay.add_argument("path", nargs="?", default=None,
                        help="JSONL export ('-' for stdin); omit with --bootstrap")
    replay.add_argument("--bootstrap", nargs="?", const="", default=None, metavar="SERVERS",
                        help="read oo.tips.decided and oo.feedback from Kafka (default: "
                        "OO_KAFKA_BOOTSTRAP)")
    replay.add_argument("--policy", default="bandit", help="the candidate policy (default bandit)")
    replay.add_argument("--run", dest="run_name", metavar="RUN", default=None,
                        help="in an `oo evaluate` export, the run to read (default: the first)")
    replay.add_argument("--fit-priors", default=None, metavar="PATH",
                        help="also write the bandit's global priors fitted on these logs")
    replay.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    replay.add_argument("--json", action="store_true", help="print the estimates as JSON")
    replay.set_defaults(run=_replay)

    metrics = sub.add_parser(
        "metrics", help="product metrics from the event log",
        description="Activation, first-tip reaction rate, dwell, snooze-to-dismiss ratio and "
        "D1/D7 retention, from the topics (--bootstrap) or a JSONL event log "
        "(`oo evaluate --events`).")
    metrics.add_argument("path", nargs="?", default=None, help="JSONL event log ('-' for stdin)")
    metrics.add_argument("--bootstrap", nargs="?", const="", default=None, metavar="SERVERS",
                         help="read the topics from Kafka (default: OO_KAFKA_BOOTSTRAP)")
    metrics.add_argument("--run", dest="run_name", metavar="RUN", default=None,
                         help="in an `oo evaluate --events` log, the run to read (default: "
                         "the first)")
    metrics.add_argument("--json", action="store_true", help="print the metrics as JSON")
    metrics.set_defaults(run=_metrics)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _fail(message: str) -> Exception:
    from oo.cli import CliError

    return CliError(message)


def _say(message: str) -> None:
    print(f"oo: {message}", file=sys.stderr, flush=True)


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _evaluate(settings: Settings, args: argparse.Namespace) -> int:
    from domain.policies import UnknownPolicy
    from domain.priors import PriorsError, load_priors
    from oo.evaluate import evaluate, render

    policies = _names(args.policy)
    if not policies:
        raise _fail("--policy names no policy")
    priors = None
    if args.priors:
        try:
            with open(args.priors, encoding="utf-8") as handle:
                priors = load_priors(handle.read())
        except (OSError, PriorsError) as err:
            raise _fail(f"--priors {args.priors}: {err}") from None
    log = open(args.log, "w", encoding="utf-8") if args.log else None
    events = open(args.events, "w", encoding="utf-8") if args.events else None
    try:
        summary = evaluate(people=args.people, days=args.days, seed=args.seed,
                           policies=policies, shadows=_names(args.shadow), log=log,
                           events=events, progress=_say, draws=args.bootstrap_draws,
                           warmup=args.warmup, warmup_seed=args.warmup_seed, priors=priors,
                           replay_check=args.replay_check, switch_day=args.switch_day,
                           canary_share=args.canary_share)
    except (UnknownPolicy, ValueError) as err:
        raise _fail(str(err.args[0] if err.args else err)) from None
    finally:
        if log is not None:
            log.close()
        if events is not None:
            events.close()
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(render(summary, seed=args.seed, people=args.people, days=args.days))
    if "replay_check" in summary:
        from oo.replay import render as render_replay

        whole, check = summary["replay_check_whole"], summary["replay_check"]
        print()
        print(f"whole run: {whole['target']} replayed as a shadow, against it run from day 0")
        print(render_replay(whole))
        print()
        print(f"switch-over (the check): {check['target']} — learns as a shadow until day "
              f"{check['switch_day']:g}, then frozen; days {check['switch_day']:g}-{check['days']}")
        print(render_replay(check))
        canary = summary["replay_check_canary"]
        print()
        print(f"canary (diagnostic): the whole-run replay, against {canary['target']} deciding "
              f"{canary['share']:.0%} of the decision points ({canary['canary_points']} points)")
        print(render_replay(canary))
    return 0


def _servers(settings: Settings, value: str) -> str:
    return value or settings.kafka_bootstrap_servers


def _replay(settings: Settings, args: argparse.Namespace) -> int:
    from oo.replay import from_records, iter_lines, read_jsonl, read_topics, render, replay
    from oo.replay import runs_in, write_priors

    skipped: dict[str, int] = {}
    if args.bootstrap is not None:
        decided, answered = asyncio.run(read_topics(_servers(settings, args.bootstrap)))
        entries, skipped = from_records(decided, answered)
        source = "topics"
    elif args.path:
        try:
            entries = read_jsonl(iter_lines(args.path))
        except (OSError, ValueError) as err:
            raise _fail(f"{args.path}: {err}") from None
        runs = runs_in(entries)
        run = args.run_name or (runs[0] if runs else None)
        if run is not None:
            entries = [e for e in entries if e.get("run") == run]
        source = f"{args.path}" + (f" (run {run})" if run else "")
    else:
        raise _fail("give a JSONL export or --bootstrap")
    if args.fit_priors:
        with open(args.fit_priors, "w", encoding="utf-8") as out:
            write_priors(entries, out, f"oo replay --fit-priors on {source}")
        _say(f"priors written to {args.fit_priors}")
    try:
        result = replay(entries, args.policy, seed=args.seed)
    except ValueError as err:
        raise _fail(str(err)) from None
    result["source"], result["skipped"] = source, skipped
    print(json.dumps(result, indent=1) if args.json else render(result))
    return 0


def _metrics(settings: Settings, args: argparse.Namespace) -> int:
    from oo.metrics_report import compute, read_event_lines, read_topic_events, render
    from oo.replay import iter_lines

    if args.bootstrap is not None:
        events = asyncio.run(read_topic_events(_servers(settings, args.bootstrap)))
    elif args.path:
        try:
            events = read_event_lines(iter_lines(args.path))
        except (OSError, ValueError) as err:
            raise _fail(f"{args.path}: {err}") from None
        runs = list(dict.fromkeys(e["run"] for e in events if e.get("run") is not None))
        run = args.run_name or (runs[0] if runs else None)
        if run is not None:
            events = [e for e in events if e.get("run") == run]
    else:
        raise _fail("give a JSONL event log or --bootstrap")
    result = compute(events)
    print(json.dumps(result, indent=1) if args.json else render(result))
    return 0
