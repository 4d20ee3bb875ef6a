"""A real, local Web Push service for tests and `oo dev` (RFC 8030, 8291, 8292).

It speaks the protocol a browser vendor's push service speaks: HTTPS (with a
certificate from a local test CA, `oo.pushservice.ca`), VAPID checked, payloads
decrypted with the simulated browser's keys. Tests embed it
(`PushService.running`); `oo dev` runs it as a process
(`python -m oo.pushservice --port N --ca-dir DIR`) and drives it over its
control API (`oo.pushservice.client.ControlClient`).
"""

from oo.pushservice.ca import CertificateFiles, client_ssl_context, ensure_certificates
from oo.pushservice.server import PushService
from oo.pushservice.state import Attempt, ReceivedMessage, Subscription

__all__ = [
    "Attempt",
    "CertificateFiles",
    "PushService",
    "ReceivedMessage",
    "Subscription",
    "client_ssl_context",
    "ensure_certificates",
]
