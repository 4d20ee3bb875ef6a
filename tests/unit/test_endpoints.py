"""adapters.endpoints: untrusted push endpoints and keys, refused unless plainly safe."""

from __future__ import annotations

import base64
import ipaddress
import os
import socket

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from adapters.endpoints import (
    DEFAULT_PUSH_HOSTS,
    AddressRefused,
    AllowedHost,
    EndpointPolicy,
    EndpointRefused,
    GuardedResolver,
    address_refusal,
    check_endpoint,
    check_keys,
    check_subscription,
    guarded_connector,
    verify_endpoint,
    verify_subscription,
)

pytestmark = pytest.mark.unit

PRODUCTION = EndpointPolicy()
TOKEN = "cXy7SECRET-token_do-not-log"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def browser_keys() -> tuple[str, str]:
    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return b64(point), b64(os.urandom(16))


# --- what is accepted -------------------------------------------------------------------

VALID = [
    f"https://fcm.googleapis.com/fcm/send/{TOKEN}:APA91b",
    f"https://updates.push.services.mozilla.com/wpush/v2/{TOKEN}",
    f"https://wns2-par02p.notify.windows.com/w/?token={TOKEN}%3d",
    f"https://db5p.notify.windows.com/w/?token={TOKEN}",
    f"https://web.push.apple.com/{TOKEN}",
    f"https://fcm.googleapis.com:443/fcm/send/{TOKEN}",
]


@pytest.mark.parametrize("url", VALID)
def test_endpoints_of_every_default_push_service_are_accepted(url):
    endpoint = check_endpoint(url, PRODUCTION)
    assert endpoint.url == url and endpoint.port == 443 and endpoint.ip is None
    assert endpoint.origin == f"https://{endpoint.host}"


def test_the_defaults_name_the_four_browser_push_services():
    assert set(DEFAULT_PUSH_HOSTS) == {"fcm.googleapis.com", "*.push.services.mozilla.com",
                                       "*.notify.windows.com", "web.push.apple.com"}


def test_a_local_push_service_is_accepted_only_through_an_explicit_entry():
    url = "https://127.0.0.1:18443/push/abc"
    with pytest.raises(EndpointRefused):
        check_endpoint(url, PRODUCTION)
    endpoint = check_endpoint(url, EndpointPolicy.for_local_push_service(18443))
    assert endpoint.origin == "https://127.0.0.1:18443"
    with pytest.raises(EndpointRefused, match="IP address"):
        check_endpoint("https://127.0.0.1:18444/push/abc", EndpointPolicy.for_local_push_service(18443))


def test_a_local_ipv6_push_service_entry_works_too():
    policy = EndpointPolicy.for_local_push_service(8443, host="::1")
    assert check_endpoint("https://[::1]:8443/push/x", policy).origin == "https://[::1]:8443"


def test_production_refuses_private_addresses_and_dev_does_not():
    assert EndpointPolicy.for_env("production").refuse_private_addresses
    assert not EndpointPolicy.for_env("dev").refuse_private_addresses
    policy = EndpointPolicy.for_env("production", extra=["push.internal.example:8443"])
    assert check_endpoint("https://push.internal.example:8443/x", policy).port == 8443


# --- the SSRF corpus: every one refused, with a message saying why ---------------------------

SSRF = [
    ("http://fcm.googleapis.com/fcm/send/x", "only https://"),
    ("ftp://fcm.googleapis.com/x", "only https://"),
    ("fcm.googleapis.com/fcm/send/x", "only https://"),
    ("//fcm.googleapis.com/x", "only https://"),
    ("javascript:alert(1)", "only https://"),
    ("HTTPS://fcm.googleapis.com/x", "lower case"),
    ("https://127.0.0.1/x", "IP address"),
    ("https://127.0.0.1:443/x", "IP address"),
    ("https://[::1]/x", "IP address"),
    ("https://[::ffff:127.0.0.1]/x", "IP address"),
    ("https://[::ffff:7f00:1]/x", "IP address"),
    ("https://[0:0:0:0:0:ffff:127.0.0.1]/x", "IP address"),
    ("https://[::127.0.0.1]/x", "IP address"),
    ("https://[64:ff9b::a00:1]/x", "IP address"),
    ("https://[fe80::1%25eth0]/x", "zone"),
    ("https://2130706433/x", "disguised IPv4"),
    ("https://0177.0.0.1/x", "disguised IPv4"),
    ("https://0x7f000001/x", "disguised IPv4"),
    ("https://0x7f.0.0.1/x", "disguised IPv4"),
    ("https://127.1/x", "disguised IPv4"),
    ("https://127.0.0.1./x", "disguised IPv4"),
    ("https://017700000001/x", "disguised IPv4"),
    ("https://1.2.3.4.5/x", "malformed IPv4"),
    ("https://999.0.0.1/x", "malformed IPv4"),
    ("https://169.254.169.254/latest/meta-data/", "IP address"),
    ("https://100.64.0.1/x", "IP address"),
    ("https://10.0.0.1/x", "IP address"),
    ("https://0.0.0.0/x", "IP address"),
    ("https://fcm.googleapis.com@evil.com/x", "user info"),
    ("https://user:pass@fcm.googleapis.com/x", "user info"),
    ("https://fcm.googleapis.com%40evil.com/x", "not a valid host name"),
    ("https://evil.com#@fcm.googleapis.com/x", "fragment"),
    ("https://evil.com?@fcm.googleapis.com/x", "not an allow-listed push service"),
    ("https://evil.com\\@fcm.googleapis.com/x", "backslashes"),
    ("https://fcm.googleapis.com\\.evil.com/x", "backslashes"),
    ("https://fcm.googleapis.com:8443/x", "port 8443 is not allowed"),
    ("https://fcm.googleapis.com:80/x", "port 80 is not allowed"),
    ("https://fcm.googleapis.com:0/x", "out-of-range port"),
    ("https://fcm.googleapis.com:99999/x", "out-of-range port"),
    ("https://fcm.googleapis.com:/x", "invalid port"),
    ("https://fcm.googleapis.com:44a/x", "invalid port"),
    ("https://evil.com/fcm.googleapis.com", "not an allow-listed push service"),
    ("https://fcm.googleapis.com.evil.com/x", "not an allow-listed push service"),
    ("https://evilfcm.googleapis.com/x", "not an allow-listed push service"),
    ("https://push.services.mozilla.com/x", "not an allow-listed push service"),
    ("https://notify.windows.com.evil.com/x", "not an allow-listed push service"),
    ("https://evil-notify.windows.com/x", "not an allow-listed push service"),
    ("https://apple.com/x", "not an allow-listed push service"),
    ("https://localhost/x", "not an allow-listed push service"),
    ("https://fcm.googleapis.com./x", "not a valid host name"),
    ("https://fcm.googleapis.com /x", "spaces"),
    ("https://fcm.googleapis.com\t/x", "control characters"),
    ("https://fcm.googleapis.com\n.evil.com/x", "control characters"),
    ("https://fcm.googleapis.çom/x", "non-ASCII"),
    ("https://xn--fcm-googleapis.com/x", "not an allow-listed push service"),
    ("https:///fcm.googleapis.com/x", "no host"),
    ("https://", "no host"),
    ("https://[::1/x", "unclosed"),
    ("https://[::1]x/x", "text after"),
    ("https://[not-an-ip]/x", "not a valid IPv6"),
    ("https://fcm_googleapis.com/x", "not a valid host name"),
    ("https://" + "a" * 2100 + ".com/", "longer than"),
    ("", "missing"),
    (None, "missing"),
    (42, "missing"),
]


@pytest.mark.parametrize(("url", "why"), SSRF)
def test_the_ssrf_corpus_is_refused_with_a_clear_message(url, why):
    with pytest.raises(EndpointRefused, match=why) as refused:
        check_endpoint(url, PRODUCTION)
    assert TOKEN not in str(refused.value)


@pytest.mark.parametrize(("url", "why"), [
    ("https://127.0.0.1:9/x", "loopback"),
    ("https://[::1]:9/x", "loopback"),
    ("https://[::ffff:127.0.0.1]:9/x", "IPv4-mapped, wrapping 127.0.0.1, which is loopback"),
    ("https://169.254.169.254:9/x", "link-local"),
    ("https://100.64.0.1:9/x", "carrier-grade NAT"),
    ("https://[64:ff9b::a00:1]:9/x", "NAT64, wrapping 10.0.0.1, which is private"),
])
def test_an_allow_listed_private_ip_is_still_refused_in_production(url, why):
    host = url.split("//")[1].rsplit(":", 1)[0]
    policy = EndpointPolicy.of([f"{host}:9"])
    with pytest.raises(EndpointRefused, match=why):
        check_endpoint(url, policy)


def test_refusals_never_quote_the_subscription_token():
    for url in VALID:
        bad = url.replace("https://", "http://")
        with pytest.raises(EndpointRefused) as refused:
            check_endpoint(bad, PRODUCTION)
        assert TOKEN not in str(refused.value)


# --- which addresses are public -------------------------------------------------------------------

REFUSED_ADDRESSES = [
    ("127.0.0.1", "loopback"), ("127.255.255.254", "loopback"), ("0.0.0.0", "unspecified"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"), ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"), ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"), ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"), ("192.0.2.1", "documentation"), ("198.18.0.1", "benchmarking"),
    ("192.0.0.8", "IETF"),
    ("::", "unspecified"), ("::1", "loopback"), ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"), ("::ffff:169.254.169.254", "link-local"),
    ("::127.0.0.1", "IPv4-compatible"), ("64:ff9b::a00:1", "NAT64, wrapping 10.0.0.1"),
    ("64:ff9b::7f00:1", "NAT64, wrapping 127.0.0.1"), ("64:ff9b:1::1", "local-use NAT64"),
    ("2002:7f00:1::1", "6to4"), ("2001:0:4136:e378::1", "Teredo"), ("2001:db8::1", "documentation"),
    ("fc00::1", "unique local"), ("fd12:3456::1", "unique local"), ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"), ("fec0::1", "site-local"), ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"), ("100::1", "discard"), ("4000::1", "outside global unicast"),
]


@pytest.mark.parametrize(("address", "why"), REFUSED_ADDRESSES)
def test_non_public_addresses_are_refused_with_their_kind(address, why):
    reason = address_refusal(ipaddress.ip_address(address))
    assert reason is not None and why in reason


@pytest.mark.parametrize("address", ["142.250.185.74", "8.8.8.8", "1.1.1.1", "2a00:1450:4001::5f",
                                     "2606:4700::1111", "64:ff9b::808:808", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address):
    assert address_refusal(ipaddress.ip_address(address)) is None


# --- resolving: the production check and the connect-time guard ---------------------------------


def resolver_of(answers: dict[str, list[str]]):
    async def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[host]
    return resolve


async def test_a_push_host_that_resolves_to_a_private_address_is_refused_in_production():
    resolve = resolver_of({"fcm.googleapis.com": ["142.250.185.74", "10.0.0.5"]})
    with pytest.raises(EndpointRefused, match="resolves to 10.0.0.5, which is private"):
        await verify_endpoint(VALID[0], PRODUCTION, resolve)


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "169.254.169.254", "::ffff:127.0.0.1",
                                     "100.64.0.1", "64:ff9b::a00:1", "fe80::1%eth0"])
async def test_every_private_answer_of_the_resolver_is_refused(address):
    resolve = resolver_of({"web.push.apple.com": [address]})
    with pytest.raises(EndpointRefused, match="resolves to .*which is"):
        await verify_endpoint(VALID[4], PRODUCTION, resolve)


async def test_a_push_host_with_public_addresses_is_accepted():
    resolve = resolver_of({"web.push.apple.com": ["17.253.1.1", "2620:149::1"]})
    assert (await verify_endpoint(VALID[4], PRODUCTION, resolve)).host == "web.push.apple.com"


async def test_a_host_that_does_not_resolve_is_refused():
    with pytest.raises(EndpointRefused, match="does not resolve"):
        await verify_endpoint(VALID[4], PRODUCTION, resolver_of({}))


async def test_resolving_is_skipped_when_the_policy_allows_private_addresses():
    async def explode(host: str, port: int) -> list[str]:
        raise AssertionError("resolved")
    assert await verify_endpoint(VALID[4], EndpointPolicy.for_env("test"), explode)


class FakeResolver(AbstractResolver):
    """Answers from a table, as a rebinding DNS server would."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host=a, port=port,
                              family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST)
                for a in self.answers[host]]

    async def close(self) -> None:
        pass


async def test_the_guarded_resolver_refuses_a_rebound_private_answer():
    guard = GuardedResolver(PRODUCTION, FakeResolver({"fcm.googleapis.com": ["127.0.0.1"]}))
    with pytest.raises(AddressRefused, match="127.0.0.1, which is loopback"):
        await guard.resolve("fcm.googleapis.com", 443)


async def test_the_guarded_resolver_passes_public_answers_through():
    guard = GuardedResolver(PRODUCTION, FakeResolver({"fcm.googleapis.com": ["142.250.185.74"]}))
    assert [r["host"] for r in await guard.resolve("fcm.googleapis.com", 443)] == ["142.250.185.74"]


async def test_a_session_with_the_guarded_connector_never_connects_to_a_rebound_address():
    policy = EndpointPolicy.of(["rebind.example:8443"])
    connector = guarded_connector(policy, resolver=FakeResolver({"rebind.example": ["127.0.0.1"]}))
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(aiohttp.ClientConnectorDNSError) as failed:
            await session.post("https://rebind.example:8443/push/x", data=b"x")
    assert isinstance(failed.value.os_error, AddressRefused)


# --- keys -----------------------------------------------------------------------------------------


def test_valid_keys_are_accepted_and_normalised_to_unpadded_base64url():
    p256dh, auth = browser_keys()
    assert check_keys(p256dh + "=", auth + "==") == (p256dh, auth)


def test_a_whole_subscription_is_checked_at_once():
    p256dh, auth = browser_keys()
    sub = check_subscription(VALID[0], p256dh, auth, PRODUCTION)
    assert (sub.endpoint, sub.p256dh, sub.auth) == (VALID[0], p256dh, auth)
    with pytest.raises(EndpointRefused, match="only https"):
        check_subscription("http://fcm.googleapis.com/x", p256dh, auth, PRODUCTION)


async def test_verify_subscription_resolves_too():
    p256dh, auth = browser_keys()
    with pytest.raises(EndpointRefused, match="loopback"):
        await verify_subscription(VALID[0], p256dh, auth, PRODUCTION,
                                  resolver_of({"fcm.googleapis.com": ["127.0.0.1"]}))


def _not_on_curve() -> str:
    return b64(b"\x04" + b"\x01" * 64)


@pytest.mark.parametrize(("p256dh", "auth", "why"), [
    (None, "A" * 22, "p256dh key is missing"),
    ("", "A" * 22, "p256dh key is missing"),
    (b64(b"\x04" + b"\x00" * 30), "A" * 22, "31 bytes; expected 65"),
    (b64(b"\x03" + b"\x00" * 64), "A" * 22, "not an uncompressed"),
    ("_not_on_curve", "A" * 22, "not a point on P-256"),
    ("+/" + "A" * 85, "A" * 22, "not base64url"),
    ("A" * 86 + "!", "A" * 22, "not base64url"),
    ("A" * 85, "A" * 22, "not valid base64url"),
    ("valid", None, "auth key is missing"),
    ("valid", "A" * 20, "15 bytes; expected 16"),
    ("valid", "A" * 24, "18 bytes; expected 16"),
    ("valid", "AAAA+AAAAAAAAAAAAAAAAA", "not base64url"),
])
def test_bad_keys_are_refused_with_a_clear_message(p256dh, auth, why):
    good, _ = browser_keys()
    p256dh = {"valid": good, "_not_on_curve": _not_on_curve()}.get(p256dh, p256dh) \
        if isinstance(p256dh, str) else p256dh
    with pytest.raises(EndpointRefused, match=why):
        check_keys(p256dh, auth)


# --- the allow-list itself ---------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["", "*.", "exa mple.com", "*.127.0.0.1", "host:0", "[::1", "a_b.com"])
def test_a_bad_allow_list_entry_is_a_configuration_error(entry):
    with pytest.raises(ValueError):
        AllowedHost.parse(entry)


def test_a_wildcard_entry_matches_subdomains_only():
    entry = AllowedHost.parse("*.notify.windows.com")
    assert entry.matches("a.notify.windows.com", 443, None)
    assert entry.matches("a.b.notify.windows.com", 443, None)
    assert not entry.matches("notify.windows.com", 443, None)
    assert not entry.matches("evilnotify.windows.com", 443, None)
    assert not entry.matches("a.notify.windows.com", 8443, None)
