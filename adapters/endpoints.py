"""The guard on push subscription endpoints, which come from browsers and are untrusted.

A subscription endpoint is a URL we will POST to from inside our network, so
it is an SSRF vector unless fenced in:

- `check_endpoint(url, policy)` (no IO) accepts only `https`, a host on the
  policy's allow-list of push services (exact, or `*.suffix`), port 443 unless
  an allow-list entry names another, no user info, no fragment, no IP literal
  unless allow-listed, IPv4 only in dotted-decimal form (2130706433,
  0177.0.0.1 and 0x7f000001 are all 127.0.0.1 to a resolver), and — when the
  policy refuses private addresses — no IP literal in a private, loopback,
  link-local, CGNAT, NAT64-of-private, multicast, unspecified or reserved range.
- `verify_endpoint(url, policy, resolve)` also resolves the host and refuses
  it if any address is not public (production policies).
- `GuardedResolver` / `guarded_connector` make the same check at connect
  time, on the very addresses aiohttp connects to, so DNS rebinding between
  the check and the connection does not get through.
- `check_keys` validates the subscription's p256dh (an uncompressed P-256
  point) and auth (16 bytes), both base64url.

Messages quote the host, never the whole URL: the path is the subscription's
capability and has no place in logs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yarl
from aiohttp import DefaultResolver, TCPConnector
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography.hazmat.primitives.asymmetric import ec

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_PUSH_HOSTS = (
    "fcm.googleapis.com",  # Chrome, Edge on Android, Opera, Samsung Internet, Brave
    "*.push.services.mozilla.com",  # Firefox (updates.push.services.mozilla.com)
    "*.notify.windows.com",  # Edge on Windows (WNS)
    "web.push.apple.com",  # Safari
)
MAX_ENDPOINT_LENGTH = 2048
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


class EndpointRefused(ValueError):
    """An untrusted push subscription (endpoint or keys) was refused; the message says why."""


class AddressRefused(EndpointRefused, OSError):
    """At connect time the host resolved to an address the policy forbids.

    Also an OSError, so aiohttp reports it as a DNS failure of the connection
    (`ClientConnectorDNSError`, with this as `os_error`).
    """


# --- the allow-list and the policy -------------------------------------------------


@dataclass(frozen=True, slots=True)
class AllowedHost:
    """One allow-list entry: `host`, `*.suffix`, an IP literal, each with an optional `:port`."""

    host: str  # lower case; for a wildcard the suffix after "*."
    wildcard: bool = False
    port: int = 443
    ip: IPAddress | None = None

    @classmethod
    def parse(cls, entry: str) -> AllowedHost:
        text = entry.strip().lower()
        host, port = _split_host_port(text, what=f"allow-list entry {entry!r}")
        wildcard = host.startswith("*.")
        if wildcard:
            host = host[2:]
        if host.startswith("[") and host.endswith("]"):
            return cls(host[1:-1], port=port, ip=ipaddress.IPv6Address(host[1:-1]))
        try:
            ip = ipaddress.IPv4Address(host)
        except ValueError:
            ip = None
        if ip is not None:
            if wildcard:
                raise ValueError(f"allow-list entry {entry!r}: an IP address cannot be a wildcard")
            return cls(str(ip), port=port, ip=ip)
        if not _is_hostname(host):
            raise ValueError(f"allow-list entry {entry!r} is not a host name, *.suffix or IP address")
        return cls(host, wildcard, port)

    def matches(self, host: str, port: int, ip: IPAddress | None) -> bool:
        if port != self.port:
            return False
        if ip is not None or self.ip is not None:
            return ip is not None and ip == self.ip
        return host.endswith("." + self.host) if self.wildcard else host == self.host

    def __str__(self) -> str:
        host = f"[{self.host}]" if isinstance(self.ip, ipaddress.IPv6Address) else self.host
        host = f"*.{host}" if self.wildcard else host
        return host if self.port == 443 else f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class EndpointPolicy:
    """Which endpoints are accepted. Secure by default: the public push services,
    port 443, and every resolved address must be public."""

    allowed: tuple[AllowedHost, ...] = field(
        default_factory=lambda: tuple(AllowedHost.parse(e) for e in DEFAULT_PUSH_HOSTS))
    refuse_private_addresses: bool = True

    @classmethod
    def of(cls, entries: Iterable[str], *, refuse_private_addresses: bool = True) -> EndpointPolicy:
        """A policy from allow-list entries such as `fcm.googleapis.com` or `*.notify.windows.com`."""
        return cls(tuple(AllowedHost.parse(e) for e in entries), refuse_private_addresses)

    @classmethod
    def for_env(cls, env: str, extra: Iterable[str] = ()) -> EndpointPolicy:
        """The default push services plus `extra`; private addresses refused in production."""
        return cls.of((*DEFAULT_PUSH_HOSTS, *extra), refuse_private_addresses=env == "production")

    @classmethod
    def for_local_push_service(cls, port: int, host: str = "127.0.0.1") -> EndpointPolicy:
        """Tests: the default push services plus a local push service at https://host:port."""
        entry = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return cls.of((*DEFAULT_PUSH_HOSTS, entry), refuse_private_addresses=False)


@dataclass(frozen=True, slots=True)
class ValidEndpoint:
    """An endpoint that passed `check_endpoint`."""

    url: str
    host: str  # lower case; an IPv6 literal without brackets
    port: int
    ip: IPAddress | None  # set when the host is an IP literal

    @property
    def origin(self) -> str:
        """scheme://host[:port], the VAPID audience and the unit of the circuit breaker."""
        host = f"[{self.host}]" if isinstance(self.ip, ipaddress.IPv6Address) else self.host
        return f"https://{host}" if self.port == 443 else f"https://{host}:{self.port}"


# --- the synchronous check -------------------------------------------------------------


def check_endpoint(url: object, policy: EndpointPolicy) -> ValidEndpoint:
    """Accept `url` as a push endpoint under `policy`, or raise EndpointRefused saying why."""
    if not isinstance(url, str) or not url:
        raise EndpointRefused("the push endpoint is missing")
    if len(url) > MAX_ENDPOINT_LENGTH:
        raise EndpointRefused(f"the push endpoint is longer than {MAX_ENDPOINT_LENGTH} characters")
    if not all("!" <= c <= "~" and c != "\\" for c in url):
        raise EndpointRefused("the push endpoint contains spaces, control characters, "
                              "backslashes or non-ASCII characters")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "https":
        shown = scheme.lower() if sep and len(scheme) <= 16 else "none"
        raise EndpointRefused(f"only https:// push endpoints are accepted (scheme: {shown})")
    if scheme != "https":
        raise EndpointRefused("the push endpoint's scheme must be written in lower case: https://")
    if "#" in rest:
        raise EndpointRefused("the push endpoint must not have a #fragment")
    authority = re.split(r"[/?]", rest, maxsplit=1)[0]
    if "@" in authority:
        raise EndpointRefused("the push endpoint must not contain user info (user@host)")
    host, port = _split_host_port(authority.lower(), what="the push endpoint")
    ip = _literal_ip(host)
    if ip is not None:
        host = str(ip)
    elif not _is_hostname(host):
        raise EndpointRefused(f"the push endpoint's host {host[:80]!r} is not a valid host name")
    _same_as_aiohttp_sees(url, host, port, ip)
    shown = f"[{host}]" if isinstance(ip, ipaddress.IPv6Address) else host
    if not any(a.matches(host, port, ip) for a in policy.allowed):
        if ip is not None:
            raise EndpointRefused(f"the push endpoint's host {shown} is an IP address, "
                                  "not an allow-listed push service")
        if any(a.matches(host, a.port, None) for a in policy.allowed):
            raise EndpointRefused(f"the push endpoint's port {port} is not allowed for {shown}; "
                                  "push services are reached on 443")
        raise EndpointRefused(f"the push endpoint's host {shown} is not an allow-listed push "
                              f"service ({', '.join(str(a) for a in policy.allowed)})")
    if ip is not None and policy.refuse_private_addresses:
        reason = address_refusal(ip)
        if reason:
            raise EndpointRefused(f"the push endpoint's address {shown} is {reason}")
    return ValidEndpoint(url, host, port, ip)


def _split_host_port(authority: str, *, what: str) -> tuple[str, int]:
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise EndpointRefused(f"{what} has an unclosed [IPv6 address")
        host, rest = authority[: end + 1], authority[end + 1:]
        if rest and not rest.startswith(":"):
            raise EndpointRefused(f"{what} has text after its [IPv6 address]")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_ = authority.partition(":")
        port_text = port_text_ if colon else None
    if not host or host == "[]":
        raise EndpointRefused(f"{what} has no host")
    if port_text is None:
        return host, 443
    if not (port_text.isascii() and port_text.isdigit()) or len(port_text) > 5:
        raise EndpointRefused(f"{what} has an invalid port {port_text[:16]!r}")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise EndpointRefused(f"{what} has an out-of-range port {port}")
    return host, port


def _literal_ip(host: str) -> IPAddress | None:
    """The address when `host` is an IP literal, in any form a resolver would accept."""
    if host.startswith("["):
        inner = host[1:-1]
        if "%" in inner:
            raise EndpointRefused("the push endpoint's IPv6 address must not have a zone (%)")
        try:
            return ipaddress.IPv6Address(inner)
        except ValueError:
            raise EndpointRefused(f"the push endpoint's host [{inner[:60]}] is not a valid IPv6 address") from None
    last = host.rstrip(".").rsplit(".", 1)[-1]
    if not (last.isdigit() or re.fullmatch(r"0x[0-9a-f]*", last)):
        return None  # names never end in a numeric label; these are IPv4 attempts
    ip = _parse_ipv4_loosely(host)
    if ip is None:
        raise EndpointRefused(f"the push endpoint's host {host[:80]!r} is a malformed IPv4 address")
    if str(ip) != host:
        raise EndpointRefused(f"the push endpoint's host {host[:80]!r} is a disguised IPv4 address "
                              f"(decimal, octal, hex or short form of {ip}); not accepted")
    return ip


def _parse_ipv4_loosely(host: str) -> ipaddress.IPv4Address | None:
    """Parse as inet_aton and the WHATWG URL standard do: 1-4 parts, each decimal,
    octal (leading 0) or hex (0x); the last part fills the remaining bytes."""
    parts = host.split(".")
    if parts and parts[-1] == "":
        parts.pop()
    if not 1 <= len(parts) <= 4:
        return None
    numbers = []
    for part in parts:
        try:
            if part.startswith("0x"):
                numbers.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                numbers.append(int(part[1:], 8))
            else:
                numbers.append(int(part, 10))
        except ValueError:
            return None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def _is_hostname(host: str) -> bool:
    return len(host) <= 253 and all(_LABEL.fullmatch(label) for label in host.split("."))


def _same_as_aiohttp_sees(url: str, host: str, port: int, ip: IPAddress | None) -> None:
    """Refuse a URL that yarl (what aiohttp connects with) reads differently from us."""
    try:
        parsed = yarl.URL(url)
    except (ValueError, TypeError):
        raise EndpointRefused("the push endpoint is not a valid URL") from None
    theirs = parsed.raw_host or ""  # what aiohttp connects to
    if ip is not None:
        try:
            same_host = ipaddress.ip_address(theirs) == ip
        except ValueError:
            same_host = False
    else:
        same_host = theirs == host
    if not same_host or parsed.port != port or parsed.user is not None or parsed.password is not None:
        raise EndpointRefused("the push endpoint is ambiguous (URL parsers disagree on its host)")


# --- which addresses are public ------------------------------------------------------------

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network
# IANA special-purpose registries, most specific first; a push service lives in none of these.
_SPECIAL_V4: tuple[tuple[_V4, str], ...] = tuple((_V4(net), why) for net, why in (
    ("0.0.0.0/8", "unspecified ('this network')"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "carrier-grade NAT (shared address space)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (where cloud metadata services live)"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved for IETF protocol assignments"),
    ("192.0.2.0/24", "reserved for documentation"),
    ("192.88.99.0/24", "a deprecated 6to4 relay"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "reserved for benchmarking"),
    ("198.51.100.0/24", "reserved for documentation"),
    ("203.0.113.0/24", "reserved for documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved (or broadcast)"),
))
_SPECIAL_V6: tuple[tuple[_V6, str], ...] = tuple((_V6(net), why) for net, why in (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "IPv4-compatible (deprecated)"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "discard-only"),
    ("2001::/23", "reserved for IETF protocol assignments (Teredo and others)"),
    ("2001:db8::/32", "reserved for documentation"),
    ("2002::/16", "6to4 (deprecated; it can wrap any IPv4 address)"),
    ("3fff::/20", "reserved for documentation"),
    ("5f00::/16", "segment routing"),
    ("fc00::/7", "unique local (private)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
))
_MAPPED = _V6("::ffff:0:0/96")
_NAT64 = _V6("64:ff9b::/96")
_GLOBAL_UNICAST = _V6("2000::/3")


def address_refusal(ip: IPAddress) -> str | None:
    """Why `ip` is not a public unicast address (e.g. "loopback (127.0.0.0/8)"), or None.

    IPv4-mapped and NAT64 (64:ff9b::/96) IPv6 addresses are judged by the
    IPv4 address inside; a NAT64 address of a public IPv4 is public (that is
    how an IPv6-only host with DNS64 reaches a push service).
    """
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ipaddress.IPv6Address(ip.packed)  # drop any %zone
        for net in (_MAPPED, _NAT64):
            if ip in net:
                inner = ipaddress.IPv4Address(ip.packed[-4:])
                why = address_refusal(inner)
                kind = "IPv4-mapped" if net is _MAPPED else "NAT64"
                return f"{kind}, wrapping {inner}, which is {why}" if why else None
        for net6, why in _SPECIAL_V6:
            if ip in net6:
                return f"{why} ({net6})"
        if ip not in _GLOBAL_UNICAST:
            return f"outside global unicast ({_GLOBAL_UNICAST}): reserved"
        return None
    for net4, why in _SPECIAL_V4:
        if ip in net4:
            return f"{why} ({net4})"
    if not ip.is_global:
        return "not globally routable"
    return None


def check_addresses(host: str, addresses: Iterable[str]) -> None:
    """Raise AddressRefused unless every address `host` resolved to is public."""
    seen = False
    for text in addresses:
        seen = True
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            raise AddressRefused(f"{host} resolved to {text[:60]!r}, not an IP address") from None
        why = address_refusal(ip)
        if why:
            raise AddressRefused(f"{host} resolves to {ip}, which is {why}; not connecting")
    if not seen:
        raise AddressRefused(f"{host} resolved to no address")


# --- the asynchronous checks ----------------------------------------------------------------

Resolve = Callable[[str, int], Awaitable[Sequence[str]]]


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host` (IPv4 and IPv6)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def verify_endpoint(url: object, policy: EndpointPolicy,
                          resolve: Resolve = system_resolve) -> ValidEndpoint:
    """`check_endpoint`, then, if the policy refuses private addresses, resolve the
    host and refuse it unless every address is public. Raises EndpointRefused."""
    endpoint = check_endpoint(url, policy)
    if endpoint.ip is None and policy.refuse_private_addresses:
        try:
            addresses = await resolve(endpoint.host, endpoint.port)
        except OSError as exc:
            raise EndpointRefused(f"the push endpoint's host {endpoint.host} does not resolve "
                                  f"({exc.strerror or exc})") from None
        try:
            check_addresses(endpoint.host, addresses)
        except AddressRefused as exc:
            raise EndpointRefused(f"the push endpoint's host {exc}") from None
    return endpoint


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that refuses hosts resolving to non-public addresses.

    aiohttp connects to exactly the addresses a resolver returns, so checking
    here closes the gap a DNS rebinding attack would use. IP-literal hosts
    never reach a resolver: `check_endpoint` judges those (the sender runs it
    before every request).
    """

    def __init__(self, policy: EndpointPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = DefaultResolver()
        results = await self._inner.resolve(host, port, family)
        if self._policy.refuse_private_addresses:
            check_addresses(host, (r["host"] for r in results))
        return results

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


def guarded_connector(policy: EndpointPolicy, *, resolver: AbstractResolver | None = None,
                      **connector_args: Any) -> TCPConnector:
    """A TCPConnector whose DNS answers pass `policy` (other arguments go to TCPConnector:
    `ssl`, `limit`, `limit_per_host`, ...). Create it inside the running event loop."""
    return TCPConnector(resolver=GuardedResolver(policy, resolver), **connector_args)


# --- keys ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PushSubscription:
    """A validated subscription: endpoint plus keys (unpadded base64url)."""

    endpoint: str
    p256dh: str
    auth: str


def _b64url(value: object, name: str, length: int) -> bytes:
    if not isinstance(value, str) or not value:
        raise EndpointRefused(f"the subscription's {name} key is missing")
    if len(value) > 4 * length or not _B64URL.fullmatch(value):
        raise EndpointRefused(f"the subscription's {name} key is not base64url "
                              "(letters, digits, '-' and '_')")
    try:
        raw = base64.urlsafe_b64decode(value.rstrip("=") + "=" * (-len(value.rstrip("=")) % 4))
    except (binascii.Error, ValueError):
        raise EndpointRefused(f"the subscription's {name} key is not valid base64url") from None
    if len(raw) != length:
        raise EndpointRefused(f"the subscription's {name} key is {len(raw)} bytes; expected {length}")
    return raw


def check_keys(p256dh: object, auth: object) -> tuple[str, str]:
    """Validate the browser's keys; return them as unpadded base64url, or raise EndpointRefused.

    p256dh: 65 bytes, an uncompressed point on P-256 (RFC 8291 §3.1).
    auth: the 16-byte authentication secret (RFC 8291 §3.2).
    """
    point = _b64url(p256dh, "p256dh", 65)
    if point[0] != 4:
        raise EndpointRefused("the subscription's p256dh key is not an uncompressed P-256 point")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise EndpointRefused("the subscription's p256dh key is not a point on P-256") from None
    secret = _b64url(auth, "auth", 16)

    def text(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    return text(point), text(secret)


def check_subscription(endpoint: object, p256dh: object, auth: object,
                       policy: EndpointPolicy) -> PushSubscription:
    """Endpoint and keys together (no IO); raises EndpointRefused."""
    valid = check_endpoint(endpoint, policy)
    point, secret = check_keys(p256dh, auth)
    return PushSubscription(valid.url, point, secret)


async def verify_subscription(endpoint: object, p256dh: object, auth: object,
                              policy: EndpointPolicy,
                              resolve: Resolve = system_resolve) -> PushSubscription:
    """`check_subscription` plus the resolved-address check of `verify_endpoint`."""
    valid = await verify_endpoint(endpoint, policy, resolve)
    point, secret = check_keys(p256dh, auth)
    return PushSubscription(valid.url, point, secret)
