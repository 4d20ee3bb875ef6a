"""The push service's checks of an incoming push message: pure, no IO.

RFC 8030 (headers of a push message request), RFC 8292 (the VAPID
`Authorization` header) and the 4096-byte payload limit. A request that fails
a check raises `Refused` with the HTTP status and a one-line reason.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

MAX_PAYLOAD = 4096  # RFC 8030 §7.2: bytes of encrypted body a push service must accept
MAX_TTL = 28 * 24 * 60 * 60  # longer TTLs are shortened, and the response says so (§5.2)
MAX_TOKEN_AHEAD = 24 * 60 * 60  # RFC 8292 §2: `exp` no more than 24 hours ahead
URGENCIES = ("very-low", "low", "normal", "high")  # RFC 8030 §5.3
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")  # RFC 8030 §5.4: url-safe base64, ≤ 32 chars
_DELTA_SECONDS = re.compile(r"[0-9]+")


class Refused(Exception):
    """The push service refuses the request: HTTP `status`, one-line `reason`."""

    def __init__(self, status: int, reason: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class PushHeaders:
    """The Web Push header fields of one request, validated."""

    ttl: int  # as stored: the sender's TTL, shortened to MAX_TTL
    urgency: str | None  # None when the sender sent none (meaning "normal")
    topic: str | None
    content_encoding: str | None


@dataclass(frozen=True)
class VapidIdentity:
    """Who signed a push request (a verified RFC 8292 token)."""

    public_key: str  # `k`: base64url of the 65-byte uncompressed P-256 point
    subject: str
    audience: str
    expires: int
    claims: Mapping[str, object] = field(default_factory=dict)


def read_push_headers(headers: Mapping[str, str], body_length: int) -> PushHeaders:
    """Check TTL (required), Urgency, Topic, Content-Encoding and the payload size."""
    raw_ttl = headers.get("TTL")
    if raw_ttl is None:
        raise Refused(400, "missing TTL header (RFC 8030 §5.2 requires it)")
    if not _DELTA_SECONDS.fullmatch(raw_ttl.strip()):
        raise Refused(400, f"TTL {raw_ttl!r} is not a number of seconds")
    ttl = min(int(raw_ttl.strip()), MAX_TTL)

    urgency = headers.get("Urgency")
    if urgency is not None:
        urgency = urgency.strip().lower()
        if urgency not in URGENCIES:
            raise Refused(400, f"Urgency {urgency!r} is not one of {', '.join(URGENCIES)}")

    topic = headers.get("Topic")
    if topic is not None and not _TOPIC.fullmatch(topic):
        raise Refused(400, f"Topic {topic!r} must be 1 to 32 characters of the URL-safe "
                      "base64 alphabet (RFC 8030 §5.4)")

    if body_length > MAX_PAYLOAD:
        raise Refused(413, f"payload of {body_length} bytes is larger than {MAX_PAYLOAD}")
    encoding = headers.get("Content-Encoding")
    if body_length and (encoding or "").strip().lower() != "aes128gcm":
        raise Refused(415, f"Content-Encoding {encoding!r} is not supported; encrypt the "
                      "payload with aes128gcm (RFC 8291)")
    return PushHeaders(ttl=ttl, urgency=urgency, topic=topic, content_encoding=encoding)


def check_vapid(authorization: str | None, *, audience: str, now: float,
                application_server_key: bytes | None = None) -> VapidIdentity:
    """Verify an `Authorization: vapid t=<JWT>, k=<key>` header (RFC 8292).

    401 when there is no usable vapid credential at all; 403 when there is
    one but it is invalid: bad signature, `aud` not this service's origin,
    `exp` past or more than 24 h ahead, `sub` missing or not mailto:/https:,
    or `k` not the key the subscription was created with.
    """
    if not authorization:
        raise Refused(401, "missing Authorization header; send `vapid t=<JWT>, k=<public key>` "
                      "(RFC 8292)")
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme.lower() != "vapid":
        raise Refused(401, f"Authorization scheme {scheme!r} is not supported; use `vapid` "
                      "(RFC 8292)")
    params = _auth_params(rest)
    token, key_text = params.get("t"), params.get("k")
    if not token or not key_text:
        raise Refused(401, "vapid Authorization lacks its t (token) or k (public key) parameter")

    public_key = _public_key(key_text)
    claims = _verified_claims(token, public_key)

    aud = claims.get("aud")
    if not isinstance(aud, str) or not aud:
        raise Refused(403, "VAPID token has no aud claim")
    if _origin(aud) != _origin(audience):
        raise Refused(403, f"VAPID aud {aud!r} is not this push service's origin {audience!r}")

    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        raise Refused(403, "VAPID token has no numeric exp claim")
    if exp <= now:
        raise Refused(403, f"VAPID token expired {int(now - exp)}s ago (exp {exp})")
    if exp > now + MAX_TOKEN_AHEAD:
        raise Refused(403, f"VAPID exp {exp} is {int(exp - now)}s ahead; at most "
                      f"{MAX_TOKEN_AHEAD}s (24 hours) is allowed")

    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise Refused(403, "VAPID token has no sub claim (a mailto: or https: contact)")
    if not (sub.startswith("mailto:") or sub.startswith("https:")):
        raise Refused(403, f"VAPID sub {sub!r} is neither a mailto: nor an https: URL")

    raw_key = _b64decode(key_text)
    if application_server_key is not None and raw_key != application_server_key:
        raise Refused(403, "VAPID key k is not the applicationServerKey this subscription "
                      "was created with")
    return VapidIdentity(public_key=key_text, subject=sub, audience=aud, expires=int(exp),
                         claims=claims)


def _auth_params(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in text.split(","):
        name, eq, value = item.strip().partition("=")
        if eq:
            params[name.strip().lower()] = value.strip().strip('"')
    return params


def _public_key(text: str) -> ec.EllipticCurvePublicKey:
    try:
        raw = _b64decode(text)
        if len(raw) != 65 or raw[0] != 0x04:
            raise ValueError("not an uncompressed point")
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise Refused(401, "vapid k is not a base64url uncompressed P-256 public key") from None


def _verified_claims(token: str, key: ec.EllipticCurvePublicKey) -> dict[str, object]:
    parts = token.split(".")
    if len(parts) != 3:
        raise Refused(401, "vapid t is not a JWT (header.claims.signature)")
    try:
        header = json.loads(_b64decode(parts[0]))
        claims = json.loads(_b64decode(parts[1]))
        signature = _b64decode(parts[2])
    except (ValueError, UnicodeDecodeError):
        raise Refused(401, "vapid t is not a well-formed JWT") from None
    if not isinstance(header, dict) or header.get("alg") != "ES256":
        raise Refused(403, "VAPID token must be signed with ES256")
    if not isinstance(claims, dict):
        raise Refused(403, "VAPID token claims are not a JSON object")
    if len(signature) != 64:
        raise Refused(403, "VAPID token signature is not 64 bytes (ES256 r||s)")
    der = utils.encode_dss_signature(int.from_bytes(signature[:32], "big"),
                                     int.from_bytes(signature[32:], "big"))
    try:
        key.verify(der, f"{parts[0]}.{parts[1]}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, UnicodeEncodeError):
        raise Refused(403, "VAPID token signature does not verify with key k") from None
    return claims


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of an origin; None for anything with a path, query or user."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.path or parts.query or parts.fragment or parts.username or not parts.hostname:
        return None
    scheme = parts.scheme.lower()
    default = {"https": 443, "http": 80}.get(scheme)
    return scheme, parts.hostname.lower(), port or default


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None
