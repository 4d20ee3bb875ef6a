"""The local push service: an aiohttp app over HTTPS, embedded or as a process.

Push endpoint (what the notifier calls, RFC 8030 §5):

    POST /push/<subscription-id>      TTL, Urgency, Topic, Content-Encoding: aes128gcm,
                                      Authorization: vapid t=<JWT>, k=<key>
        201 + Location  accepted, decrypted and recorded
        400 / 401 / 403 / 413 / 415   refused, JSON body {"code", "error", "message"}
        404 unknown subscription, 410 unsubscribed, or whatever was scripted

Control API (tests and `oo dev`; JSON):

    GET    /_control/ready                              {"status": "ready"}
    POST   /_control/subscriptions                      {"application_server_key"?} ->
                                                        201, PushSubscription.toJSON()
    GET    /_control/subscriptions/<id>                 state of one subscription
    DELETE /_control/subscriptions/<id>                 unsubscribe (pushes then get 410)
    PUT    /_control/subscriptions/<id>/online          {"online": bool} -> {"delivered": [...]}
    GET    /_control/subscriptions/<id>/messages        {"messages": [...]} (payload decrypted)
    GET    /_control/subscriptions/<id>/attempts        {"attempts": [...]} (every request)
    POST   /_control/subscriptions/<id>/failures        {"status": 429, "times": 2,
                                                        "retry_after": 30} or
                                                        {"hang": true, "times": 1, "seconds": 60}
    DELETE /_control/subscriptions/<id>/failures        forget scripted failures

The same operations are methods of `PushService` when embedded:

    async with PushService.running("127.0.0.1", 0, ca_dir) as push:
        subscription = push.subscribe(application_server_key=vapid_public_key)
        ...  # send to subscription.endpoint trusting push.ca_file
        [message] = await push.wait_for_messages(subscription.id)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

from aiohttp import web

from oo.pushservice.ca import CertificateFiles, ensure_certificates
from oo.pushservice.protocol import MAX_PAYLOAD, Refused, check_vapid, read_push_headers
from oo.pushservice.state import (
    Attempt,
    PushState,
    ReceivedMessage,
    ScriptedResponse,
    Subscription,
)

log = logging.getLogger("oo.pushservice")

SERVICE: web.AppKey[PushService] = web.AppKey("push_service")
DEFAULT_HANG_SECONDS = 3600.0
_READ_LIMIT = 64 * 1024  # bodies past MAX_PAYLOAD are refused (413) after reading this much


class PushService:
    """An in-memory RFC 8030 push service with simulated browsers and scripted failures."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.state = PushState()
        self.base_url = ""  # https://host:port, known once serving
        self.certificates: CertificateFiles | None = None
        self._stopping = asyncio.Event()
        self._changed = asyncio.Condition()

    # -- running --------------------------------------------------------------------------

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, host: str = "127.0.0.1", port: int = 0, ca_dir: Path | None = None,
                      *, clock: Callable[[], float] = time.time) -> AsyncIterator[PushService]:
        """Serve HTTPS on host:port (0: any free port) with certificates from `ca_dir`.

        Without `ca_dir` the CA lives in a temporary folder removed on exit.
        """
        with contextlib.ExitStack() as stack:
            if ca_dir is None:
                ca_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="oo-push-")))
            service = cls(clock=clock)
            service.certificates = ensure_certificates(ca_dir)
            runner = web.AppRunner(service.app(), access_log=None, handle_signals=False)
            await runner.setup()
            try:
                site = web.TCPSite(runner, host, port,
                                   ssl_context=service.certificates.server_ssl_context())
                await site.start()
                bound_port = runner.addresses[0][1]
                advertised = "127.0.0.1" if host in ("", "0.0.0.0") else host
                if ":" in advertised:
                    advertised = f"[{advertised}]"
                service.base_url = f"https://{advertised}:{bound_port}"
                log.info("push service on %s (CA %s)", service.base_url, service.ca_file)
                yield service
            finally:
                service._stopping.set()  # lets hanging requests finish
                await runner.cleanup()

    def app(self) -> web.Application:
        """The aiohttp application (push endpoint + control API)."""
        app = web.Application(client_max_size=_READ_LIMIT)
        app[SERVICE] = self
        app.router.add_post("/push/{subscription}", _push)
        app.router.add_get("/_control/ready", _ready)
        app.router.add_post("/_control/subscriptions", _subscribe)
        app.router.add_get("/_control/subscriptions/{subscription}", _subscription)
        app.router.add_delete("/_control/subscriptions/{subscription}", _unsubscribe)
        app.router.add_put("/_control/subscriptions/{subscription}/online", _online)
        app.router.add_get("/_control/subscriptions/{subscription}/messages", _messages)
        app.router.add_get("/_control/subscriptions/{subscription}/attempts", _attempts)
        app.router.add_post("/_control/subscriptions/{subscription}/failures", _script)
        app.router.add_delete("/_control/subscriptions/{subscription}/failures", _clear_script)
        return app

    @property
    def ca_file(self) -> Path:
        """The CA certificate a client must trust to reach this service."""
        if self.certificates is None:
            raise RuntimeError("the push service is not running")
        return self.certificates.ca_cert

    @property
    def origin(self) -> str:
        """What a VAPID token's `aud` must be."""
        return self.base_url

    # -- control, as Python ---------------------------------------------------------------

    def subscribe(self, application_server_key: str | bytes | None = None) -> Subscription:
        """Simulate `pushManager.subscribe()`; `.to_json()` is the browser's subscription JSON."""
        key = _application_server_key(application_server_key)
        return self.state.subscribe(self.base_url, now=self.clock(), application_server_key=key)

    def subscription(self, subscription_id: str) -> Subscription:
        return self.state.get(subscription_id)

    def unsubscribe(self, subscription_id: str) -> None:
        """The browser unsubscribed: further pushes get 410 Gone."""
        self.state.unsubscribe(subscription_id)

    def messages(self, subscription_id: str) -> list[ReceivedMessage]:
        """Every accepted message of a subscription, decrypted, oldest first."""
        return self.state.messages_for(subscription_id, now=self.clock())

    def attempts(self, subscription_id: str) -> list[Attempt]:
        """Every request to the subscription's endpoint with the status it got."""
        return self.state.attempts_for(subscription_id)

    def fail_next(self, subscription_id: str, status: int, *, times: int = 1,
                  retry_after: int | None = None) -> None:
        """Answer the next `times` pushes with `status` (e.g. 404, 410, 413, 429, 500)."""
        if not 400 <= status <= 599:
            raise ValueError(f"scripted status {status} is not an HTTP error (400..599)")
        if times < 1 or (retry_after is not None and retry_after < 0):
            raise ValueError("times must be at least 1 and retry_after not negative")
        self.state.script(subscription_id, ScriptedResponse(status=status,
                                                            retry_after=retry_after), times)

    def hang_next(self, subscription_id: str, *, times: int = 1,
                  seconds: float = DEFAULT_HANG_SECONDS) -> None:
        """Don't answer the next `times` pushes for `seconds` (or until the service stops)."""
        if times < 1 or seconds <= 0:
            raise ValueError("times must be at least 1 and seconds positive")
        self.state.script(subscription_id, ScriptedResponse(hang_seconds=seconds), times)

    def clear_failures(self, subscription_id: str) -> None:
        self.state.clear_script(subscription_id)

    def set_online(self, subscription_id: str, online: bool) -> list[ReceivedMessage]:
        """Take the simulated browser off line (messages pend) or on line (they arrive)."""
        return self.state.set_online(subscription_id, online, now=self.clock())

    async def wait_for_messages(self, subscription_id: str, count: int = 1, *,
                                timeout: float = 10.0) -> list[ReceivedMessage]:
        """Wait until the subscription has at least `count` accepted messages; return them all."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.messages(subscription_id)) >= count)
        return self.messages(subscription_id)

    # -- handling a push ------------------------------------------------------------------

    async def handle_push(self, request: web.Request) -> web.Response:
        subscription_id = request.match_info["subscription"]
        now = self.clock()
        try:
            subscription = self.state.get(subscription_id)
        except KeyError:
            return _refusal(Refused(404, "no such subscription"))
        if not subscription.active:
            response = _refusal(Refused(410, "the subscription was unsubscribed"))
            self._record(Attempt(subscription_id, now, 410, "unsubscribed"))
            return response
        scripted = self.state.next_scripted(subscription_id)
        if scripted is not None:
            return await self._scripted(subscription_id, scripted, now)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._refuse(subscription_id, now, Refused(
                413, f"payload is larger than {MAX_PAYLOAD} bytes"))
        try:
            identity = check_vapid(request.headers.get("Authorization"), audience=self.origin,
                                   now=now, application_server_key=subscription.application_server_key)
            headers = read_push_headers(request.headers, len(body))
            payload = subscription.decrypt(body) if body else b""
        except Refused as refused:
            return self._refuse(subscription_id, now, refused)
        message = self.state.accept(subscription, payload, headers, identity, now=now)
        self._record(Attempt(subscription_id, now, 201, "accepted", message.id))
        # A local test peer: showing the decrypted payload is the point (oo dev prints it).
        log.info("push %s: 201 %d bytes ttl=%d urgency=%s topic=%s %s: %s", subscription_id[:8],
                 len(payload), headers.ttl, headers.urgency, headers.topic, message.status,
                 (message.text or "<binary>")[:200])
        await self._notify()
        return web.Response(status=201, headers={
            "Location": f"{self.base_url}/message/{message.id}", "TTL": str(headers.ttl)})

    async def _scripted(self, subscription_id: str, scripted: ScriptedResponse,
                        now: float) -> web.Response:
        if scripted.status is None:
            self._record(Attempt(subscription_id, now, 0, "scripted hang"))
            log.info("push %s: hanging (scripted) for up to %.0fs", subscription_id[:8],
                     scripted.hang_seconds or DEFAULT_HANG_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(),
                                       scripted.hang_seconds or DEFAULT_HANG_SECONDS)
            return _refusal(Refused(503, "hung (scripted), answering late"))
        extra = {} if scripted.retry_after is None else {"Retry-After": str(scripted.retry_after)}
        return self._refuse(subscription_id, now,
                            Refused(scripted.status, "scripted failure", extra))

    def _refuse(self, subscription_id: str, now: float, refused: Refused) -> web.Response:
        self._record(Attempt(subscription_id, now, refused.status, refused.reason))
        log.info("push %s: %d %s", subscription_id[:8], refused.status, refused.reason)
        return _refusal(refused)

    def _record(self, attempt: Attempt) -> None:
        self.state.record(attempt)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


def _refusal(refused: Refused) -> web.Response:
    return web.json_response(
        {"code": refused.status, "error": _phrase(refused.status), "message": refused.reason},
        status=refused.status, headers=refused.headers)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _application_server_key(value: str | bytes | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        key = value
    else:
        try:
            key = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            raise ValueError("application_server_key is not base64url") from None
    if key is not None and (len(key) != 65 or key[0] != 0x04):
        raise ValueError("application_server_key must be a 65-byte uncompressed P-256 point")
    return key


# -- aiohttp handlers (wiring only) ---------------------------------------------------------

async def _push(request: web.Request) -> web.Response:
    return await request.app[SERVICE].handle_push(request)


async def _ready(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    return web.json_response({"status": "ready", "base_url": service.base_url})


async def _subscribe(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    body = await _json_body(request) if request.can_read_body else {}
    try:
        subscription = service.subscribe(body.get("application_server_key"))
    except (ValueError, TypeError) as err:
        raise _bad_request(str(err)) from None
    return web.json_response(subscription.to_json(), status=201, headers={
        "Location": f"/_control/subscriptions/{subscription.id}"})


async def _subscription(request: web.Request) -> web.Response:
    subscription = _find(request)
    key = subscription.application_server_key
    return web.json_response({
        "id": subscription.id, "subscription": subscription.to_json(),
        "online": subscription.online, "active": subscription.active,
        "application_server_key": None if key is None else base64.urlsafe_b64encode(key)
        .rstrip(b"=").decode(),
    })


async def _unsubscribe(request: web.Request) -> web.Response:
    request.app[SERVICE].unsubscribe(_find(request).id)
    return web.Response(status=204)


async def _online(request: web.Request) -> web.Response:
    subscription = _find(request)
    body = await _json_body(request)
    online = body.get("online")
    if not isinstance(online, bool):
        raise _bad_request('expected {"online": true|false}')
    delivered = request.app[SERVICE].set_online(subscription.id, online)
    return web.json_response({"delivered": [m.to_json() for m in delivered]})


async def _messages(request: web.Request) -> web.Response:
    messages = request.app[SERVICE].messages(_find(request).id)
    return web.json_response({"messages": [m.to_json() for m in messages]})


async def _attempts(request: web.Request) -> web.Response:
    attempts = request.app[SERVICE].attempts(_find(request).id)
    return web.json_response({"attempts": [a.to_json() for a in attempts]})


async def _script(request: web.Request) -> web.Response:
    subscription = _find(request)
    service = request.app[SERVICE]
    body = await _json_body(request)
    times = body.get("times", 1)
    try:
        if not isinstance(times, int):
            raise ValueError("times must be a whole number")
        if body.get("hang"):
            seconds = body.get("seconds", DEFAULT_HANG_SECONDS)
            if not isinstance(seconds, (int, float)):
                raise ValueError("seconds must be a number")
            service.hang_next(subscription.id, times=times, seconds=float(seconds))
        else:
            status, retry_after = body.get("status"), body.get("retry_after")
            if not isinstance(status, int) or not isinstance(retry_after, (int, type(None))):
                raise ValueError('expected {"status": 4xx|5xx, "times"?: n, "retry_after"?: s} '
                                 'or {"hang": true, "times"?: n, "seconds"?: s}')
            service.fail_next(subscription.id, status, times=times, retry_after=retry_after)
    except ValueError as err:
        raise _bad_request(str(err)) from None
    return web.Response(status=204)


async def _clear_script(request: web.Request) -> web.Response:
    request.app[SERVICE].clear_failures(_find(request).id)
    return web.Response(status=204)


def _find(request: web.Request) -> Subscription:
    try:
        return request.app[SERVICE].subscription(request.match_info["subscription"])
    except KeyError:
        raise web.HTTPNotFound(text='{"error": "no such subscription"}',
                               content_type="application/json") from None


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise _bad_request("the body is not JSON") from None
    if not isinstance(body, dict):
        raise _bad_request("the body must be a JSON object")
    return body


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")
