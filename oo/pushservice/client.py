"""A small blocking client of the push service's control API (for `oo dev` and scripts).

    control = ControlClient("https://127.0.0.1:18443", ca_file)
    control.wait_ready(timeout=30)
    subscription_json = control.subscribe(application_server_key=vapid_public_key)
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from oo.pushservice.ca import client_ssl_context


class ControlError(RuntimeError):
    """The control API answered with an error, or could not be reached."""


class ControlClient:
    """Blocking calls to /_control/ over HTTPS, trusting the test CA only."""

    def __init__(self, base_url: str, ca_file: Path, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.ca_file = Path(ca_file)
        self.timeout = timeout

    def ready(self) -> bool:
        """Whether the service answers /_control/ready (a missing CA file means not yet)."""
        try:
            return self._call("GET", "/_control/ready").get("status") == "ready"
        except (ControlError, OSError):
            return False

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                raise ControlError(f"push service at {self.base_url} not ready after {timeout:.0f}s")
            time.sleep(0.2)

    def subscribe(self, application_server_key: str | None = None) -> dict[str, Any]:
        """A new simulated browser subscription: PushSubscription.toJSON()."""
        return self._call("POST", "/_control/subscriptions",
                          {"application_server_key": application_server_key})

    def messages(self, subscription_id: str) -> list[dict[str, Any]]:
        """Accepted messages, decrypted (`text`, and `payload` as base64url)."""
        found: list[dict[str, Any]] = self._call("GET", self._path(subscription_id, "messages"))[
            "messages"]
        return found

    def attempts(self, subscription_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._call("GET", self._path(subscription_id, "attempts"))[
            "attempts"]
        return found

    def fail_next(self, subscription_id: str, status: int, *, times: int = 1,
                  retry_after: int | None = None) -> None:
        self._call("POST", self._path(subscription_id, "failures"),
                   {"status": status, "times": times, "retry_after": retry_after})

    def hang_next(self, subscription_id: str, *, times: int = 1, seconds: float = 3600.0) -> None:
        self._call("POST", self._path(subscription_id, "failures"),
                   {"hang": True, "times": times, "seconds": seconds})

    def clear_failures(self, subscription_id: str) -> None:
        self._call("DELETE", self._path(subscription_id, "failures"))

    def set_online(self, subscription_id: str, online: bool) -> list[dict[str, Any]]:
        delivered: list[dict[str, Any]] = self._call(
            "PUT", self._path(subscription_id, "online"), {"online": online})["delivered"]
        return delivered

    def unsubscribe(self, subscription_id: str) -> None:
        self._call("DELETE", self._path(subscription_id))

    @staticmethod
    def subscription_id(endpoint: str) -> str:
        """The id in an endpoint URL (…/push/<id>)."""
        return urlsplit(endpoint).path.rsplit("/", 1)[-1]

    def _path(self, subscription_id: str, action: str = "") -> str:
        path = f"/_control/subscriptions/{subscription_id}"
        return f"{path}/{action}" if action else path

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            context = client_ssl_context(self.ca_file)
            with urllib.request.urlopen(request, timeout=self.timeout, context=context) as reply:
                text = reply.read()
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace").strip()
            err.close()
            raise ControlError(f"{method} {path}: {err.code} {detail}") from None
        except (urllib.error.URLError, OSError) as err:
            raise ControlError(f"{method} {path}: {err}") from None
        result: dict[str, Any] = json.loads(text) if text else {}
        return result
