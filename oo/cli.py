"""The `oo` command: local infrastructure, migrations, worker, web and the dev loop.

Every command has `--help`. Configuration comes from environment variables
(see `oo.settings`); a bad setting or a failing service is reported as one
`oo: error: ...` line and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from oo.infra.common import InfraError
from oo.settings import Settings, SettingsError

EXIT_ERROR = 2


class CliError(RuntimeError):
    """A command failed in an expected way; the message is shown as is."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_ERROR
    try:
        settings = Settings.from_env()
        _setup_logging(settings)
        return int(args.run(settings, args) or 0)
    except KeyboardInterrupt:
        return 130
    except (SettingsError, InfraError, CliError) as err:
        print(f"oo: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as err:
        # Domain errors of other modules (MigrationError, TopicLayoutError) are
        # expected failures too: one line, no traceback, unless debugging.
        if _is_expected(err):
            print(f"oo: error: {err}", file=sys.stderr)
            return EXIT_ERROR
        raise


def _is_expected(err: Exception) -> bool:
    from oo.migrate import MigrationError
    from oo.vapid import VapidKeyError
    from topics.admin import TopicLayoutError

    return isinstance(err, (MigrationError, TopicLayoutError, VapidKeyError))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oo",
        description="oO: one perfectly-timed tip. Configuration: OO_* environment variables "
        "(see `oo settings`).",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    infra = sub.add_parser("infra", help="local Kafka and PostgreSQL (no Docker)",
                           description="Provision, start, stop and inspect the local Kafka broker "
                           "and PostgreSQL cluster used for development and tests.")
    infra_sub = infra.add_subparsers(title="actions", metavar="ACTION")
    up = infra_sub.add_parser("up", help="start Kafka and PostgreSQL, create topics, migrate",
                              description="Download Kafka if needed, start Kafka and PostgreSQL "
                              "(a second `up` finds them running), create topics, apply migrations.")
    up.set_defaults(run=_infra_up)
    down = infra_sub.add_parser("down", help="stop Kafka and PostgreSQL",
                                description="Stop the local Kafka broker and PostgreSQL cluster.")
    down.set_defaults(run=_infra_down)
    status = infra_sub.add_parser("status", help="show whether they run",
                                  description="Show whether the local services run, and where.")
    status.set_defaults(run=_infra_status)
    infra.set_defaults(run=lambda s, a: _help(infra))

    migrate = sub.add_parser("migrate", help="apply database migrations",
                             description="Apply the SQL migrations in migrations/ in order, each "
                             "in its own transaction; already-applied ones are skipped.")
    migrate.set_defaults(run=_migrate)

    topics = sub.add_parser("topics", help="create missing topics and list them",
                            description="Create every oO topic that is missing, with "
                            "OO_TOPIC_PARTITIONS partitions, and check the existing ones.")
    topics.set_defaults(run=_topics)

    worker = sub.add_parser("worker", help="run the Faust worker (the agents)",
                            description="Run the Faust worker: creates missing topics, then runs "
                            "the agents of its role. Health on OO_WORKER_WEB_HOST:OO_WORKER_WEB_PORT "
                            "(/health, /ready; /metrics with OO_METRICS_TOKEN), loopback by "
                            "default: give each worker process its own port.")
    worker.add_argument("--role", choices=("all", "engine", "notify"), default="all",
                        help="all: every agent in this process (default); engine: signals, "
                        "timers and feedback into state and decisions; notify: decisions into "
                        "pushes, as its own group OO_APP_ID-notify (run one of each to split)")
    worker.set_defaults(run=_worker)

    webp = sub.add_parser("web", help="run the web app (PWA + API)",
                          description="Serve the PWA and JSON API on OO_WEB_HOST:OO_WEB_PORT.")
    webp.set_defaults(run=_web)

    dev = sub.add_parser("dev", help="everything at once: infra, worker, web; prints the URL",
                         description="Start Kafka, PostgreSQL, the worker and the web app, print "
                         "the URL, and stop all of it on Ctrl-C.")
    dev.add_argument("--keep-infra", action="store_true",
                     help="leave Kafka and PostgreSQL running after Ctrl-C")
    dev.add_argument("--no-demo", action="store_true",
                     help="don't simulate the demo person's week (signals at 60x speed)")
    dev.set_defaults(run=_dev)

    simulate = sub.add_parser("simulate", help="send realistic signals for synthetic people",
                              description="Produce normalized signals for N synthetic people over D "
                              "days (time zones, routines, meetings, todos, habits, moods, app "
                              "opens) to the signal topics. Seeded and reproducible.")
    simulate.add_argument("--users", type=_positive, default=10, help="how many people (default 10)")
    simulate.add_argument("--days", type=_positive, default=1, help="simulated days (default 1)")
    simulate.add_argument("--speed", type=float, default=0.0,
                          help="simulated seconds per real second; 0 = as fast as possible (default)")
    simulate.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    simulate.add_argument("--start", type=_utc_time, default=None,
                          help="simulated start, ISO 8601 with offset (default: now)")
    simulate.add_argument("--prefix", default="sim", help="user id namespace (default sim)")
    simulate.add_argument("--time-zone", type=_zone, default=None,
                          help="put everyone in this IANA zone (default: a mix of zones)")
    simulate.set_defaults(run=_simulate)

    vapid = sub.add_parser("vapid", help="VAPID keys for Web Push",
                           description="Manage the VAPID key pair that signs Web Push requests "
                           "(OO_VAPID_PRIVATE_KEY).")
    vapid_sub = vapid.add_subparsers(title="actions", metavar="ACTION")
    generate = vapid_sub.add_parser("generate", help="write a new key pair; print the public key",
                                    description="Write a new P-256 private key (mode 0600) to "
                                    "OO_VAPID_PRIVATE_KEY and print the public key in the form "
                                    "browsers take as applicationServerKey.")
    generate.add_argument("--force", action="store_true", help="replace an existing key")
    generate.set_defaults(run=_vapid_generate)
    public = vapid_sub.add_parser("public-key", help="print the public key of the existing pair",
                                  description="Print the applicationServerKey of the existing key.")
    public.set_defaults(run=_vapid_public)
    vapid.set_defaults(run=lambda s, a: _help(vapid))

    vault = sub.add_parser("vault", help="the keys that seal connector tokens",
                           description="Manage the vault that seals connector tokens "
                           "(OO_VAULT_KEYS: kid:base64key, the current key first).")
    vault_sub = vault.add_subparsers(title="actions", metavar="ACTION")
    new_key = vault_sub.add_parser("new-key", help="print a new key entry for OO_VAULT_KEYS",
                                   description="Print a fresh random key as kid:base64key. Put "
                                   "it first in OO_VAULT_KEYS, keep the old keys after it, then "
                                   "run `oo vault rotate`.")
    new_key.set_defaults(run=_vault_new_key)
    rotate = vault_sub.add_parser("rotate", help="re-seal every stored token under the current key",
                                  description="Re-encrypt every connector credential sealed with "
                                  "an older key under the first key of OO_VAULT_KEYS. Old keys "
                                  "can be removed from OO_VAULT_KEYS once it reports 0 left.")
    rotate.set_defaults(run=_vault_rotate)
    vault.set_defaults(run=lambda s, a: _help(vault))

    _add_contracts(sub)

    from oo.learning_cli import add_learning_commands  # evaluate, replay, metrics

    add_learning_commands(sub)

    settings = sub.add_parser("settings", help="print the effective settings",
                              description="Print every setting with its effective value.")
    settings.set_defaults(run=_settings)
    return parser


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_ERROR


def _setup_logging(settings: Settings) -> None:
    from oo import logs

    logs.configure(settings)  # JSON lines in production, text elsewhere (oo/logs.py)


def _say(message: str) -> None:
    print(f"oo: {message}", flush=True)


def _infra_up(settings: Settings, args: argparse.Namespace) -> int:
    infra_up(settings, _say)
    _infra_status(settings, args)
    return 0


def infra_up(settings: Settings, log: Callable[[str], None]) -> tuple[bool, bool]:
    """Start Kafka and PostgreSQL, create topics, migrate; (kafka started, postgres started)."""
    from oo.infra.kafka import LocalKafka
    from oo.infra.postgres import LocalPostgres

    kafka_started = LocalKafka.from_settings(settings, log=log).up()
    postgres_started = LocalPostgres.from_settings(settings, log=log).up()
    _create_topics(settings, log)
    _apply_migrations(settings, log)
    return kafka_started, postgres_started


def _infra_down(settings: Settings, args: argparse.Namespace) -> int:
    from oo.infra.kafka import LocalKafka
    from oo.infra.postgres import LocalPostgres

    for service in (LocalKafka.from_settings(settings, log=_say),
                    LocalPostgres.from_settings(settings, log=_say)):
        service.down()
    _infra_status(settings, args)
    return 0


def _infra_status(settings: Settings, args: argparse.Namespace) -> int:
    from oo.infra.kafka import LocalKafka
    from oo.infra.postgres import LocalPostgres

    for service in (LocalKafka.from_settings(settings, log=_say),
                    LocalPostgres.from_settings(settings, log=_say)):
        print(service.status().line())
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    _apply_migrations(settings, _say)
    return 0


def _apply_migrations(settings: Settings, log: Callable[[str], None]) -> None:
    from oo.migrate import migrate

    applied = asyncio.run(migrate(settings.database_url, log=log))
    log(f"migrations: {len(applied)} applied" + (f" ({', '.join(applied)})" if applied else ""))


def _topics(settings: Settings, args: argparse.Namespace) -> int:
    from topics.catalog import ALL_TOPICS

    _create_topics(settings, _say)
    for spec in ALL_TOPICS:
        print(f"{spec.name:<24} {settings.topic_partitions} partitions  {spec.record.__name__}")
    return 0


def _create_topics(settings: Settings, log: Callable[[str], None]) -> None:
    from topics.admin import ensure_topics

    created = asyncio.run(ensure_topics(
        settings.kafka_bootstrap_servers, partitions=settings.topic_partitions,
        replication=settings.topic_replication, log=log,
    ))
    log(f"topics: {len(created)} created")


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from faust.worker import Worker

    from agents.app import create_app, internal_topics
    from topics.admin import ensure_internal_topics

    _create_topics(settings, _say)
    app = create_app(settings, args.role)
    # Before Faust declares them itself, racing its own consumer's metadata.
    asyncio.run(ensure_internal_topics(settings.kafka_bootstrap_servers, internal_topics(app),
                                       log=_say))
    from oo.logs import logging_config

    worker = Worker(app, loglevel=settings.log_level, quiet=True,
                    logging_config=logging_config(settings))
    worker.execute_from_commandline()
    return 0


def _web(settings: Settings, args: argparse.Namespace) -> int:
    from aiohttp import web

    from web.app import create_app

    _say(f"web app on {settings.web_url}")
    web.run_app(create_app(settings), host=settings.web_host, port=settings.web_port,
                print=None, access_log=None)
    return 0


def _dev(settings: Settings, args: argparse.Namespace) -> int:
    from oo.dev import run_dev

    return run_dev(settings, keep_infra=args.keep_infra, demo=not args.no_demo, log=_say)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _utc_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (e.g. 2026-11-22T07:00:00Z)")
    return value.astimezone(UTC)


def _zone(text: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not an IANA time zone") from None
    return text


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from oo.simulator import run_simulation

    if args.speed < 0:
        raise CliError("--speed must be 0 (as fast as possible) or more")
    _create_topics(settings, _say)
    start = args.start or datetime.now(UTC).replace(second=0, microsecond=0)
    asyncio.run(run_simulation(settings.kafka_bootstrap_servers, users=args.users, days=args.days,
                               speed=args.speed, start=start, seed=args.seed, prefix=args.prefix,
                               time_zone=args.time_zone, log=_say))
    return 0


def _vapid_generate(settings: Settings, args: argparse.Namespace) -> int:
    from oo.vapid import cli_generate

    return cli_generate(settings.vapid_private_key, args.force)


def _vapid_public(settings: Settings, args: argparse.Namespace) -> int:
    from oo.vapid import cli_public_key

    return cli_public_key(settings.vapid_private_key)


def _vault_new_key(settings: Settings, args: argparse.Namespace) -> int:
    from adapters.vault import new_key, new_key_id

    print(f"{new_key_id()}:{new_key()}")
    return 0


def _vault_rotate(settings: Settings, args: argparse.Namespace) -> int:
    from adapters.vault import rotate_database

    if not settings.vault_keys:
        raise CliError("OO_VAULT_KEYS is not set: there is no key to rotate to")
    resealed, left = asyncio.run(rotate_database(settings.database_url, settings.vault_keys))
    _say(f"vault: {resealed} credentials re-sealed under key {settings.vault_keys[0][0]!r}; "
         f"{left} left under other keys")
    if left:
        raise CliError(f"{left} credentials are sealed with keys missing from OO_VAULT_KEYS or "
                       "do not open; keep those keys listed")
    return 0


def _settings(settings: Settings, args: argparse.Namespace) -> int:
    for name, value in settings.redacted().items():
        print(f"{name:<18} {value}")
    return 0


def _add_contracts(sub: argparse._SubParsersAction) -> None:
    contracts = sub.add_parser(
        "contracts", help="the published topic contracts (AsyncAPI) and their compatibility gate",
        description="Generate docs/asyncapi.yaml (and .json) from topics/, check it is current "
        "and that no record changed incompatibly since contracts/released.json, or release.")
    actions = contracts.add_subparsers(title="actions", metavar="ACTION")
    write = actions.add_parser("write", help="regenerate docs/asyncapi.yaml and docs/asyncapi.json",
                               description="Regenerate the AsyncAPI document from the topic "
                               "catalog and record classes (only files that changed are written).")
    write.set_defaults(run=_contracts_run("write"))
    check = actions.add_parser("check", help="fail if the document is stale or a change breaks",
                               description="Exit non-zero if docs/asyncapi.* differ from a fresh "
                               "generation, or if a record changed incompatibly (field removed, "
                               "type changed, new required field, enum value removed, tighter "
                               "limit) since contracts/released.json without a version bump.")
    check.set_defaults(run=_contracts_run("check"))
    release = actions.add_parser("release", help="record the current schemas as released",
                                 description="Write the current record schemas to "
                                 "contracts/released.json, the baseline of `check`. Refuses "
                                 "incompatible changes without a version bump.")
    release.add_argument("--accept-breaking", action="store_true",
                         help="release even incompatible changes without a version bump")
    release.set_defaults(run=_contracts_run("release"))
    contracts.set_defaults(run=lambda s, a: _help(contracts))


def _contracts_run(action: str) -> Callable[[Settings, argparse.Namespace], int]:
    def run(settings: Settings, args: argparse.Namespace) -> int:
        from oo import contracts

        try:
            if action == "release":
                return contracts.release(_say, accept_breaking=args.accept_breaking)
            return contracts.write(_say) if action == "write" else contracts.check(_say)
        except contracts.ContractsError as err:
            raise CliError(str(err)) from None

    return run


if __name__ == "__main__":
    sys.exit(main())
