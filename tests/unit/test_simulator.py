from datetime import UTC, datetime, timedelta

import pytest

from oo.simulator import person_id, simulate_people
from topics.codec import decode, encode
from topics.records import LifecycleChanged

pytestmark = pytest.mark.unit
START = datetime(2026, 11, 22, 6, tzinfo=UTC)


def test_a_simulation_is_reproducible_and_in_event_time_order():
    first = list(simulate_people(5, START, 2, seed=3))
    assert first == list(simulate_people(5, START, 2, seed=3))
    times = [record.occurred_at for _, record in first]
    assert times == sorted(times) and all(START <= t < START + timedelta(days=2) for t in times)
    for topic, record in first:
        assert decode(type(record), encode(record)) == record, topic


def test_each_person_starts_with_an_account_and_ids_are_unique_per_run():
    events = list(simulate_people(3, START, 1, seed=1))
    created = [r for _, r in events if isinstance(r, LifecycleChanged)]
    assert {r.user_id for r in created} == {person_id("sim", i) for i in range(3)}
    later = list(simulate_people(3, START + timedelta(days=1), 1, seed=1))
    assert not {r.event_id for _, r in events} & {r.event_id for _, r in later}
    assert len({r.event_id for _, r in events}) == len(events)


def test_one_time_zone_can_be_imposed():
    events = simulate_people(4, START, 1, seed=2, time_zone="Asia/Tokyo")
    zones = {r.time_zone for _, r in events if isinstance(r, LifecycleChanged)}
    assert zones == {"Asia/Tokyo"}
