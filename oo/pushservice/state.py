"""What the push service remembers: subscriptions (the browser side), messages, scripts.

All in memory, no IO; every method that depends on time takes `now`. A
`Subscription` plays the user agent: it owns the P-256 key pair and the
16-byte auth secret a browser would make, and decrypts what arrives.

Delivery model: an *online* subscription (the default) has each accepted
message delivered at once. An *offline* one keeps messages pending until it
comes online again; a pending message expires after its TTL (TTL 0: at once,
RFC 8030 §5.2), and a new message with the Topic of a pending one replaces it
(§5.4) — the replaced message stays in the record, marked so.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

import http_ece
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from oo.pushservice.protocol import PushHeaders, Refused, VapidIdentity

MessageStatus = Literal["delivered", "pending", "replaced", "expired"]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class Subscription:
    """One push subscription and the simulated browser behind it."""

    id: str
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth_secret: bytes
    application_server_key: bytes | None
    created_at: float
    online: bool = True
    active: bool = True  # False once unsubscribed: pushes then get 410 Gone

    @property
    def p256dh(self) -> str:
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return b64url(raw)

    @property
    def auth(self) -> str:
        return b64url(self.auth_secret)

    def to_json(self) -> dict[str, object]:
        """Exactly what a browser's `PushSubscription.toJSON()` returns."""
        return {"endpoint": self.endpoint, "expirationTime": None,
                "keys": {"p256dh": self.p256dh, "auth": self.auth}}

    def decrypt(self, body: bytes) -> bytes:
        """Decrypt an aes128gcm body (RFC 8291) as the browser would; Refused(400) if it can't."""
        try:
            return bytes(http_ece.decrypt(body, private_key=self.private_key,
                                          auth_secret=self.auth_secret, version="aes128gcm"))
        except (http_ece.ECEException, InvalidTag, ValueError, TypeError, IndexError) as err:
            detail = str(err) or type(err).__name__
            raise Refused(400, f"payload does not decrypt with this subscription's keys "
                          f"(RFC 8291 aes128gcm): {detail}") from None


@dataclass
class ReceivedMessage:
    """A push message the service accepted (201), with its decrypted payload."""

    id: str
    subscription_id: str
    payload: bytes
    ttl: int
    urgency: str | None
    topic: str | None
    received_at: float
    vapid_subject: str
    vapid_key: str
    status: MessageStatus = "pending"
    delivered_at: float | None = None
    replaces: str | None = None  # id of the pending message this one replaced
    replaced_by: str | None = None

    @property
    def text(self) -> str | None:
        """The payload as UTF-8 text, or None if it isn't."""
        try:
            return self.payload.decode("utf-8")
        except UnicodeDecodeError:
            return None

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id, "subscription_id": self.subscription_id,
            "payload": b64url(self.payload), "text": self.text,
            "ttl": self.ttl, "urgency": self.urgency, "topic": self.topic,
            "received_at": self.received_at, "vapid_subject": self.vapid_subject,
            "vapid_key": self.vapid_key, "status": self.status,
            "delivered_at": self.delivered_at, "replaces": self.replaces,
            "replaced_by": self.replaced_by,
        }


@dataclass(frozen=True)
class Attempt:
    """One request to a push endpoint and how it was answered (status 0: left hanging)."""

    subscription_id: str
    at: float
    status: int
    reason: str
    message_id: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"subscription_id": self.subscription_id, "at": self.at, "status": self.status,
                "reason": self.reason, "message_id": self.message_id}


@dataclass(frozen=True)
class ScriptedResponse:
    """A failure to answer instead of processing: an HTTP status, or hanging."""

    status: int | None = None  # None: hang
    retry_after: int | None = None
    hang_seconds: float | None = None


@dataclass
class PushState:
    """Subscriptions, accepted messages, every attempt, and scripted failures."""

    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    messages: list[ReceivedMessage] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    scripts: dict[str, deque[ScriptedResponse]] = field(default_factory=dict)

    def subscribe(self, push_base: str, *, now: float,
                  application_server_key: bytes | None = None) -> Subscription:
        """A new subscription as a browser makes it: fresh P-256 keys and auth secret."""
        subscription_id = secrets.token_urlsafe(24)
        subscription = Subscription(
            id=subscription_id, endpoint=f"{push_base.rstrip('/')}/push/{subscription_id}",
            private_key=ec.generate_private_key(ec.SECP256R1()), auth_secret=os.urandom(16),
            application_server_key=application_server_key, created_at=now,
        )
        self.subscriptions[subscription_id] = subscription
        return subscription

    def get(self, subscription_id: str) -> Subscription:
        """The subscription, active or not; KeyError if it never existed."""
        return self.subscriptions[subscription_id]

    def unsubscribe(self, subscription_id: str) -> None:
        subscription = self.get(subscription_id)
        subscription.active = False
        self.scripts.pop(subscription_id, None)

    def script(self, subscription_id: str, response: ScriptedResponse, times: int) -> None:
        self.get(subscription_id)
        self.scripts.setdefault(subscription_id, deque()).extend([response] * times)

    def clear_script(self, subscription_id: str) -> None:
        self.get(subscription_id)
        self.scripts.pop(subscription_id, None)

    def next_scripted(self, subscription_id: str) -> ScriptedResponse | None:
        queue = self.scripts.get(subscription_id)
        return queue.popleft() if queue else None

    def record(self, attempt: Attempt) -> None:
        self.attempts.append(attempt)

    def accept(self, subscription: Subscription, payload: bytes, headers: PushHeaders,
               identity: VapidIdentity, *, now: float) -> ReceivedMessage:
        """Store an accepted message: deliver it, or keep it pending, replacing by Topic."""
        self._expire(now)
        message = ReceivedMessage(
            id=secrets.token_urlsafe(16), subscription_id=subscription.id, payload=payload,
            ttl=headers.ttl, urgency=headers.urgency, topic=headers.topic, received_at=now,
            vapid_subject=identity.subject, vapid_key=identity.public_key,
        )
        if headers.topic is not None:
            for older in self.messages:
                if (older.subscription_id == subscription.id and older.status == "pending"
                        and older.topic == headers.topic):
                    older.status = "replaced"
                    older.replaced_by = message.id
                    message.replaces = older.id
        if subscription.online:
            message.status, message.delivered_at = "delivered", now
        elif message.ttl == 0:
            message.status = "expired"  # TTL 0: delivered only if the browser is there now
        self.messages.append(message)
        return message

    def set_online(self, subscription_id: str, online: bool, *, now: float
                   ) -> list[ReceivedMessage]:
        """Bring the simulated browser on or off line; return what got delivered now."""
        subscription = self.get(subscription_id)
        subscription.online = online
        if not online:
            return []
        self._expire(now)
        delivered = [m for m in self.messages
                     if m.subscription_id == subscription_id and m.status == "pending"]
        for message in delivered:
            message.status, message.delivered_at = "delivered", now
        return delivered

    def messages_for(self, subscription_id: str, *, now: float) -> list[ReceivedMessage]:
        """Every accepted message of a subscription, oldest first (replaced ones too)."""
        self.get(subscription_id)
        self._expire(now)
        return [m for m in self.messages if m.subscription_id == subscription_id]

    def attempts_for(self, subscription_id: str) -> list[Attempt]:
        self.get(subscription_id)
        return [a for a in self.attempts if a.subscription_id == subscription_id]

    def _expire(self, now: float) -> None:
        for message in self.messages:
            if message.status == "pending" and message.received_at + message.ttl <= now:
                message.status = "expired"
