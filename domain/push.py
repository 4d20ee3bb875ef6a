"""Web Push decisions: what to send, with which headers, and what an answer means.

Pure: no clock, no socket, no randomness of its own. `now` and jitter samples
come in as arguments; the sending adapter (`adapters.webpush`) carries out the
steps decided here.

The size budget. A push service must accept 4096 octets of encrypted payload
(RFC 8030 §7.2, RFC 8291 §4). With `aes128gcm` (RFC 8188) and one record the
body is a header — salt (16) + record size (4) + key id length (1) + key id,
the sender's uncompressed P-256 key (65) = 86 — then the plaintext, a padding
delimiter (1) and the AEAD tag (16). So the plaintext may be 4096 - 86 - 17 =
3993 octets, the figure RFC 8291 §4 gives; the unit tests encrypt with
http_ece to check it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Literal, Protocol

MAX_ENCRYPTED_BYTES = 4096
AES128GCM_HEADER_BYTES = 16 + 4 + 1 + 65
AES128GCM_RECORD_OVERHEAD = 1 + 16
PLAINTEXT_BUDGET = MAX_ENCRYPTED_BYTES - AES128GCM_HEADER_BYTES - AES128GCM_RECORD_OVERHEAD  # 3993
# A deep link this long (encoded) is left out at once: the page finds the tip by its id.
MAX_URL_BYTES = 1024
# Below this a payload cannot carry even the ids; a 413 that pushes us here fails.
MIN_BUDGET = 256
ELLIPSIS = "\u2026"
PAYLOAD_VERSION = 1

Urgency = Literal["very-low", "low", "normal", "high"]
URGENCIES: tuple[Urgency, ...] = ("very-low", "low", "normal", "high")
TOPIC_LENGTH = 32  # RFC 8030 §5.4: at most 32 characters of the URL-safe base64 alphabet
_TOPIC_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
MAX_TTL_S = 24 * 3600  # a tip is about now: hours, never weeks
DEFAULT_TTL_S = 4 * 3600
# Moments that cannot wait for a device's next maintenance window.
HIGH_URGENCY_MOMENTS = frozenset({"todo_due_soon"})


class PayloadTooLarge(ValueError):
    """Even shrunk to its ids, the payload does not fit the byte budget."""


# --- payloads -----------------------------------------------------------------


def _encode(fields: dict[str, object]) -> bytes:
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _clean(text: str) -> str:
    """Replace lone surrogates (possible after JSON decoding) so the text encodes as UTF-8."""
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


def _joins_previous(c: str) -> bool:
    return bool(unicodedata.combining(c)) or c in "\u200d\ufe0e\ufe0f"


def _cut(text: str, keep: int, mark: str) -> str:
    """`text` cut to at most `keep` characters (not inside a combining cluster), plus `mark`."""
    if keep >= len(text):
        return text
    while keep > 0 and (_joins_previous(text[keep]) or text[keep - 1] == "\u200d"):
        keep -= 1
    return text[:keep].rstrip() + mark


def _shrink_text(text: str, fits: Callable[[str], bool], mark: str) -> str | None:
    """The longest cut of `text` that `fits`, or None when not even the shortest does.

    The encoded size grows with the kept length, so a binary search finds it.
    """
    if fits(text):
        return text
    low, high = 0, len(text) - 1  # the longest candidate still cuts something off
    if not fits(_cut(text, low, mark)):
        return None
    while low < high:
        mid = (low + high + 1) // 2
        if fits(_cut(text, mid, mark)):
            low = mid
        else:
            high = mid - 1
    return _cut(text, low, mark)


@dataclass(frozen=True, slots=True)
class Notification:
    """The tip as the service worker shows it; `render` fits it to a byte budget.

    JSON fields: `v` (payload version), `type` ("tip"), `decision_id`,
    `tip_id`, `kind` ("todo"/"advice"), `title`, `body`, and `url` (the deep
    link) when there is one.
    """

    decision_id: str
    tip_id: str
    kind: str
    title: str
    body: str = ""
    url: str | None = None

    def fields(self) -> dict[str, object]:
        out: dict[str, object] = {
            "v": PAYLOAD_VERSION, "type": "tip", "decision_id": self.decision_id,
            "tip_id": self.tip_id, "kind": self.kind, "title": self.title, "body": self.body,
        }
        if self.url is not None:
            out["url"] = self.url
        return out

    def render(self, budget: int = PLAINTEXT_BUDGET) -> bytes:
        """The JSON bytes, shrunk to at most `budget` bytes (see `shrink`)."""
        return _encode(shrink(self, budget).fields())


def shrink(notification: Notification, budget: int = PLAINTEXT_BUDGET) -> Notification:
    """The notification cut to fit `budget` encoded bytes.

    The body is shortened first (down to nothing), then the title (down to an
    ellipsis alone), both ending in an ellipsis when cut; a deep link is left
    out when it is very long or when nothing else helps. Raises
    PayloadTooLarge when even that does not fit.
    """
    o = notification
    n = Notification(_clean(o.decision_id), _clean(o.tip_id), _clean(o.kind), _clean(o.title),
                     _clean(o.body), None if o.url is None else _clean(o.url))

    def size(candidate: Notification) -> int:
        return len(_encode(candidate.fields()))

    if n.url is not None and len(json.dumps(n.url, ensure_ascii=False).encode()) - 2 > MAX_URL_BYTES:
        n = replace(n, url=None)
    if size(n) <= budget:
        return n
    for candidate in (n, replace(n, url=None)):
        fitted = _fit_body_then_title(candidate, lambda c: size(c) <= budget)
        if fitted is not None:
            return fitted
    raise PayloadTooLarge(f"a tip payload needs more than {budget} bytes even without title and body")


def _fit_body_then_title(n: Notification, fits: Callable[[Notification], bool]) -> Notification | None:
    body = _shrink_text(n.body, lambda b: fits(replace(n, body=b)), ELLIPSIS)
    if body is not None:
        return replace(n, body=body)
    bare = replace(n, body="")
    title = _shrink_text(bare.title, lambda t: fits(replace(bare, title=t)), ELLIPSIS)
    return None if title is None else replace(bare, title=title)


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """Close the notification of `decision_id` wherever it is shown.

    JSON fields: `v`, `type` ("withdraw"), `decision_id`.
    """

    decision_id: str

    def render(self, budget: int = PLAINTEXT_BUDGET) -> bytes:
        data = _encode({"v": PAYLOAD_VERSION, "type": "withdraw", "decision_id": _clean(self.decision_id)})
        if len(data) > budget:
            raise PayloadTooLarge(f"a withdrawal needs {len(data)} bytes, over the {budget} byte budget")
        return data


class Payload(Protocol):
    """Anything that renders itself into at most `budget` bytes, or raises PayloadTooLarge."""

    def render(self, budget: int = PLAINTEXT_BUDGET) -> bytes: ...


def smaller_budget(rejected_size: int) -> int:
    """The next budget after a push service refused `rejected_size` bytes (413).

    A quarter less each time, at least 256 bytes less; below MIN_BUDGET the
    sender gives up rather than keep cutting.
    """
    return rejected_size - max(256, rejected_size // 4)


# --- what to push for a decision ------------------------------------------------


class TipLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def deep_link(self) -> str | None: ...


class DecisionLike(Protocol):
    """The parts of a `TipDecided` record a push needs (the domain does not import topics)."""

    @property
    def decision_id(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def moment(self) -> str: ...
    @property
    def expires_at(self) -> datetime | None: ...
    @property
    def tip(self) -> TipLike: ...


@dataclass(frozen=True, slots=True)
class PushConfig:
    """How long a push may wait at the push service for an offline device."""

    ttl_s: int = DEFAULT_TTL_S

    def __post_init__(self) -> None:
        if not 1 <= self.ttl_s <= MAX_TTL_S:
            raise ValueError(f"push TTL {self.ttl_s} s is out of range; expected 1..{MAX_TTL_S} s")


DEFAULT_CONFIG = PushConfig()


@dataclass(frozen=True, slots=True)
class PushPlan:
    """One message for every subscription of a person: payload and headers."""

    user_id: str
    payload: Notification | Withdrawal
    ttl_s: int
    urgency: Urgency

    def topic(self, endpoint: str) -> str:
        return topic_for(self.user_id, endpoint)


@dataclass(frozen=True, slots=True)
class Expired:
    """No push: the tip is no longer worth showing."""

    reason: str


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def ttl_for(expires_at: datetime | None, now: datetime, config: PushConfig) -> int | None:
    """Seconds the push service may hold the message: the configured TTL, never past
    `expires_at`, at least 1 (0 would drop it for a device that is merely asleep).
    None when the tip has already expired."""
    if expires_at is None:
        return config.ttl_s
    left = int((_aware(expires_at) - _aware(now)).total_seconds())
    if left < 1:
        return None
    return min(config.ttl_s, left)


def urgency_for(moment: str) -> Urgency:
    """`high` for moments that lose their point within minutes, else `normal`."""
    return "high" if moment in HIGH_URGENCY_MOMENTS else "normal"


def plan_tip(decided: DecisionLike, now: datetime, config: PushConfig = DEFAULT_CONFIG) -> PushPlan | Expired:
    """The push for a decided tip, or Expired when its `expires_at` has passed."""
    ttl = ttl_for(decided.expires_at, now, config)
    if ttl is None:
        expired_at = decided.expires_at.isoformat() if decided.expires_at else "?"
        return Expired(f"tip {decided.decision_id} expired at {expired_at}")
    tip = decided.tip
    note = Notification(decision_id=decided.decision_id, tip_id=tip.id, kind=tip.kind,
                        title=tip.title, body=tip.body, url=tip.deep_link)
    return PushPlan(decided.user_id, note, ttl, urgency_for(decided.moment))


def plan_withdrawal(user_id: str, decision_id: str, config: PushConfig = DEFAULT_CONFIG) -> PushPlan:
    """The push that closes a shown notification. It shares the person's topic, so it
    also replaces the tip itself while that still waits undelivered."""
    return PushPlan(user_id, Withdrawal(decision_id), config.ttl_s, "normal")


def topic_for(user_id: str, endpoint: str) -> str:
    """The Topic header: 32 URL-safe base64 characters, the same for every message
    to one person on one subscription, so a newer message replaces an undelivered
    older one. Hashing in the endpoint keeps topics from linking one person's
    subscriptions across push services."""
    digest = hashlib.sha256(b"oo.push.topic\x00" + user_id.encode() + b"\x00" + endpoint.encode())
    return base64.urlsafe_b64encode(digest.digest()).decode()[:TOPIC_LENGTH]


def is_valid_topic(topic: str) -> bool:
    return 1 <= len(topic) <= TOPIC_LENGTH and set(topic) <= _TOPIC_ALPHABET


# --- push service answers ---------------------------------------------------------

Action = Literal["delivered", "gone", "shrink", "retry", "fail"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one attempt's answer means.

    `origin_failed` says whether the answer counts against the push service's
    health (circuit breaker): overload and outages do, a dead subscription doesn't.
    """

    action: Action
    reason: str
    retry_after_s: float | None = None
    origin_failed: bool = False


def _status_text(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


_FAIL_HINTS = {
    400: "the push service found the request malformed",
    401: "the push service rejected our VAPID credentials",
    403: "the push service refused our VAPID key for this subscription",
}


def classify_status(status: int, retry_after: str | None, now: datetime) -> Verdict:
    """Classify a push service's HTTP answer (RFC 8030 §5, §6 and §8.4)."""
    said = f"push service answered {_status_text(status)}"
    if 200 <= status < 300:
        return Verdict("delivered", said)
    if status in (404, 410):
        return Verdict("gone", f"{said}: the subscription expired or was unsubscribed")
    if status == 413:
        return Verdict("shrink", f"{said}: payload too large")
    if status == 429:
        return Verdict("retry", f"{said}: rate limited",
                       parse_retry_after(retry_after, now), origin_failed=True)
    if status == 408 or 500 <= status < 600:
        return Verdict("retry", said, parse_retry_after(retry_after, now), origin_failed=True)
    if 300 <= status < 400:
        return Verdict("fail", f"{said}: redirects are not followed")
    hint = _FAIL_HINTS.get(status)
    return Verdict("fail", f"{said}: {hint}" if hint else said)


def classify_error(description: str) -> Verdict:
    """A timeout or connection error: transient, and a mark against the origin."""
    return Verdict("retry", description, origin_failed=True)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP date.

    None when absent or unreadable (the caller backs off instead); a date in
    the past means 0.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit() and len(value) <= 10:
        return float(int(value))
    try:
        at = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, (_aware(at) - _aware(now)).total_seconds())


# --- retries ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds of retrying one push: attempts, exponential backoff, Retry-After."""

    max_attempts: int = 4
    base_s: float = 0.5
    cap_s: float = 30.0
    max_retry_after_s: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_s < 0 or self.cap_s < self.base_s:
            raise ValueError(f"invalid retry policy {self}")


def backoff_s(attempt: int, policy: RetryPolicy, jitter: float) -> float:
    """Full-jitter exponential backoff after failed attempt `attempt` (1-based):
    `jitter` (uniform in [0, 1)) times min(cap, base * 2**(attempt-1))."""
    ceiling = min(policy.cap_s, policy.base_s * 2.0 ** min(attempt - 1, 62))
    return max(0.0, min(jitter, 1.0)) * ceiling


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again after `delay_s` seconds."""

    delay_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class Shrink:
    """Render the payload again within `budget` bytes and try again at once."""

    budget: int
    reason: str


Status = Literal["delivered", "gone", "failed"]


@dataclass(frozen=True, slots=True)
class PushOutcome:
    """The end of one push to one subscription.

    `status`: delivered; gone (404/410: remove the subscription); failed, with
    `reason`. `retryable` says whether trying the same push later may succeed
    (outages, rate limits, an open circuit), as opposed to a refusal that will
    repeat (bad credentials, a refused endpoint).
    """

    status: Status
    reason: str
    attempts: int
    http_status: int | None = None
    retryable: bool = False


Step = Retry | Shrink | PushOutcome


def next_step(verdict: Verdict, attempt: int, policy: RetryPolicy, jitter: float,
              *, size: int = PLAINTEXT_BUDGET, http_status: int | None = None) -> Step:
    """After attempt number `attempt` (1-based) got `verdict`: retry, shrink, or stop.

    `size` is the plaintext size just sent (for a 413); `jitter` a uniform
    sample in [0, 1) for the backoff.
    """
    def end(status: Status, reason: str, retryable: bool = False) -> PushOutcome:
        return PushOutcome(status, reason, attempt, http_status, retryable)

    if verdict.action == "delivered":
        return end("delivered", verdict.reason)
    if verdict.action == "gone":
        return end("gone", verdict.reason)
    if verdict.action == "fail":
        return end("failed", verdict.reason)
    if attempt >= policy.max_attempts:
        return end("failed", f"{verdict.reason}; gave up after {attempt} attempts",
                   retryable=verdict.action == "retry")
    if verdict.action == "shrink":
        budget = smaller_budget(size)
        if budget < MIN_BUDGET:
            return end("failed", f"{verdict.reason}; cannot shrink below {MIN_BUDGET} bytes")
        return Shrink(budget, verdict.reason)
    if verdict.retry_after_s is not None:
        if verdict.retry_after_s > policy.max_retry_after_s:
            return end("failed", f"{verdict.reason}; Retry-After {verdict.retry_after_s:.0f} s "
                       f"is beyond the {policy.max_retry_after_s:.0f} s we wait", retryable=True)
        return Retry(verdict.retry_after_s, verdict.reason)
    return Retry(backoff_s(attempt, policy, jitter), verdict.reason)


# --- circuit breaker per push service origin -------------------------------------------


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Open after `failure_threshold` failures in a row; probe again after `cool_down_s`."""

    failure_threshold: int = 5
    cool_down_s: float = 30.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.cool_down_s < 0:
            raise ValueError(f"invalid breaker config {self}")


@dataclass(frozen=True, slots=True)
class Breaker:
    """Health of one push service origin, as seen from here.

    closed: pushes go out. open: they are refused until `cool_down_s` after
    `opened_at`. half_open: one probe goes out (another only if it has not
    reported within a cool-down, e.g. it was cancelled); success closes the
    breaker, failure opens it again. Times are seconds on one monotonic clock.
    """

    state: Literal["closed", "open", "half_open"] = "closed"
    failures: int = 0
    opened_at: float = 0.0
    probe_started_at: float | None = None


def admit(breaker: Breaker, now: float, config: BreakerConfig) -> tuple[Breaker, bool]:
    """May a push go to this origin now? Returns the new state and the answer."""
    if breaker.state == "closed":
        return breaker, True
    if breaker.state == "open":
        if now - breaker.opened_at < config.cool_down_s:
            return breaker, False
        return replace(breaker, state="half_open", probe_started_at=now), True
    probe = breaker.probe_started_at
    if probe is not None and now - probe < config.cool_down_s:
        return breaker, False
    return replace(breaker, probe_started_at=now), True


def record_success(breaker: Breaker) -> Breaker:
    """The origin answered sanely: close the breaker and forget past failures."""
    return Breaker()


def record_failure(breaker: Breaker, now: float, config: BreakerConfig) -> Breaker:
    """The origin failed (timeout, connection error, 5xx, 429)."""
    if breaker.state == "half_open":
        return Breaker("open", breaker.failures + 1, now, None)
    failures = breaker.failures + 1
    if breaker.state == "open" or failures >= config.failure_threshold:
        return Breaker("open", failures, now, None)
    return replace(breaker, failures=failures)
