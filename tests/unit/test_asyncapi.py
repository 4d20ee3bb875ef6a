"""The committed AsyncAPI document is current and says what the records say."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import orjson
import pytest
import yaml
from jsonschema import Draft7Validator

from oo import contracts
from oo.cli import main
from oo.settings import Settings
from topics.asyncapi import render_json, render_yaml
from topics.catalog import ALL_TOPICS, DEADLETTER, TopicSpec
from topics.codec import decode
from topics.compat import dump, snapshot
from topics.schema import json_schema

pytestmark = pytest.mark.unit
DOC = yaml.safe_load(contracts.ASYNCAPI_YAML.read_text(encoding="utf-8"))
SPECS = {spec.name: spec for spec in ALL_TOPICS}


def resolve(ref: dict) -> dict:
    node = DOC
    for part in ref["$ref"].removeprefix("#/").split("/"):
        node = node[part]
    return node


def message_of(spec: TopicSpec) -> dict:
    (message,) = DOC["channels"][spec.name]["messages"].values()
    return resolve(message)


def test_the_committed_document_is_a_fresh_generation():
    doc = contracts.published_document()
    assert contracts.ASYNCAPI_YAML.read_text(encoding="utf-8") == render_yaml(doc), \
        "docs/asyncapi.yaml is stale: run `oo contracts write`"
    assert contracts.ASYNCAPI_JSON.read_text(encoding="utf-8") == render_json(doc), \
        "docs/asyncapi.json is stale: run `oo contracts write`"
    assert json.loads(contracts.ASYNCAPI_JSON.read_text(encoding="utf-8")) == DOC


def test_every_topic_is_a_channel_and_every_channel_a_topic():
    assert DOC["asyncapi"] == "3.0.0"
    assert {c["address"] for c in DOC["channels"].values()} == set(SPECS)


@pytest.mark.parametrize("spec", ALL_TOPICS, ids=lambda s: s.name)
def test_each_published_payload_is_the_schema_of_the_topics_record(spec):
    message = message_of(spec)
    published = resolve(message["payload"])
    assert message["name"] == spec.record.__name__
    assert {"$schema": "https://json-schema.org/draft/2020-12/schema", **published} \
        == json_schema(spec.record), f"{spec.name}: run `oo contracts write`"


@pytest.mark.parametrize("spec", ALL_TOPICS, ids=lambda s: s.name)
def test_each_channel_tells_partitions_retention_and_cleanup(spec):
    kafka = DOC["channels"][spec.name]["bindings"]["kafka"]
    assert kafka["topic"] == spec.name
    assert kafka["partitions"] == Settings.from_env({}).topic_partitions
    config = kafka["topicConfiguration"]
    assert config["cleanup.policy"] == [spec.configs["cleanup.policy"]]
    assert str(config.get("retention.ms")) == spec.configs.get("retention.ms", "None")


@pytest.mark.parametrize("spec", ALL_TOPICS, ids=lambda s: s.name)
def test_each_message_is_keyed_by_user_id_and_its_examples_are_valid_records(spec):
    message = message_of(spec)
    key = message["bindings"]["kafka"]["key"]
    if spec is DEADLETTER:
        assert "unchanged" in key["description"]
    else:
        assert key["type"] == "string" and "user_id" in key["description"]
    validator = Draft7Validator(resolve(message["payload"]))  # AsyncAPI's schema dialect
    assert message["examples"]
    for example in message["examples"]:
        payload = example["payload"]
        assert not list(validator.iter_errors(payload)), example["name"]
        assert decode(spec.record, orjson.dumps(payload))  # a real record


@pytest.mark.parametrize("spec", ALL_TOPICS, ids=lambda s: s.name)
def test_each_topic_has_an_operation_on_its_channel(spec):
    operations = [op for op in DOC["operations"].values()
                  if resolve(op["channel"]) is DOC["channels"][spec.name]]
    assert operations and all(op["action"] in ("send", "receive") for op in operations)


# --- `oo contracts` ----------------------------------------------------------------


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The contracts files copied to a temporary folder, where the commands write."""
    for name in ("ASYNCAPI_YAML", "ASYNCAPI_JSON", "RELEASED"):
        source: Path = getattr(contracts, name)
        copy_path = tmp_path / source.name
        copy_path.write_bytes(source.read_bytes())
        monkeypatch.setattr(contracts, name, copy_path)
    monkeypatch.setattr(contracts, "_rel", lambda path: path.name)
    return tmp_path


@pytest.mark.parametrize("action", [[], ["write"], ["check"], ["release"]])
def test_every_contracts_command_has_help(action, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["contracts", *action, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("usage: oo contracts")


def test_check_passes_on_the_committed_contracts(workspace, capsys):
    assert main(["contracts", "check"]) == 0
    assert "10 topics compatible" in capsys.readouterr().out


def test_check_fails_on_a_stale_document_and_write_fixes_it(workspace, capsys):
    contracts.ASYNCAPI_YAML.write_text("asyncapi: 3.0.0\n")
    assert main(["contracts", "check"]) == 2
    assert "asyncapi.yaml is stale: run `oo contracts write`" in capsys.readouterr().err
    assert main(["contracts", "write"]) == 0
    assert "wrote asyncapi.yaml" in capsys.readouterr().out
    assert main(["contracts", "check"]) == 0


def test_check_and_release_refuse_an_unversioned_break_until_accepted(workspace, capsys):
    released = snapshot()
    schema = copy.deepcopy(released["topics"]["oo.feedback"]["schema"])
    schema["properties"]["reaction"]["enum"].append("liked")  # the release had one more value
    released["topics"]["oo.feedback"]["schema"] = schema
    contracts.RELEASED.write_text(dump(released))

    assert main(["contracts", "check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("oo: error: oo.feedback (FeedbackGiven v1): INCOMPATIBLE with "
                          "released v1: reaction: enum values removed: 'liked'.")
    assert main(["contracts", "release"]) == 2
    assert "not released (--accept-breaking releases anyway)" in capsys.readouterr().err
    assert main(["contracts", "release", "--accept-breaking"]) == 0
    assert contracts.RELEASED.read_text() == dump(snapshot())
    assert main(["contracts", "check"]) == 0
