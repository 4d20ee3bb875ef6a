"""VAPID keys (RFC 8292): the application server's identity towards push services.

One P-256 key pair per deployment. The private key lives in a PEM file readable
by its owner only (`oo vapid generate` writes it); the public key, as the
base64url uncompressed point browsers take as `applicationServerKey`, is
derived from it and never stored separately.

A key that is missing, unreadable, readable by group or others, or not a P-256
private key raises `VapidKeyError` with one line naming the file and what to
do about it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from py_vapid import Vapid

MAX_TOKEN_LIFETIME = 24 * 60 * 60  # RFC 8292 §2: `exp` no more than 24 hours ahead
DEFAULT_TOKEN_LIFETIME = 12 * 60 * 60


class VapidKeyError(RuntimeError):
    """The VAPID private key can't be used (or written); the message is one line."""


@dataclass(frozen=True)
class VapidKey:
    """A loaded VAPID private key and the public key browsers subscribe with."""

    path: Path
    private_key: ec.EllipticCurvePrivateKey
    public_key: str  # applicationServerKey: base64url (no padding) of the 65-byte point

    def vapid(self) -> Vapid:
        """The key as pywebpush takes it (`vapid_private_key=`)."""
        return Vapid(private_key=self.private_key)

    def headers(self, endpoint: str, subject: str, *, now: float,
                lifetime: int = DEFAULT_TOKEN_LIFETIME) -> dict[str, str]:
        """The `Authorization: vapid t=…, k=…` header for a push to `endpoint`.

        `aud` is the endpoint's origin, `exp` is `now + lifetime` (at most 24 h).
        """
        if not 0 < lifetime <= MAX_TOKEN_LIFETIME:
            raise ValueError(f"VAPID token lifetime {lifetime}s is outside 1..{MAX_TOKEN_LIFETIME}s")
        if not is_valid_subject(subject):
            raise ValueError(f"VAPID subject {subject!r} is not a mailto: or https: URL")
        claims = {"aud": origin(endpoint), "exp": int(now) + lifetime, "sub": subject}
        token = sign_token(claims, self.private_key)
        return {"Authorization": f"vapid t={token}, k={self.public_key}"}


def generate_keys(private_key_path: Path, *, force: bool = False) -> str:
    """Create a P-256 key pair, write the private key (PEM, mode 0600), return the public key.

    Missing parent folders are created with mode 0700. An existing file is kept
    (VapidKeyError) unless `force`, because replacing the key invalidates every
    browser subscription made with the old public key.
    """
    path = Path(private_key_path)
    if path.exists() and not force:
        raise VapidKeyError(
            f"VAPID private key {path} already exists; keep it, or run "
            "`oo vapid generate --force` to replace it (every push subscription made "
            "with the old key stops working)"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    try:
        _make_private_dirs(path.parent)
        _write_private(path, pem, replace=force)
    except FileExistsError:
        raise VapidKeyError(f"VAPID private key {path} appeared while writing it; "
                            "run `oo vapid generate` again") from None
    except OSError as err:
        raise VapidKeyError(f"cannot write VAPID private key {path}: {err.strerror or err}") from None
    return public_key_b64(key.public_key())


def load_vapid(private_key_path: Path) -> VapidKey:
    """Read and check the private key; raise VapidKeyError with one line if it is unusable."""
    path = Path(private_key_path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise VapidKeyError(
            f"VAPID private key {path} does not exist; run `oo vapid generate` to create it"
        ) from None
    except OSError as err:
        raise VapidKeyError(f"cannot read VAPID private key {path}: {err.strerror or err}") from None
    if not stat.S_ISREG(info.st_mode):
        raise VapidKeyError(f"VAPID private key {path} is not a regular file; "
                            "run `oo vapid generate` with OO_VAPID_PRIVATE_KEY naming a file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise VapidKeyError(
            f"VAPID private key {path} has mode {mode:04o}, so others may read it; "
            f"run `chmod 600 {path}` (or `oo vapid generate --force` for a new key)"
        )
    try:
        data = path.read_bytes()
    except OSError as err:
        raise VapidKeyError(f"cannot read VAPID private key {path}: {err.strerror or err}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise VapidKeyError(
            f"VAPID private key {path} is not an unencrypted P-256 private key in PEM; "
            "run `oo vapid generate --force` to replace it"
        )
    return VapidKey(path=path, private_key=key, public_key=public_key_b64(key.public_key()))


def public_key_b64(public_key: ec.EllipticCurvePublicKey) -> str:
    """The uncompressed point (65 bytes, 0x04…) as unpadded base64url: an applicationServerKey."""
    raw = public_key.public_bytes(serialization.Encoding.X962,
                                  serialization.PublicFormat.UncompressedPoint)
    return b64url(raw)


def sign_token(claims: dict[str, object], private_key: ec.EllipticCurvePrivateKey) -> str:
    """A compact JWS (ES256) over `claims`, as RFC 8292 §2 describes."""
    header = b64url(b'{"typ":"JWT","alg":"ES256"}')
    body = b64url(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    signing_input = f"{header}.{body}".encode()
    r, s = utils.decode_dss_signature(private_key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return f"{header}.{body}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def is_valid_subject(subject: str) -> bool:
    """A VAPID `sub` pywebpush will sign with: mailto:user@host or https://host.

    RFC 8292 allows more (any https URL); py_vapid's check doesn't, so a host
    is `localhost` or a dotted name, and an https URL has no path.
    """
    if any(c.isspace() for c in subject):
        return False
    if subject.startswith("mailto:"):
        local, at, domain = subject[len("mailto:"):].rpartition("@")
        return bool(local and at) and _host_name(domain)
    parts = urlsplit(subject)
    return (parts.scheme == "https" and not parts.path and not parts.query
            and not parts.fragment and not parts.username and parts.port is None
            and _host_name(parts.netloc))


def _host_name(host: str) -> bool:
    labels = host.split(".")
    return host == "localhost" or (
        len(labels) > 1 and all(label and all(c.isalnum() or c in "-_%" for c in label)
                                for label in labels))


def origin(url: str) -> str:
    """scheme://host[:port] of a URL: the `aud` of a VAPID token for that push endpoint."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL")
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def cli_generate(path: Path, force: bool, *, out: TextIO | None = None,
                 err: TextIO | None = None) -> int:
    """`oo vapid generate [--force]`: write a new key, print the public key; exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        public = generate_keys(path, force=force)
    except VapidKeyError as problem:
        print(f"oo: error: {problem}", file=err)
        return 2
    print(f"oo: VAPID private key written to {path} (mode 0600); public key "
          "(applicationServerKey) follows", file=err)
    print(public, file=out, flush=True)
    return 0


def cli_public_key(path: Path, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """`oo vapid public-key`: print the public key of the existing private key; exit status."""
    try:
        key = load_vapid(path)
    except VapidKeyError as problem:
        print(f"oo: error: {problem}", file=err or sys.stderr)
        return 2
    print(key.public_key, file=out or sys.stdout, flush=True)
    return 0


def _make_private_dirs(folder: Path) -> None:
    """Create `folder` and missing parents with mode 0700 (umask can't widen or narrow it)."""
    missing = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)
            os.chmod(directory, 0o700)


def _write_private(path: Path, data: bytes, *, replace: bool) -> None:
    """Write `data` to `path` readable by the owner only; never visible half-written."""
    if replace:
        fd, name = tempfile.mkstemp(prefix=".vapid-", dir=path.parent)  # mode 0600
        target = Path(name)
    else:
        # O_EXCL: a file someone else created meanwhile is never overwritten.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        target = path
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), 0o600)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if replace:
            os.replace(target, path)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
