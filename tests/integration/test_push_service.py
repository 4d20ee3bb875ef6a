"""The local push service, driven by pywebpush's real code path over HTTPS.

Every push goes through pywebpush (`webpush_async`, or `WebPusher.send_async`
with a hand-made token where pywebpush itself would refuse to sign), over TLS
to the embedded service, trusting only the test CA.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import subprocess
import sys
import time

import aiohttp
import pytest
import requests
from pywebpush import WebPusher, WebPushException, webpush, webpush_async

from oo.pushservice import PushService, ensure_certificates
from oo.pushservice.client import ControlClient, ControlError
from oo.vapid import VapidKey, generate_keys, load_vapid, sign_token

pytestmark = pytest.mark.integration

SUBJECT = "mailto:ops@oo.example"


class Clock:
    """A clock the test moves; starts at the real time (pywebpush signs with real time)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def push(tmp_path, clock):
    async with PushService.running("127.0.0.1", 0, tmp_path / "ca", clock=clock) as service:
        yield service


@pytest.fixture
async def session(push):
    connector = aiohttp.TCPConnector(ssl=push.certificates.client_ssl_context())
    async with aiohttp.ClientSession(connector=connector) as client:
        yield client


def _key(folder, name: str = "vapid.pem") -> VapidKey:
    generate_keys(folder / name)
    return load_vapid(folder / name)


@pytest.fixture
def vapid(tmp_path) -> VapidKey:
    return _key(tmp_path)


async def _send(session, subscription, data: bytes | None, vapid: VapidKey, *,
                claims: dict | None = None, **kwargs):
    """One push through pywebpush.webpush_async (claims: a fresh dict; pywebpush mutates it)."""
    return await webpush_async(
        subscription.to_json(), data=data, vapid_private_key=vapid.vapid(),
        vapid_claims=claims or {"sub": SUBJECT}, aiohttp_session=session, **kwargs)


async def _send_with_token(session, subscription, token: str, key: str, data: bytes = b"hi"):
    """A push with a given Authorization token, still encrypted and sent by pywebpush."""
    response = await WebPusher(subscription.to_json(), aiohttp_session=session).send_async(
        data, {"Authorization": f"vapid t={token},k={key}"}, ttl=60)
    return response.status, (await response.json())["message"]


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- delivery ------------------------------------------------------------------------------


async def test_a_payload_sent_with_pywebpush_is_decrypted_back_to_the_exact_bytes(
        push, session, vapid):
    subscription = push.subscribe(application_server_key=vapid.public_key)
    payload = os.urandom(200) + "Stretch — 2 minutes".encode()  # not valid UTF-8 on purpose
    response = await _send(session, subscription, payload, vapid, ttl=300,
                           headers={"Urgency": "high", "Topic": "tip"})
    assert response.status == 201
    assert re.fullmatch(rf"{re.escape(push.base_url)}/message/[\w-]+", response.headers["Location"])
    [message] = await push.wait_for_messages(subscription.id)
    assert message.payload == payload
    assert (message.ttl, message.urgency, message.topic) == (300, "high", "tip")
    assert message.status == "delivered"
    assert message.vapid_subject == SUBJECT and message.vapid_key == vapid.public_key
    assert response.headers["Location"].endswith(message.id)


async def test_subscription_json_is_what_a_browser_gives(push):
    subscription = push.subscribe()
    body = subscription.to_json()
    assert list(body) == ["endpoint", "expirationTime", "keys"]
    assert body["endpoint"] == f"{push.base_url}/push/{subscription.id}"
    assert body["expirationTime"] is None
    keys = body["keys"]
    assert list(keys) == ["p256dh", "auth"]
    assert len(_b64(keys["p256dh"])) == 65 and _b64(keys["p256dh"])[0] == 0x04
    assert len(_b64(keys["auth"])) == 16
    assert not any("=" in value for value in keys.values())


async def test_the_largest_allowed_payload_passes_and_one_byte_more_is_413(push, session, vapid):
    subscription = push.subscribe()
    # aes128gcm adds 86 header bytes, 1 delimiter and a 16-byte tag: 3993 bytes -> 4096.
    assert (await _send(session, subscription, b"x" * 3993, vapid, ttl=60)).status == 201
    with pytest.raises(WebPushException) as caught:
        await _send(session, subscription, b"x" * 3994, vapid, ttl=60)
    assert caught.value.status_code == 413
    [message] = push.messages(subscription.id)
    assert len(message.payload) == 3993


async def test_a_push_without_payload_is_accepted(push, session, vapid):
    subscription = push.subscribe()
    assert (await _send(session, subscription, None, vapid, ttl=60)).status == 201
    [message] = push.messages(subscription.id)
    assert message.payload == b""


# -- VAPID ---------------------------------------------------------------------------------


async def test_a_token_signed_by_another_key_than_k_is_refused(push, session, vapid, tmp_path):
    subscription = push.subscribe()
    other = _key(tmp_path, "other.pem")
    token = sign_token({"aud": push.origin, "exp": int(time.time()) + 3600, "sub": SUBJECT},
                       other.private_key)
    status, reason = await _send_with_token(session, subscription, token, vapid.public_key)
    assert status == 403 and "signature" in reason
    assert push.messages(subscription.id) == []


async def test_a_key_other_than_the_subscriptions_application_server_key_is_refused(
        push, session, vapid, tmp_path):
    subscription = push.subscribe(application_server_key=vapid.public_key)
    with pytest.raises(WebPushException) as caught:
        await _send(session, subscription, b"hi", _key(tmp_path, "other.pem"), ttl=60)
    assert caught.value.status_code == 403
    assert "applicationServerKey" in caught.value.message


async def test_a_token_for_another_origin_is_refused(push, session, vapid):
    subscription = push.subscribe()
    with pytest.raises(WebPushException) as caught:
        await _send(session, subscription, b"hi", vapid, ttl=60,
                    claims={"sub": SUBJECT, "aud": "https://push.example.com"})
    assert caught.value.status_code == 403 and "aud" in caught.value.message


async def test_an_expired_token_is_refused(push, session, vapid):
    subscription = push.subscribe()
    token = sign_token({"aud": push.origin, "exp": int(time.time()) - 60, "sub": SUBJECT},
                       vapid.private_key)
    status, reason = await _send_with_token(session, subscription, token, vapid.public_key)
    assert status == 403 and "expired" in reason


async def test_a_token_valid_for_more_than_24_hours_is_refused(push, session, vapid):
    subscription = push.subscribe()
    with pytest.raises(WebPushException) as caught:
        await _send(session, subscription, b"hi", vapid, ttl=60,
                    claims={"sub": SUBJECT, "exp": int(time.time()) + 25 * 3600})
    assert caught.value.status_code == 403 and "24 hours" in caught.value.message


async def test_a_token_without_sub_is_refused(push, session, vapid):
    subscription = push.subscribe()
    token = sign_token({"aud": push.origin, "exp": int(time.time()) + 3600}, vapid.private_key)
    status, reason = await _send_with_token(session, subscription, token, vapid.public_key)
    assert status == 403 and "sub" in reason


async def test_a_push_without_vapid_is_401(push, session):
    subscription = push.subscribe()
    response = await WebPusher(subscription.to_json(), aiohttp_session=session).send_async(
        b"hi", {}, ttl=60)
    assert response.status == 401
    response = await WebPusher(subscription.to_json(), aiohttp_session=session).send_async(
        b"hi", {"Authorization": "WebPush abc.def.ghi"}, ttl=60)
    assert response.status == 401
    assert [a.status for a in push.attempts(subscription.id)] == [401, 401]


async def test_the_headers_a_token_are_checked_are_the_ones_the_notifier_will_send(
        push, session, vapid):
    subscription = push.subscribe(application_server_key=vapid.public_key)
    headers = vapid.headers(subscription.endpoint, SUBJECT, now=time.time())
    response = await WebPusher(subscription.to_json(), aiohttp_session=session).send_async(
        b"tip", {**headers, "Urgency": "low"}, ttl=120)
    assert response.status == 201
    [message] = push.messages(subscription.id)
    assert (message.payload, message.urgency, message.ttl) == (b"tip", "low", 120)


# -- malformed requests --------------------------------------------------------------------


async def test_ttl_is_required(push, session, vapid):
    subscription = push.subscribe()
    headers = vapid.headers(subscription.endpoint, SUBJECT, now=time.time())
    async with session.post(subscription.endpoint, headers=headers) as response:
        assert response.status == 400
        assert "TTL" in (await response.json())["message"]


async def test_a_payload_encrypted_for_another_subscription_is_refused(push, session, vapid):
    target, other = push.subscribe(), push.subscribe()
    info = {**target.to_json(), "keys": other.to_json()["keys"]}
    headers = vapid.headers(target.endpoint, SUBJECT, now=time.time())
    response = await WebPusher(info, aiohttp_session=session).send_async(b"hi", headers, ttl=60)
    assert response.status == 400 and "decrypt" in (await response.json())["message"]


async def test_the_legacy_aesgcm_encoding_is_refused(push, session, vapid):
    subscription = push.subscribe()
    with pytest.raises(WebPushException) as caught:
        await _send(session, subscription, b"hi", vapid, ttl=60, content_encoding="aesgcm")
    assert caught.value.status_code == 415


async def test_bad_urgency_and_topic_are_refused(push, session, vapid):
    subscription = push.subscribe()
    for headers in ({"Urgency": "urgent"}, {"Topic": "has space"}, {"Topic": "t" * 33}):
        with pytest.raises(WebPushException) as caught:
            await _send(session, subscription, b"hi", vapid, ttl=60, headers=headers)
        assert caught.value.status_code == 400


async def test_unknown_and_unsubscribed_endpoints_are_404_and_410(push, session, vapid):
    subscription = push.subscribe()
    push.unsubscribe(subscription.id)
    with pytest.raises(WebPushException) as caught:
        await _send(session, subscription, b"hi", vapid, ttl=60)
    assert caught.value.status_code == 410
    info = {**subscription.to_json(), "endpoint": f"{push.base_url}/push/nobody"}
    with pytest.raises(WebPushException) as caught:
        await webpush_async(info, data=b"hi", vapid_private_key=vapid.vapid(),
                            vapid_claims={"sub": SUBJECT}, aiohttp_session=session)
    assert caught.value.status_code == 404


# -- scripted failures ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 410, 413, 500])
async def test_a_scripted_status_is_answered_then_pushes_work_again(push, session, vapid, status):
    subscription = push.subscribe()
    push.fail_next(subscription.id, status)
    with pytest.raises(WebPushException) as caught:
        await _send(session, subscription, b"first", vapid, ttl=60)
    assert caught.value.status_code == status
    assert (await _send(session, subscription, b"second", vapid, ttl=60)).status == 201
    assert [m.payload for m in push.messages(subscription.id)] == [b"second"]
    assert [a.status for a in push.attempts(subscription.id)] == [status, 201]


async def test_429_carries_retry_after_for_the_next_k_requests(push, session, vapid):
    subscription = push.subscribe()
    push.fail_next(subscription.id, 429, times=2, retry_after=30)
    for _ in range(2):
        with pytest.raises(WebPushException) as caught:
            await _send(session, subscription, b"tip", vapid, ttl=60)
        assert caught.value.status_code == 429 and caught.value.retry_after == "30"
    assert (await _send(session, subscription, b"tip", vapid, ttl=60)).status == 201


async def test_500_twice_then_delivered(push, session, vapid):
    subscription = push.subscribe()
    push.fail_next(subscription.id, 500, times=2)
    statuses = []
    for _ in range(3):
        try:
            statuses.append((await _send(session, subscription, b"tip", vapid, ttl=60)).status)
        except WebPushException as err:
            statuses.append(err.status_code)
    assert statuses == [500, 500, 201]


async def test_a_hanging_endpoint_makes_the_sender_time_out(push, session, vapid):
    subscription = push.subscribe()
    push.hang_next(subscription.id, seconds=30)
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await _send(session, subscription, b"tip", vapid, ttl=60, timeout=0.5)
    assert time.monotonic() - started < 5
    assert (await _send(session, subscription, b"tip", vapid, ttl=60)).status == 201


# -- delivery model: offline browsers, Topic, TTL ------------------------------------------


async def test_a_message_with_the_topic_of_an_undelivered_one_replaces_it(push, session, vapid):
    subscription = push.subscribe()
    push.set_online(subscription.id, False)
    for text, topic in ((b"one", "tip"), (b"other", "mood"), (b"two", "tip")):
        response = await _send(session, subscription, text, vapid, ttl=3600,
                               headers={"Topic": topic})
        assert response.status == 201
    first, other, second = push.messages(subscription.id)
    assert (first.status, first.replaced_by) == ("replaced", second.id)
    assert (second.status, second.replaces) == ("pending", first.id)
    assert other.status == "pending"
    delivered = push.set_online(subscription.id, True)
    assert [m.payload for m in delivered] == [b"other", b"two"]
    assert [m.status for m in push.messages(subscription.id)] == [
        "replaced", "delivered", "delivered"]


async def test_a_delivered_message_is_not_replaced(push, session, vapid):
    subscription = push.subscribe()
    await _send(session, subscription, b"one", vapid, ttl=60, headers={"Topic": "tip"})
    await _send(session, subscription, b"two", vapid, ttl=60, headers={"Topic": "tip"})
    assert [m.status for m in push.messages(subscription.id)] == ["delivered", "delivered"]


async def test_an_offline_browser_misses_messages_whose_ttl_ran_out(push, session, vapid, clock):
    subscription = push.subscribe()
    push.set_online(subscription.id, False)
    await _send(session, subscription, b"now or never", vapid, ttl=0)
    await _send(session, subscription, b"a minute", vapid, ttl=60)
    await _send(session, subscription, b"an hour", vapid, ttl=3600)
    clock.now += 61
    assert [m.status for m in push.messages(subscription.id)] == ["expired", "expired", "pending"]
    assert [m.payload for m in push.set_online(subscription.id, True)] == [b"an hour"]


# -- the control API over HTTPS ------------------------------------------------------------


async def test_the_control_api_drives_the_same_service(push, session, vapid):
    base = f"{push.base_url}/_control"
    async with session.get(f"{base}/ready") as response:
        assert (await response.json())["status"] == "ready"
    async with session.post(f"{base}/subscriptions",
                            json={"application_server_key": vapid.public_key}) as response:
        assert response.status == 201
        info = await response.json()
        location = response.headers["Location"]
    subscription_id = info["endpoint"].rsplit("/", 1)[1]
    assert location == f"/_control/subscriptions/{subscription_id}"
    subscription = push.subscription(subscription_id)
    assert info == subscription.to_json()

    async with session.post(f"{base}/subscriptions/{subscription_id}/failures",
                            json={"status": 429, "retry_after": 7}) as response:
        assert response.status == 204
    with pytest.raises(WebPushException) as caught:
        await _send(session, subscription, b"tip", vapid, ttl=60)
    assert caught.value.retry_after == "7"

    await _send(session, subscription, b"Drink water", vapid, ttl=60,
                headers={"Topic": "tip"})
    async with session.get(f"{base}/subscriptions/{subscription_id}/messages") as response:
        [message] = (await response.json())["messages"]
    assert message["text"] == "Drink water" and _b64(message["payload"]) == b"Drink water"
    assert message["topic"] == "tip" and message["status"] == "delivered"
    async with session.get(f"{base}/subscriptions/{subscription_id}/attempts") as response:
        assert [a["status"] for a in (await response.json())["attempts"]] == [429, 201]

    async with session.put(f"{base}/subscriptions/{subscription_id}/online",
                           json={"online": "no"}) as response:
        assert response.status == 400
    async with session.post(f"{base}/subscriptions/{subscription_id}/failures",
                            json={"status": 200}) as response:
        assert response.status == 400
    async with session.get(f"{base}/subscriptions/unknown/messages") as response:
        assert response.status == 404
    async with session.delete(f"{base}/subscriptions/{subscription_id}") as response:
        assert response.status == 204
    with pytest.raises(WebPushException) as caught:
        await _send(session, subscription, b"tip", vapid, ttl=60)
    assert caught.value.status_code == 410


# -- certificates and the process ----------------------------------------------------------


async def test_certificates_are_reused_and_cover_localhost(push, tmp_path):
    files = ensure_certificates(tmp_path / "ca")
    assert files.ca_cert == push.ca_file
    before = {p.name: p.read_bytes() for p in files.folder.iterdir()}
    assert set(before) == {"ca.pem", "ca-key.pem", "server.pem", "server-key.pem"}
    assert (files.ca_key.stat().st_mode & 0o777) == 0o600
    assert (files.server_key.stat().st_mode & 0o777) == 0o600
    ensure_certificates(tmp_path / "ca")
    assert {p.name: p.read_bytes() for p in files.folder.iterdir()} == before

    port = push.base_url.rsplit(":", 1)[1]
    connector = aiohttp.TCPConnector(ssl=files.client_ssl_context())
    async with aiohttp.ClientSession(connector=connector) as client, \
            client.get(f"https://localhost:{port}/_control/ready") as response:
        assert response.status == 200


async def test_a_client_without_the_test_ca_does_not_trust_the_service(push):
    async with aiohttp.ClientSession() as client:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await client.get(f"{push.base_url}/_control/ready")


def test_the_process_serves_until_sigterm(tmp_path, vapid):
    assert subprocess.run([sys.executable, "-m", "oo.pushservice", "--help"],
                          capture_output=True, check=False).returncode == 0
    process = subprocess.Popen(
        [sys.executable, "-m", "oo.pushservice", "--port", "0", "--ca-dir", str(tmp_path / "ca"),
         "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"ready on (https://\S+) \(trust (\S+)\)", line)
        assert match, line
        control = ControlClient(match.group(1), tmp_path / "ca" / "ca.pem")
        control.wait_ready(timeout=10)
        info = control.subscribe(application_server_key=vapid.public_key)
        subscription_id = control.subscription_id(info["endpoint"])

        with requests.Session() as http:
            http.trust_env = False  # else REQUESTS_CA_BUNDLE would override `verify`
            http.verify = str(tmp_path / "ca" / "ca.pem")
            response = webpush(info, data="from the sync path", vapid_private_key=vapid.vapid(),
                               vapid_claims={"sub": SUBJECT}, ttl=60, requests_session=http)
            assert response.status_code == 201
            control.fail_next(subscription_id, 410)
            with pytest.raises(WebPushException) as caught:
                webpush(info, data="gone", vapid_private_key=vapid.vapid(),
                        vapid_claims={"sub": SUBJECT}, ttl=60, requests_session=http)
            assert caught.value.status_code == 410
        assert [m["text"] for m in control.messages(subscription_id)] == ["from the sync path"]
        with pytest.raises(ControlError, match="404"):
            control.messages("nobody")
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=15)
    assert process.returncode == 0, output
    assert "stopped" in output
