"""Outbound calls to Todoist: timeouts, retries with jitter on 429/5xx, a circuit breaker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest

from adapters.connectors import ConnectorUnavailable, HttpPolicy, OutboundHttp
from adapters.credentials import Tokens
from adapters.todoist import TodoistConnector
from domain.push import BreakerConfig, RetryPolicy
from tests.peers.todoist import BASE, LocalTodoist, todoist  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def connector(session, peer: LocalTodoist, clock: Clock, **policy) -> TodoistConnector:
    http = OutboundHttp(session, "Todoist", HttpPolicy(**policy), sleep=clock.sleep,
                        jitter=lambda: 0.5, clock=clock)
    return TodoistConnector(http, client_id=peer.client_id, client_secret=peer.client_secret,
                            auth_url=BASE, api_url=BASE)


def grant(peer: LocalTodoist) -> Tokens:
    return Tokens(peer.token_for(peer.approve_as))


async def test_429_and_5xx_are_retried_with_jittered_backoff(session, todoist):  # noqa: F811
    clock = Clock()
    todoist_ = connector(session, todoist, clock)
    todoist.add_item(todoist.approve_as, "Call mum")
    todoist.fail_next(503, 429, 502)
    batch = await todoist_.fetch_signals("u", grant(todoist), None, now=datetime.now(UTC),
                                         time_zone="UTC")
    assert [s.title for s in batch.signals] == ["Call mum"]
    # 503 -> half of 0.5 s; 429 with Retry-After: 0 -> 0 s; 502 -> half of 2 s.
    assert clock.slept == [0.25, 0.0, 1.0]


async def test_it_gives_up_after_the_last_attempt_with_a_clear_error(session, todoist):  # noqa: F811
    clock = Clock()
    todoist_ = connector(session, todoist, clock,
                         retry=RetryPolicy(max_attempts=3, base_s=0.5, cap_s=4.0))
    todoist.fail_next(500, 500, 500)
    with pytest.raises(ConnectorUnavailable, match=r"Todoist did not answer usefully \(HTTP 500\)"):
        await todoist_.fetch_signals("u", grant(todoist), None, now=datetime.now(UTC),
                                     time_zone="UTC")
    assert len(clock.slept) == 2


async def test_the_breaker_opens_after_repeated_failures_and_probes_after_the_cool_down(
        session, todoist):  # noqa: F811
    clock = Clock()
    todoist_ = connector(session, todoist, clock,
                         retry=RetryPolicy(max_attempts=1), breaker=BreakerConfig(3, 30.0))
    tokens = grant(todoist)
    todoist.fail_next(503, 503, 503)
    for _ in range(3):
        with pytest.raises(ConnectorUnavailable):
            await todoist_.fetch_signals("u", tokens, None, now=datetime.now(UTC), time_zone="UTC")
    calls = len(todoist.requests)
    with pytest.raises(ConnectorUnavailable, match="too many failures"):
        await todoist_.fetch_signals("u", tokens, None, now=datetime.now(UTC), time_zone="UTC")
    assert len(todoist.requests) == calls  # refused here, Todoist not called
    clock.now += 31
    await todoist_.fetch_signals("u", tokens, None, now=datetime.now(UTC), time_zone="UTC")
    assert len(todoist.requests) == calls + 1


async def test_a_slow_todoist_times_out(session, todoist):  # noqa: F811
    clock = Clock()
    todoist_ = connector(session, todoist, clock, timeout_s=0.2,
                         retry=RetryPolicy(max_attempts=2, base_s=0.1, cap_s=0.1))
    todoist.delay_s = 1.0
    with pytest.raises(ConnectorUnavailable, match="no answer within the timeout"):
        await todoist_.fetch_signals("u", grant(todoist), None, now=datetime.now(UTC),
                                     time_zone="UTC")
