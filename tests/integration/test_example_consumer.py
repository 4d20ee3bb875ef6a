"""docs/examples/consume_decisions.py reads real decisions from the real broker.

Real TipDecided records, encoded by oO's codec, are produced to
oo.tips.decided; the example runs as a separate process, as an outside team
would run it, and prints them.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from types import ModuleType

import pytest

from tests.helpers import ROOT, produce
from topics.admin import ensure_topics
from topics.catalog import TIPS_DECIDED
from topics.codec import encode
from topics.records import Tip, TipDecided

pytestmark = pytest.mark.integration
EXAMPLE = ROOT / "docs" / "examples" / "consume_decisions.py"
ALLOWED_IMPORTS = {"__future__", "argparse", "asyncio", "json", "sys", "pathlib", "typing",
                   "aiokafka", "jsonschema"}


def decision(user: str, title: str, kind: str = "advice") -> TipDecided:
    now = datetime.now(UTC)
    decision_id = uuid.uuid4().hex
    return TipDecided(
        event_id=decision_id, user_id=user, occurred_at=now, source="test",
        decision_id=decision_id, triggered_by=f"e-{decision_id}", moment="app_opened",
        policy="random", propensity=0.25, reason="app_opened: test",
        tip=Tip(id=f"{kind}:{title}", kind=kind, title=title, body="Now.",  # type: ignore[arg-type]
                source="catalogue"),
        context_snapshot={"moment": "app_opened"}, expires_at=now + timedelta(hours=4))


def example(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("consume_decisions", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_example_consumer_prints_real_decisions_from_the_broker(kafka, settings):
    await ensure_topics(kafka, partitions=settings.topic_partitions, replication=1,
                        specs=[TIPS_DECIDED], log=lambda _: None)
    user = f"u-example-{uuid.uuid4().hex[:8]}"
    sent = [decision(user, "Four slow breaths"), decision(user, "Call the dentist", "todo"),
            decision(user, "Drink a glass of water — «now»")]
    await produce(kafka, TIPS_DECIDED.name, [(d.user_id.encode(), encode(d)) for d in sent])

    result = example("--bootstrap", kafka, "--from-beginning", "--user", user, "--max", "3")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [
        f"{d.occurred_at.isoformat().replace('+00:00', 'Z')} {user} app_opened {d.tip.kind} "
        f"{json.dumps(d.tip.title, ensure_ascii=False)} (random p=0.25) {d.decision_id}"
        for d in sent
    ]


def test_the_example_reports_a_message_that_breaks_the_contract_and_why():
    module = load_example()
    validator = module.load_validator(module.DEFAULT_CONTRACT)
    good = decision("u-1", "Stretch")
    assert module.check(validator, b"u-1", encode(good))["tip"]["title"] == "Stretch"
    bad = json.loads(encode(good))
    bad["propensity"] = 1.5
    with pytest.raises(ValueError, match="propensity: 1.5 is greater than the maximum of 1"):
        module.check(validator, b"u-1", json.dumps(bad).encode())
    with pytest.raises(ValueError, match="not the record's user_id"):
        module.check(validator, b"u-2", encode(good))
    with pytest.raises(ValueError, match="not JSON"):
        module.check(validator, b"u-1", b"\xff")
    with pytest.raises(ValueError, match="record: 'tip' is a required property"):
        module.check(validator, b"u-1", json.dumps({k: v for k, v in json.loads(encode(good)).items()
                                                     if k != "tip"}).encode())


def test_the_example_imports_nothing_of_oo_or_faust():
    tree = ast.parse(EXAMPLE.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= ALLOWED_IMPORTS, imported - ALLOWED_IMPORTS


def test_the_example_has_help_and_says_so_when_kafka_is_unreachable():
    result = example("--help")
    assert result.returncode == 0 and "--from-beginning" in result.stdout
    result = example("--bootstrap", "127.0.0.1:1", "--max", "1", timeout=120)
    assert result.returncode == 2
    assert "cannot reach Kafka at 127.0.0.1:1" in result.stderr
