"""What the two HTTP servers (the web app and the worker) show to whom.

Shared by `web/` and `agents/`, like `oo.health`, so the rule is one rule:

- `/metrics` (account counts, activation, retention, consumer lag) is read with
  `Authorization: Bearer <OO_METRICS_TOKEN>`. Without a token configured it is
  served only to loopback callers in dev and test (so `oo dev`, the tests and
  the benchmarks read it as before), and to nobody in production: behind a
  reverse proxy on the same host every public request comes from loopback, so
  the address proves nothing there.
- `/health` and `/ready` stay open: liveness and "Kafka / PostgreSQL
  reachable", nothing about anyone.
- The `Server` header names the product, not its versions (aiohttp would
  send `Python/3.11 aiohttp/3.x`, a free hint which known bugs apply).
"""

from __future__ import annotations

import hmac
import ipaddress

from oo.settings import Settings

SERVER = "oO"


def is_loopback(address: str | None) -> bool:
    """True for 127.0.0.0/8 and ::1 (also v4-mapped); False for anything else or None."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False  # a Unix socket peer or garbage: not provably local
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def metrics_refusal(settings: Settings, authorization: str | None,
                    remote: str | None) -> tuple[int, str] | None:
    """None when this caller may read `/metrics`; else (status, a message safe to show).

    401 when a token is configured and the request lacks it (the token is
    compared in constant time and never echoed); 403 when no token is
    configured and the caller is not a loopback address in dev or test.
    """
    expected = settings.metrics_token
    if expected:
        sent = bearer(authorization)
        if sent is not None and hmac.compare_digest(sent.encode(), expected.encode()):
            return None
        return 401, "send the metrics token: Authorization: Bearer <OO_METRICS_TOKEN>"
    if settings.env != "production" and is_loopback(remote):
        return None
    if settings.env == "production":
        return 403, "metrics are off: set OO_METRICS_TOKEN to read them with a bearer token"
    return 403, "metrics are served to loopback only unless OO_METRICS_TOKEN is set"
