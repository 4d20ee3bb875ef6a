import pytest

from web.ratelimit import RateLimiter, retry_after

pytestmark = pytest.mark.unit


def test_a_burst_is_allowed_then_refused_until_the_bucket_refills():
    limiter = RateLimiter(rate=2.0, burst=3)
    assert [limiter.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a", 0.0) == pytest.approx(0.5)
    assert limiter.take("a", 0.25) == pytest.approx(0.25)
    assert limiter.take("a", 0.5) == 0.0
    assert retry_after(0.25) == "1" and retry_after(2.1) == "3"


def test_keys_do_not_share_a_bucket():
    limiter = RateLimiter(rate=1.0, burst=1)
    assert limiter.take("a", 0.0) == 0.0 and limiter.take("a", 0.0) > 0
    assert limiter.take("b", 0.0) == 0.0


def test_the_bucket_never_holds_more_than_the_burst():
    limiter = RateLimiter(rate=10.0, burst=2)
    limiter.take("a", 0.0)
    assert [limiter.take("a", 1000.0) for _ in range(3)][2] > 0


def test_old_keys_are_forgotten_beyond_the_cap():
    limiter = RateLimiter(rate=1.0, burst=1, max_keys=2)
    for key in ("a", "b", "c"):
        limiter.take(key, 0.0)
    assert limiter.take("a", 0.0) == 0.0  # forgotten, so full again


def test_wait_tells_whether_a_request_fits_without_taking_one():
    limiter = RateLimiter(rate=0.5, burst=2)
    assert limiter.wait("a", 0.0) == 0.0 and limiter.wait("a", 0.0) == 0.0  # nothing taken
    limiter.take("a", 0.0)
    limiter.take("a", 0.0)
    assert limiter.wait("a", 0.0) == pytest.approx(2.0)
    assert limiter.wait("a", 1.0) == pytest.approx(1.0)
    assert limiter.wait("a", 2.0) == 0.0
    assert limiter.wait("b", 0.0) == 0.0
