"""`oo contracts`: write, check and release the published topic contracts.

- `write` regenerates docs/asyncapi.yaml and docs/asyncapi.json from topics/.
- `check` fails when those files are stale, or when a record changed
  incompatibly since contracts/released.json without a version bump.
- `release` records the current schemas in contracts/released.json.

The document describes a default deployment (the settings' defaults, not this
environment's), so it is the same on every machine.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from oo.settings import Settings
from topics import asyncapi, compat

ROOT = Path(__file__).resolve().parents[1]
ASYNCAPI_YAML = ROOT / "docs" / "asyncapi.yaml"
ASYNCAPI_JSON = ROOT / "docs" / "asyncapi.json"
RELEASED = ROOT / "contracts" / "released.json"


class ContractsError(RuntimeError):
    """The contracts are stale or break the release; the message says which and what to do."""


def published_document() -> dict[str, Any]:
    """The AsyncAPI document as committed: defaults of a fresh deployment, the project version."""
    defaults = Settings.from_env({})
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return asyncapi.document(partitions=defaults.topic_partitions,
                             replicas=defaults.topic_replication,
                             bootstrap=str(defaults.kafka_bootstrap[0]), version=version)


def fresh_files() -> dict[Path, str]:
    """Every generated file with the text it should have."""
    doc = published_document()
    return {ASYNCAPI_YAML: asyncapi.render_yaml(doc), ASYNCAPI_JSON: asyncapi.render_json(doc)}


def stale_files() -> list[Path]:
    """Generated files that are missing or differ from a fresh generation."""
    return [path for path, text in fresh_files().items()
            if not path.exists() or path.read_text(encoding="utf-8") != text]


def gate_report() -> compat.GateReport:
    """The compatibility gate: the current records against contracts/released.json."""
    if not RELEASED.exists():
        raise ContractsError(f"{_rel(RELEASED)} is missing: run `oo contracts release` once")
    return compat.gate(compat.load(RELEASED), compat.snapshot())


def write(log: Callable[[str], None]) -> int:
    """Regenerate the published document; report what changed."""
    changed = stale_files()
    for path, text in fresh_files().items():
        if path in changed:
            path.write_text(text, encoding="utf-8")
            log(f"wrote {_rel(path)}")
    if not changed:
        log("contracts: the published document is up to date")
    return 0


def check(log: Callable[[str], None]) -> int:
    """Exit status 0 when the document is fresh and the gate passes; otherwise raise."""
    problems = [f"{_rel(path)} is stale: run `oo contracts write` and commit it"
                for path in stale_files()]
    report = gate_report()
    for verdict in report.verdicts:
        if verdict.ok and (verdict.breaks or verdict.released_version is None):
            log(verdict.line())
    problems += [verdict.line() for verdict in report.failures]
    if problems:
        raise ContractsError("\n".join(problems))
    log(f"contracts: {len(report.verdicts)} topics compatible with {_rel(RELEASED)}; "
        "the published document is up to date")
    return 0


def release(log: Callable[[str], None], *, accept_breaking: bool = False) -> int:
    """Record the current schemas as released, refusing incompatible unversioned changes."""
    if RELEASED.exists():
        report = gate_report()
        if report.failures and not accept_breaking:
            raise ContractsError("\n".join(v.line() for v in report.failures)
                                 + "\nnot released (--accept-breaking releases anyway)")
    text = compat.dump(compat.snapshot())
    if RELEASED.exists() and RELEASED.read_text(encoding="utf-8") == text:
        log(f"contracts: {_rel(RELEASED)} is already the current release")
        return 0
    RELEASED.parent.mkdir(parents=True, exist_ok=True)
    RELEASED.write_text(text, encoding="utf-8")
    log(f"wrote {_rel(RELEASED)}")
    return 0


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))
