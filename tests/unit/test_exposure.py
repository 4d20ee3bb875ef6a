"""Who may read /metrics (oo/exposure.py), and the OO_METRICS_TOKEN setting."""

from __future__ import annotations

import dataclasses

import pytest

from oo.exposure import bearer, is_loopback, metrics_refusal
from oo.settings import Settings, SettingsError

pytestmark = pytest.mark.unit
TOKEN = "0123456789abcdef0123"
DEV = Settings.from_env({})
PRODUCTION = Settings.from_env({"OO_ENV": "production", "OO_VAPID_SUBJECT": "mailto:o@e.org"})


@pytest.mark.parametrize(("address", "local"), [
    ("127.0.0.1", True), ("127.3.4.5", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("10.0.0.1", False), ("192.168.1.2", False), ("::ffff:10.0.0.1", False), ("8.8.8.8", False),
    ("", False), (None, False), ("localhost", False), ("fe80::1%eth0", False),
])
def test_loopback_is_only_the_loopback_addresses(address, local):
    assert is_loopback(address) is local


def test_bearer_reads_only_a_bearer_token():
    assert bearer(f"Bearer {TOKEN}") == TOKEN
    assert bearer(f"bearer  {TOKEN} ") == TOKEN
    assert bearer(TOKEN) is None and bearer(f"Basic {TOKEN}") is None
    assert bearer("Bearer ") is None and bearer(None) is None


def test_dev_and_test_without_a_token_allow_loopback_only():
    for settings in (DEV, dataclasses.replace(DEV, env="test")):
        assert metrics_refusal(settings, None, "127.0.0.1") is None
        assert metrics_refusal(settings, None, "::1") is None
        assert metrics_refusal(settings, None, "192.168.1.20") == (
            403, "metrics are served to loopback only unless OO_METRICS_TOKEN is set")


def test_production_without_a_token_serves_metrics_to_nobody():
    # Behind a reverse proxy on the same host every public request comes from loopback.
    status, message = metrics_refusal(PRODUCTION, None, "127.0.0.1") or (0, "")
    assert status == 403 and "OO_METRICS_TOKEN" in message
    assert metrics_refusal(PRODUCTION, f"Bearer {TOKEN}", "127.0.0.1") is not None


@pytest.mark.parametrize("settings", [DEV, PRODUCTION], ids=["dev", "production"])
def test_with_a_token_only_the_token_opens_metrics_even_from_loopback(settings):
    guarded = dataclasses.replace(settings, metrics_token=TOKEN)
    assert metrics_refusal(guarded, f"Bearer {TOKEN}", "203.0.113.9") is None
    for header in (None, "", TOKEN, f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer"):
        refused = metrics_refusal(guarded, header, "127.0.0.1")
        assert refused is not None and refused[0] == 401
        assert TOKEN not in refused[1]


def test_the_metrics_token_setting_is_checked_and_masked():
    settings = Settings.from_env({"OO_METRICS_TOKEN": TOKEN})
    assert settings.metrics_token == TOKEN
    assert settings.redacted()["metrics_token"] == "***"
    assert TOKEN not in repr(settings)
    assert Settings.from_env({"OO_METRICS_TOKEN": ""}).metrics_token is None  # compose's ${..:-}
    for bad in ("short", "has a space in it here", "tab\tinside-the-token-x"):
        with pytest.raises(SettingsError) as caught:
            Settings.from_env({"OO_METRICS_TOKEN": bad})
        assert "OO_METRICS_TOKEN" in str(caught.value) and bad not in str(caught.value)
