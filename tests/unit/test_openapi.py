"""The OpenAPI file documents exactly the API's routes and request bodies."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from web import api, ingest

pytestmark = pytest.mark.unit
SPEC = yaml.safe_load((Path(api.__file__).parent / "static" / "openapi.yaml").read_text())


def routes() -> set[tuple[str, str]]:
    # `{name:regex}` in aiohttp paths is `{name}` in OpenAPI.
    return {(r.method.lower(), re.sub(r"\{(\w+):[^/]*\}(?=/|$)", r"{\1}", r.path))
            for r in [*api.routes, *ingest.routes]}


def test_every_route_is_documented_and_every_documented_path_exists():
    documented = {(method, path) for path, item in SPEC["paths"].items() for method in item}
    assert documented == routes()


@pytest.mark.parametrize(("schema", "body"), [
    ("Reaction", api.ReactionBody), ("Context", api.ContextBody),
    ("Preferences", api.PreferencesBody), ("PushSubscription", api.SubscriptionBody),
    ("CreateIngestToken", ingest.CreateTokenBody), ("SignalBatch", ingest.SignalBatch),
])
def test_documented_bodies_have_the_fields_the_handlers_accept(schema, body):
    properties = SPEC["components"]["schemas"][schema]["properties"]
    assert set(properties) == {f.name for f in dataclasses.fields(body)}
    required = {f.name for f in dataclasses.fields(body)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    assert set(SPEC["components"]["schemas"][schema].get("required", [])) == required
