import json
import logging

import pytest

from oo import logs
from oo.settings import Settings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def restore_logging():
    """dictConfig replaces the root handlers (pytest's own among them): put them back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def render(env: str, capsys) -> str:
    settings = Settings.from_env({"OO_ENV": env, "OO_VAPID_SUBJECT": "mailto:ops@example.org"})
    logs.configure(settings)
    with logs.bound(user_id="u-1", decision_id="d-9", trace_id="abc", event_id=None):
        logging.getLogger("oo.test").warning("pushed %s", "it")
    logging.getLogger("oo.test").warning("after")
    return capsys.readouterr().err


def test_production_logs_are_json_lines_with_the_bound_ids(capsys):
    first, second = render("production", capsys).strip().splitlines()
    line = json.loads(first)
    assert line["event"] == "pushed it" and line["level"] == "warning"
    assert (line["user_id"], line["decision_id"], line["trace_id"]) == ("u-1", "d-9", "abc")
    assert "event_id" not in line and line["logger"] == "oo.test" and line["timestamp"]
    assert "user_id" not in json.loads(second)  # the binding ended with the block


def test_dev_logs_are_readable_text(capsys):
    out = render("dev", capsys)
    assert "pushed it" in out and "user_id=u-1" in out and not out.lstrip().startswith("{")
