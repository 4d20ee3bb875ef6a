#!/usr/bin/env python3
"""Print oO's tip decisions as they happen: an outside consumer of oo.tips.decided.

A plain Kafka consumer, written as any other system would write one: no Faust,
nothing imported from oO. It needs only `aiokafka` and `jsonschema`
(`pip install aiokafka jsonschema`) and the published contract,
docs/asyncapi.json (the same document as docs/asyncapi.yaml, and as the web
app's /api/asyncapi.yaml).

Each message is checked against the contract: its value must validate against
the TipDecided schema and its key must be the record's user_id. A message
that does not is reported on stderr and skipped; one line per valid decision
goes to stdout:

    2026-11-23T07:30:00Z u-42 app_opened advice "Four slow breaths" (random p=0.25) d-5f1c

Examples:

    python docs/examples/consume_decisions.py                      # new decisions, until Ctrl-C
    python docs/examples/consume_decisions.py --from-beginning --max 10
    python docs/examples/consume_decisions.py --group my-analytics  # resume where it stopped
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError
from jsonschema import Draft7Validator
from jsonschema.exceptions import best_match

TOPIC = "oo.tips.decided"
DEFAULT_CONTRACT = Path(__file__).resolve().parent.parent / "asyncapi.json"


def load_validator(contract: Path, topic: str = TOPIC) -> Draft7Validator:
    """The payload schema of `topic`'s message in an AsyncAPI 3 document (JSON)."""
    doc = json.loads(contract.read_text(encoding="utf-8"))

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = doc
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    channel = next(c for c in doc["channels"].values() if c["address"] == topic)
    (message,) = (resolve(m) for m in channel["messages"].values())
    # AsyncAPI's default schema format is a superset of JSON Schema draft-07.
    return Draft7Validator(resolve(message["payload"]))


def check(validator: Draft7Validator, key: bytes | None, value: bytes | None) -> dict[str, Any]:
    """The decision in a message, or ValueError saying why the message breaks the contract."""
    try:
        decision = json.loads(value or b"")
    except ValueError as err:  # bad UTF-8 or bad JSON
        raise ValueError(f"not JSON: {err}") from None
    error = best_match(validator.iter_errors(decision))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "record"
        raise ValueError(f"{where}: {error.message}")
    if key != decision["user_id"].encode():
        raise ValueError("the key is not the record's user_id")
    result: dict[str, Any] = decision
    return result


def line(decision: dict[str, Any]) -> str:
    """One decision, one line."""
    tip = decision["tip"]
    return (f"{decision['occurred_at']} {decision['user_id']} {decision['moment']} "
            f"{tip['kind']} {json.dumps(tip['title'], ensure_ascii=False)} "
            f"({decision['policy']} p={decision['propensity']:.2f}) {decision['decision_id']}")


async def consume(args: argparse.Namespace) -> int:
    validator = load_validator(args.contract)
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,  # None: read every partition, commit nothing
        enable_auto_commit=args.group is not None,
        auto_offset_reset="earliest" if args.from_beginning else "latest",
        client_id="oo-example-consumer",
    )
    try:
        await consumer.start()
    except KafkaConnectionError as err:
        print(f"consume_decisions: cannot reach Kafka at {args.bootstrap}: {err}", file=sys.stderr)
        return 2
    printed = 0
    try:
        async for message in consumer:
            try:
                decision = check(validator, message.key, message.value)
            except ValueError as err:
                print(f"skipped {message.topic}[{message.partition}]@{message.offset}: {err}",
                      file=sys.stderr, flush=True)
                continue
            if args.user and decision["user_id"] != args.user:
                continue
            print(line(decision), flush=True)
            printed += 1
            if args.max and printed >= args.max:
                break
    finally:
        await consumer.stop()
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="consume_decisions.py",
        description=f"Print oO's tip decisions from {TOPIC}, one line each, each message "
        "validated against the published contract (AsyncAPI).")
    parser.add_argument("--bootstrap", default="127.0.0.1:19092",
                        help="Kafka bootstrap servers (default: the broker `oo dev` starts)")
    parser.add_argument("--from-beginning", action="store_true",
                        help="start at the oldest decision kept (default: only new ones)")
    parser.add_argument("--max", type=int, default=0, metavar="N",
                        help="stop after N decisions (default: run until Ctrl-C)")
    parser.add_argument("--user", default=None, metavar="USER_ID",
                        help="only this person's decisions")
    parser.add_argument("--group", default=None, metavar="ID",
                        help="consumer group: commit offsets and resume there next time")
    parser.add_argument("--contract", type=Path, default=DEFAULT_CONTRACT, metavar="PATH",
                        help=f"the AsyncAPI document as JSON (default: {DEFAULT_CONTRACT})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(consume(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
