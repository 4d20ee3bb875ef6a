"""Settings of sign-in, the vault and Todoist: dev defaults work, bad values are one line."""

from __future__ import annotations

import base64

import pytest

from adapters.vault import new_key
from oo.settings import Settings, SettingsError

pytestmark = pytest.mark.unit
KEY = new_key()


def test_without_any_of_them_sign_in_and_connectors_are_simply_not_configured():
    settings = Settings.from_env({})
    assert not settings.oidc_configured and not settings.todoist_configured
    assert settings.oidc_issuer == "https://accounts.google.com"
    assert settings.public_url == "http://127.0.0.1:8080" and settings.vault_keys == ()
    assert Settings.from_env({"OO_WEB_PORT": "9000"}).public_url == "http://127.0.0.1:9000"


def test_vault_keys_are_parsed_current_first_and_never_shown():
    other = new_key()
    settings = Settings.from_env({"OO_VAULT_KEYS": f"k2:{KEY}, k1:{other}",
                                  "OO_OIDC_CLIENT_ID": "c", "OO_OIDC_CLIENT_SECRET": "s3cr3t"})
    assert [kid for kid, _ in settings.vault_keys] == ["k2", "k1"]
    assert settings.vault_keys[0][1] == base64.b64decode(KEY)
    shown = settings.redacted()
    assert shown["vault_keys"] == "k2:***,k1:***" and shown["oidc_client_secret"] == "***"
    assert KEY not in repr(settings) and "s3cr3t" not in repr(settings)
    urlsafe = base64.urlsafe_b64encode(base64.b64decode(KEY)).decode().rstrip("=")
    assert Settings.from_env({"OO_VAULT_KEYS": f"k:{urlsafe}"}).vault_keys[0][1] == \
        base64.b64decode(KEY)


@pytest.mark.parametrize(("env", "words"), [
    ({"OO_VAULT_KEYS": "nokid"}, "is not kid:base64key"),
    ({"OO_VAULT_KEYS": "k1:!!!"}, "key 'k1' is not base64"),
    ({"OO_VAULT_KEYS": "k1:" + base64.b64encode(b"short").decode()}, "is 5 bytes"),
    ({"OO_VAULT_KEYS": f"k1:{KEY},k1:{KEY}"}, "names key 'k1' twice"),
    ({"OO_OIDC_CLIENT_ID": "c"}, "OO_OIDC_CLIENT_ID and OO_OIDC_CLIENT_SECRET go together"),
    ({"OO_TODOIST_CLIENT_SECRET": "s"}, "go together"),
    ({"OO_OIDC_ISSUER": "ftp://id.example"}, "absolute http(s) URL"),
    ({"OO_PUBLIC_URL": "https://oo.example/?x=1"}, "without credentials, query or fragment"),
    ({"OO_ENV": "production", "OO_VAPID_SUBJECT": "mailto:a@b.c",
      "OO_OIDC_ISSUER": "http://id.example"}, "must be https:// in production"),
    ({"OO_ENV": "production", "OO_VAPID_SUBJECT": "mailto:a@b.c", "OO_OIDC_CLIENT_ID": "c",
      "OO_OIDC_CLIENT_SECRET": "s"}, "OO_PUBLIC_URL='http://127.0.0.1:8080' must be https://"),
])
def test_bad_values_are_one_clear_line(env, words):
    with pytest.raises(SettingsError, match=None) as caught:
        Settings.from_env(env)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_todoist_needs_a_vault_key_to_be_offered():
    both = {"OO_TODOIST_CLIENT_ID": "c", "OO_TODOIST_CLIENT_SECRET": "s"}
    assert not Settings.from_env(both).todoist_configured
    assert Settings.from_env({**both, "OO_VAULT_KEYS": f"k:{KEY}"}).todoist_configured
