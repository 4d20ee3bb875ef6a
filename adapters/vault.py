"""The token vault: connector secrets sealed with a pynacl SecretBox, keys by id.

A sealed value is the SecretBox output (24-byte random nonce, ciphertext, MAC)
and the id of the key that sealed it. The vault holds several keys, the
current one first (OO_VAULT_KEYS): it seals only with the current key and
opens with whichever key the stored id names, so keys rotate row by row
(`oo vault rotate` re-seals every row under the current key; the old key can
be dropped from the settings once it reports nothing left).

The key id is bound to the ciphertext: it is the SecretBox's associated
context (prefixed to the plaintext before sealing and checked after opening),
so a row whose key id was edited does not open under another key.

Plaintexts and keys never appear in an exception message or a repr.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

import nacl.exceptions
import nacl.secret
import nacl.utils

KEY_BYTES = nacl.secret.SecretBox.KEY_SIZE  # 32


class VaultError(Exception):
    """The vault cannot seal or open a value; the message never holds a secret."""


class VaultNotConfigured(VaultError):
    """No key is configured (OO_VAULT_KEYS)."""


@dataclass(frozen=True, slots=True)
class Sealed:
    """What is stored: the id of the sealing key and the SecretBox output."""

    key_id: str
    ciphertext: bytes = field(repr=False)


def new_key() -> str:
    """A fresh key in the form OO_VAULT_KEYS takes (without the `kid:` prefix)."""
    return base64.b64encode(nacl.utils.random(KEY_BYTES)).decode()


def new_key_id() -> str:
    return "k" + secrets.token_hex(4)


class Vault:
    """Seals with the current key, opens with any configured one."""

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        for kid, key in keys:
            if len(key) != KEY_BYTES:
                raise VaultError(f"vault key {kid!r} is not {KEY_BYTES} bytes")
        self._boxes = {kid: nacl.secret.SecretBox(key) for kid, key in keys}
        self._current = keys[0][0] if keys else None

    def __repr__(self) -> str:
        return f"Vault(current={self._current!r}, keys={sorted(self._boxes)!r})"

    @property
    def configured(self) -> bool:
        return self._current is not None

    @property
    def current_key_id(self) -> str:
        if self._current is None:
            raise VaultNotConfigured("no vault key: set OO_VAULT_KEYS (`oo vault new-key`)")
        return self._current

    def seal(self, plaintext: bytes) -> Sealed:
        """Encrypt under the current key, with a fresh random nonce."""
        kid = self.current_key_id
        return Sealed(kid, bytes(self._boxes[kid].encrypt(_bind(kid, plaintext))))

    def open(self, sealed: Sealed) -> bytes:
        """Decrypt with the key `sealed.key_id` names; VaultError if missing or tampered with."""
        box = self._boxes.get(sealed.key_id)
        if box is None:
            raise VaultError(f"vault key {sealed.key_id!r} is not configured (OO_VAULT_KEYS); "
                             "keep old keys listed until `oo vault rotate` re-sealed their rows")
        try:
            bound = box.decrypt(sealed.ciphertext)
        except nacl.exceptions.CryptoError:
            raise VaultError(f"a value sealed with key {sealed.key_id!r} does not open: "
                             "corrupted or tampered with") from None
        prefix = _context(sealed.key_id)
        if not bound.startswith(prefix):
            raise VaultError(f"a value sealed with key {sealed.key_id!r} names another key")
        return bound[len(prefix):]

    def reseal(self, sealed: Sealed) -> Sealed:
        """The same plaintext under the current key (unchanged if already current)."""
        if sealed.key_id == self.current_key_id:
            return sealed
        return self.seal(self.open(sealed))


def _context(kid: str) -> bytes:
    return b"oo-vault-v1:" + kid.encode() + b"\x00"


def _bind(kid: str, plaintext: bytes) -> bytes:
    return _context(kid) + plaintext


async def rotate_database(database_url: str, keys: Sequence[tuple[str, bytes]]) -> tuple[int, int]:
    """`oo vault rotate`: re-seal every credential under the current key; (re-sealed, left)."""
    import asyncpg

    from adapters.credentials import CredentialStore

    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2, timeout=10)
    try:
        return await CredentialStore(pool, Vault(keys)).rotate()
    finally:
        await pool.close()
