"""domain.push: payload size, headers, answers, retries and the circuit breaker."""

from __future__ import annotations

import json
import os
import random
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import http_ece
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from domain.push import (
    ELLIPSIS,
    MAX_ENCRYPTED_BYTES,
    MIN_BUDGET,
    PLAINTEXT_BUDGET,
    Breaker,
    BreakerConfig,
    Expired,
    Notification,
    PayloadTooLarge,
    PushConfig,
    PushOutcome,
    PushPlan,
    Retry,
    RetryPolicy,
    Shrink,
    Verdict,
    Withdrawal,
    admit,
    backoff_s,
    classify_error,
    classify_status,
    is_valid_topic,
    next_step,
    parse_retry_after,
    plan_tip,
    plan_withdrawal,
    record_failure,
    record_success,
    shrink,
    smaller_budget,
    topic_for,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
ENDPOINT = "https://fcm.googleapis.com/fcm/send/abc"


class Browser:
    """The receiving side of RFC 8291: a key pair and an auth secret."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        self.point = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)

    def encrypt(self, plaintext: bytes) -> bytes:
        """What pywebpush sends: aes128gcm, default record size, a fresh sender key."""
        sender = ec.generate_private_key(ec.SECP256R1())
        return bytes(http_ece.encrypt(plaintext, private_key=sender, dh=self.point,
                                      auth_secret=self.auth, version="aes128gcm"))

    def decrypt(self, body: bytes) -> bytes:
        return bytes(http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth,
                                      version="aes128gcm"))


@pytest.fixture(scope="module")
def browser() -> Browser:
    return Browser()


def note(title: str = "Call the dentist", body: str = "Before noon", url: str | None = "/t/1",
         ) -> Notification:
    return Notification(decision_id="d-1", tip_id="t-1", kind="todo", title=title, body=body, url=url)


# --- the byte budget ----------------------------------------------------------------------


def test_the_plaintext_budget_is_4096_minus_the_rfc_8188_overhead_of_one_record(browser):
    assert PLAINTEXT_BUDGET == 4096 - (16 + 4 + 1 + 65) - (1 + 16) == 3993
    assert len(browser.encrypt(b"x" * PLAINTEXT_BUDGET)) == MAX_ENCRYPTED_BYTES
    assert len(browser.encrypt(b"x" * (PLAINTEXT_BUDGET + 1))) > MAX_ENCRYPTED_BYTES


_ALPHABETS = (
    "abcdefghij klmnop",
    "日本語のテキスト",
    "😀👍🏽👨‍👩‍👧🇫🇷",
    "e\u0301a\u0308\u200d\ufe0f",
    '"\\\n\t\x00\x1f',
    "\ud800\udfff",  # lone surrogates, as JSON decoding can produce
)


def _random_text(rng: random.Random, max_len: int) -> str:
    chars = "".join(_ALPHABETS[: rng.randint(1, len(_ALPHABETS))])
    return "".join(rng.choice(chars) for _ in range(rng.randint(0, max_len)))


def test_a_tip_payload_always_encrypts_to_at_most_4096_bytes(browser):
    rng = random.Random(8030)
    for _ in range(300):
        n = Notification(decision_id="d" * rng.randint(1, 128), tip_id="t" * rng.randint(1, 128),
                         kind=rng.choice(["todo", "advice"]),
                         title=_random_text(rng, 500) or "x", body=_random_text(rng, 2000),
                         url=rng.choice([None, "/" + _random_text(rng, 2000)]))
        plaintext = n.render()
        body = browser.encrypt(plaintext)
        assert len(plaintext) <= PLAINTEXT_BUDGET and len(body) <= MAX_ENCRYPTED_BYTES
        shown = json.loads(browser.decrypt(body))
        assert (shown["decision_id"], shown["tip_id"]) == (n.decision_id, n.tip_id)


def test_a_short_tip_is_sent_whole():
    assert json.loads(note().render()) == {
        "v": 1, "type": "tip", "decision_id": "d-1", "tip_id": "t-1", "kind": "todo",
        "title": "Call the dentist", "body": "Before noon", "url": "/t/1"}


def test_a_long_body_is_cut_with_an_ellipsis_and_the_title_kept():
    long = note(body="word " * 2000)
    shown = json.loads(long.render())
    assert shown["title"] == "Call the dentist"
    assert shown["body"].endswith(ELLIPSIS) and long.body.startswith(shown["body"][:-1])
    assert len(long.render()) > PLAINTEXT_BUDGET - 10  # cut no more than needed


def test_the_title_is_cut_only_once_the_body_is_empty():
    cut = shrink(note(title="T" * 500, body="B" * 2000), budget=400)
    assert cut.body == "" and cut.title.endswith(ELLIPSIS) and cut.title.startswith("TTT")
    assert len(Notification.render(cut, 400)) <= 400


def test_an_overlong_deep_link_is_left_out_rather_than_the_text():
    shown = json.loads(note(url="/" + "x" * 1999).render())
    assert "url" not in shown and shown["body"] == "Before noon"


def test_cutting_never_splits_a_combining_sequence():
    text = "e\u0301" * 3000  # é as e + combining acute
    cut = shrink(note(body=text)).body
    assert cut.endswith(ELLIPSIS)
    assert not unicodedata.combining(cut[0]) and cut[-2] == "\u0301"


def test_lone_surrogates_become_replacement_characters():
    odd = Notification(decision_id="d\udfff", tip_id="t", kind="todo", title="a\ud800b")
    shown = json.loads(odd.render())
    assert (shown["title"], shown["decision_id"]) == ("a\ufffdb", "d\ufffd")


def test_a_payload_that_cannot_fit_even_without_text_is_refused():
    huge_ids = Notification(decision_id="d" * 128, tip_id="t" * 128, kind="todo", title="x")
    with pytest.raises(PayloadTooLarge):
        huge_ids.render(200)


def test_each_shrink_after_a_413_is_smaller_until_the_minimum():
    n = note(body="😀" * 2000, title="t" * 500)
    budget, sizes = PLAINTEXT_BUDGET, []
    while budget >= MIN_BUDGET:
        rendered = n.render(budget)
        assert len(rendered) <= budget
        sizes.append(len(rendered))
        budget = smaller_budget(len(rendered))
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes) > 3
    assert sizes[0] > PLAINTEXT_BUDGET - 8  # the first try fills the budget


def test_a_withdrawal_names_the_decision_to_close():
    assert json.loads(Withdrawal("d-9").render()) == {"v": 1, "type": "withdraw", "decision_id": "d-9"}


# --- headers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeTip:
    id: str = "t-1"
    kind: str = "todo"
    title: str = "Pay rent"
    body: str = ""
    deep_link: str | None = None


@dataclass(frozen=True)
class FakeDecision:
    decision_id: str = "d-1"
    user_id: str = "u-1"
    moment: str = "app_opened"
    expires_at: datetime | None = None
    tip: FakeTip = field(default_factory=FakeTip)


def test_a_tip_is_held_for_the_configured_hours_by_default():
    plan = plan_tip(FakeDecision(), NOW)
    assert isinstance(plan, PushPlan) and plan.ttl_s == 4 * 3600 and plan.urgency == "normal"


def test_the_ttl_never_outlives_the_tip():
    plan = plan_tip(FakeDecision(expires_at=NOW + timedelta(minutes=20)), NOW)
    assert isinstance(plan, PushPlan) and plan.ttl_s == 20 * 60


@pytest.mark.parametrize("left", [timedelta(0), timedelta(milliseconds=500), timedelta(hours=-1)])
def test_an_expired_tip_plans_no_push_rather_than_a_zero_ttl(left):
    assert isinstance(plan_tip(FakeDecision(expires_at=NOW + left), NOW), Expired)


def test_a_tip_about_to_expire_still_gets_a_ttl_of_at_least_one_second():
    plan = plan_tip(FakeDecision(expires_at=NOW + timedelta(seconds=1.5)), NOW)
    assert isinstance(plan, PushPlan) and plan.ttl_s == 1


@pytest.mark.parametrize("ttl", [0, -1, 7 * 24 * 3600])
def test_a_ttl_of_zero_or_weeks_is_a_configuration_error(ttl):
    with pytest.raises(ValueError, match="TTL"):
        PushConfig(ttl_s=ttl)


def test_due_soon_todos_are_high_urgency():
    plan = plan_tip(FakeDecision(moment="todo_due_soon"), NOW)
    assert isinstance(plan, PushPlan) and plan.urgency == "high"


def test_the_topic_is_32_url_safe_characters_stable_per_person_and_subscription():
    topic = topic_for("u-1", ENDPOINT)
    assert len(topic) == 32 and is_valid_topic(topic)
    assert topic == topic_for("u-1", ENDPOINT)
    assert topic != topic_for("u-2", ENDPOINT)
    assert topic != topic_for("u-1", ENDPOINT + "x")


def test_a_withdrawal_shares_the_tips_topic_so_it_replaces_it_undelivered():
    tip = plan_tip(FakeDecision(), NOW)
    assert isinstance(tip, PushPlan)
    assert plan_withdrawal("u-1", "d-1").topic(ENDPOINT) == tip.topic(ENDPOINT)


@pytest.mark.parametrize("topic", ["", "x" * 33, "a b", "a+b", "a/b", "a=b"])
def test_topics_outside_rfc_8030_are_invalid(topic):
    assert not is_valid_topic(topic)


# --- what an answer means ------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "action", "origin_failed"), [
    (200, "delivered", False), (201, "delivered", False), (202, "delivered", False),
    (301, "fail", False), (307, "fail", False),
    (400, "fail", False), (401, "fail", False), (403, "fail", False),
    (404, "gone", False), (410, "gone", False),
    (408, "retry", True), (413, "shrink", False), (429, "retry", True),
    (500, "retry", True), (502, "retry", True), (503, "retry", True), (504, "retry", True),
    (415, "fail", False), (418, "fail", False),
])
def test_push_service_answers_are_classified(status, action, origin_failed):
    verdict = classify_status(status, None, NOW)
    assert (verdict.action, verdict.origin_failed) == (action, origin_failed)
    assert str(status) in verdict.reason


def test_a_timeout_or_connection_error_is_retried_and_counts_against_the_origin():
    assert classify_error("no answer within 10 s") == Verdict("retry", "no answer within 10 s",
                                                              origin_failed=True)


def test_retry_after_in_seconds():
    assert parse_retry_after("30", NOW) == 30.0
    assert parse_retry_after(" 0 ", NOW) == 0.0


def test_retry_after_as_an_http_date():
    assert parse_retry_after(format_datetime(NOW + timedelta(seconds=90), usegmt=True), NOW) == 90.0
    assert parse_retry_after("Mon, 04 May 2026 11:00:00 GMT", NOW) == 0.0  # in the past


@pytest.mark.parametrize("garbage", [None, "", "soon", "-5", "1.5", "99999999999999", "٣٠",
                                     "Mon, 99 Foo 2026 11:00:00 GMT", "1e3"])
def test_unreadable_retry_after_means_back_off_instead(garbage):
    assert parse_retry_after(garbage, NOW) is None


def test_a_429_carries_its_retry_after():
    assert classify_status(429, "7", NOW).retry_after_s == 7.0


# --- retries ---------------------------------------------------------------------------------------

POLICY = RetryPolicy(max_attempts=5, base_s=0.5, cap_s=4.0, max_retry_after_s=60.0)


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 10, 100])
def test_backoff_is_full_jitter_under_an_exponential_ceiling_capped(attempt):
    ceiling = min(4.0, 0.5 * 2 ** (attempt - 1))
    samples = [backoff_s(attempt, POLICY, j / 100) for j in range(100)]
    assert min(samples) == 0.0 and max(samples) <= ceiling
    assert max(samples) >= 0.98 * ceiling
    assert len(set(samples)) == 100  # jitter spreads the retries


def test_a_transient_failure_is_retried_after_a_jittered_backoff():
    step = next_step(classify_status(503, None, NOW), 2, POLICY, 0.5)
    assert step == Retry(0.5, "push service answered 503 Service Unavailable")


def test_retry_after_is_honoured_when_within_bounds():
    step = next_step(classify_status(429, "12", NOW), 1, POLICY, 0.5)
    assert isinstance(step, Retry) and step.delay_s == 12.0


def test_a_retry_after_beyond_the_bound_fails_now_but_may_be_retried_later():
    step = next_step(classify_status(429, "3600", NOW), 1, POLICY, 0.5, http_status=429)
    assert isinstance(step, PushOutcome)
    assert (step.status, step.retryable, step.http_status) == ("failed", True, 429)
    assert "3600 s is beyond the 60 s" in step.reason


def test_retries_stop_after_max_attempts_with_the_last_reason():
    step = next_step(classify_status(500, None, NOW), 5, POLICY, 0.5, http_status=500)
    assert step == PushOutcome("failed", "push service answered 500 Internal Server Error; "
                               "gave up after 5 attempts", 5, 500, retryable=True)


def test_a_refusal_is_not_retried():
    step = next_step(classify_status(401, None, NOW), 1, POLICY, 0.5, http_status=401)
    assert isinstance(step, PushOutcome) and step.status == "failed" and not step.retryable
    assert "VAPID" in step.reason


def test_delivered_and_gone_end_at_once():
    delivered = next_step(classify_status(201, None, NOW), 1, POLICY, 0.5)
    gone = next_step(classify_status(410, None, NOW), 3, POLICY, 0.5)
    assert isinstance(delivered, PushOutcome) and delivered.status == "delivered"
    assert isinstance(gone, PushOutcome) and (gone.status, gone.attempts) == ("gone", 3)


def test_a_413_asks_for_a_smaller_payload():
    step = next_step(classify_status(413, None, NOW), 1, POLICY, 0.5, size=3993)
    assert isinstance(step, Shrink) and step.budget == 3993 - 998 and "413" in step.reason


def test_a_413_below_the_minimum_size_fails():
    step = next_step(classify_status(413, None, NOW), 1, POLICY, 0.5, size=MIN_BUDGET + 10)
    assert isinstance(step, PushOutcome) and step.status == "failed"


# --- circuit breaker -------------------------------------------------------------------------------

CFG = BreakerConfig(failure_threshold=3, cool_down_s=30.0)


def test_the_breaker_stays_closed_below_the_threshold():
    b = record_failure(record_failure(Breaker(), 0, CFG), 1, CFG)
    assert b.state == "closed" and admit(b, 2, CFG)[1]


def test_a_success_resets_the_count_of_failures():
    b = record_success(record_failure(record_failure(Breaker(), 0, CFG), 1, CFG))
    assert record_failure(b, 2, CFG).state == "closed"


def test_the_breaker_opens_after_consecutive_failures_and_refuses():
    b = Breaker()
    for t in range(3):
        b = record_failure(b, t, CFG)
    assert b.state == "open"
    assert admit(b, 2 + 29.9, CFG) == (b, False)


def test_after_the_cool_down_one_probe_goes_and_others_wait():
    opened = Breaker("open", 3, 100.0)
    probing, allowed = admit(opened, 130.0, CFG)
    assert allowed and probing.state == "half_open"
    assert admit(probing, 131.0, CFG) == (probing, False)


def test_a_successful_probe_closes_the_breaker():
    probing, _ = admit(Breaker("open", 3, 100.0), 130.0, CFG)
    assert record_success(probing) == Breaker()


def test_a_failed_probe_opens_it_again_for_another_cool_down():
    probing, _ = admit(Breaker("open", 3, 100.0), 130.0, CFG)
    again = record_failure(probing, 131.0, CFG)
    assert again.state == "open" and again.opened_at == 131.0
    assert not admit(again, 160.0, CFG)[1] and admit(again, 161.0, CFG)[1]


def test_a_probe_that_never_reports_is_replaced_after_a_cool_down():
    probing, _ = admit(Breaker("open", 3, 100.0), 130.0, CFG)
    assert admit(probing, 160.0, CFG)[1]
