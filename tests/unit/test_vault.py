"""The token vault: SecretBox sealing under key ids, rotation, tamper and key checks."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from adapters.credentials import Tokens
from adapters.vault import Sealed, Vault, VaultError, VaultNotConfigured, new_key

pytestmark = pytest.mark.unit
OLD = ("old", base64.b64decode(new_key()))
NEW = ("new", base64.b64decode(new_key()))


def test_a_sealed_value_opens_and_holds_no_plaintext():
    vault = Vault([NEW])
    sealed = vault.seal(b"access-token-123")
    assert sealed.key_id == "new" and b"access-token-123" not in sealed.ciphertext
    assert len(sealed.ciphertext) >= 40  # nonce + MAC, as the table's CHECK wants
    assert vault.open(sealed) == b"access-token-123"
    assert vault.seal(b"same").ciphertext != vault.seal(b"same").ciphertext  # fresh nonces


def test_the_current_key_seals_and_old_keys_still_open():
    before = Vault([OLD]).seal(b"t")
    rotated = Vault([NEW, OLD])
    assert rotated.open(before) == b"t"
    again = rotated.reseal(before)
    assert again.key_id == "new" and rotated.open(again) == b"t"
    assert rotated.reseal(again) is again
    with pytest.raises(VaultError, match="'old' is not configured"):
        Vault([NEW]).open(before)


def test_a_tampered_or_relabelled_ciphertext_does_not_open():
    vault = Vault([NEW, OLD])
    sealed = vault.seal(b"secret")
    flipped = bytearray(sealed.ciphertext)
    flipped[-1] ^= 1
    with pytest.raises(VaultError, match="tampered"):
        vault.open(Sealed("new", bytes(flipped)))
    same_key = Vault([NEW, ("alias", NEW[1])])  # one key under two ids
    with pytest.raises(VaultError, match="names another key"):
        same_key.open(Sealed("alias", sealed.ciphertext))


def test_errors_and_reprs_never_show_secrets():
    tokens = Tokens("at-SECRET", "rt-SECRET", datetime.now(UTC))
    assert "SECRET" not in repr(tokens)
    vault = Vault([NEW])
    assert base64.b64encode(NEW[1]).decode() not in repr(vault)
    assert "SECRET" not in repr(vault.seal(tokens.to_bytes()))
    with pytest.raises(VaultNotConfigured):
        Vault([]).seal(b"x")


def test_tokens_round_trip_and_expire_a_minute_early():
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    tokens = Tokens.from_token_response({"access_token": "a", "refresh_token": "r",
                                         "expires_in": 3600, "token_type": "bearer"}, now)
    assert Tokens.from_bytes(tokens.to_bytes()) == tokens
    assert not tokens.expired(now + timedelta(minutes=58))
    assert tokens.expired(now + timedelta(minutes=59, seconds=1))
    refreshed = Tokens.from_token_response({"access_token": "b"}, now, previous=tokens)
    assert refreshed.refresh_token == "r" and refreshed.expires_at is None
    with pytest.raises(ValueError):
        Tokens.from_token_response({"token_type": "Bearer"}, now)
