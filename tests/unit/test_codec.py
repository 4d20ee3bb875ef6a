import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from topics.catalog import ALL_TOPICS, SIGNALS
from topics.codec import MAX_RECORD_BYTES, InvalidRecord, decode, encode
from topics.records import CalendarChanged, MoodLogged, TaskChanged, Tip, TipDecided

pytestmark = pytest.mark.unit
NOW = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)


def task(**overrides):
    fields = dict(event_id="e1", user_id="u1", occurred_at=NOW, source="test",
                  change="created", task_id="t1", title="Call mum", due_at=NOW, priority=2)
    return TaskChanged(**{**fields, **overrides})


def plain(record) -> dict:
    return json.loads(encode(record))


def test_records_round_trip_through_bytes():
    record = task()
    assert decode(TaskChanged, encode(record)) == record


def test_nested_tip_round_trips():
    decided = TipDecided(
        event_id="e", user_id="u", occurred_at=NOW, source="s", decision_id="d",
        triggered_by="e1", moment="app_opened", policy="random", propensity=0.25, reason="why",
        tip=Tip(id="a1", kind="advice", title="Stretch", source="catalogue", meta={"tags": ["x"]}),
        context_snapshot={"open_todos": 3},
    )
    assert decode(TipDecided, encode(decided)) == decided


def test_times_are_written_in_utc_and_offsets_are_normalised():
    paris = timezone(timedelta(hours=2))
    body = plain(task(occurred_at=datetime(2026, 6, 1, 10, 0, tzinfo=paris)))
    assert body["occurred_at"] == "2026-06-01T08:00:00Z"
    body["occurred_at"] = "2026-06-01T10:00:00+02:00"
    assert decode(TaskChanged, json.dumps(body).encode()).occurred_at == datetime(2026, 6, 1, 8, tzinfo=UTC)


def test_every_topic_declares_a_record_with_the_common_envelope():
    for spec in ALL_TOPICS:
        names = set(spec.record.__dataclass_fields__)
        assert {"event_id", "user_id", "occurred_at", "source", "version"} <= names, spec.name
    assert len({s.name for s in ALL_TOPICS}) == len(ALL_TOPICS)
    assert set(SIGNALS) == {"tasks", "habits", "calendar", "mood", "context", "lifecycle"}


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda b: b.pop("user_id"), "user_id: required field is missing"),
        (lambda b: b.update(extra=1), "extra: unknown field"),
        (lambda b: b.update(priority=9), "priority: 9 is above the maximum 4"),
        (lambda b: b.update(priority=True), "priority: expected an integer, got a boolean"),
        (lambda b: b.update(change="eaten"), "change: 'eaten' is not one of"),
        (lambda b: b.update(occurred_at="2026-01-01T08:00:00"), "occurred_at: time has no UTC offset"),
        (lambda b: b.update(occurred_at="yesterday"), "occurred_at: 'yesterday' is not an ISO 8601"),
        (lambda b: b.update(user_id=""), "user_id: length 0 is outside 1..128"),
        (lambda b: b.update(title="x" * 501), "title: length 501 is outside 1..500"),
        (lambda b: b.update(event_id=None), "event_id: must not be null"),
        (lambda b: b.update(version=2), "version: 2 is above the maximum 1"),
    ],
)
def test_invalid_fields_are_refused_with_a_reason_naming_the_field(mutate, reason):
    body = plain(task())
    mutate(body)
    with pytest.raises(InvalidRecord) as caught:
        decode(TaskChanged, json.dumps(body).encode())
    assert caught.value.reason.startswith(reason)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "empty message"),
        (b"\xff\xfe", "not UTF-8"),
        (b"{not json", "not valid JSON"),
        (b'{"score": NaN}', "not valid JSON"),
        (b"[1, 2]", "expected a JSON object, got a list"),
        (b" " * (MAX_RECORD_BYTES + 1), "the limit is"),
    ],
)
def test_bad_bytes_are_refused(raw, reason):
    with pytest.raises(InvalidRecord, match=reason):
        decode(MoodLogged, raw)


def test_cross_field_rules_are_checked():
    body = {"event_id": "e", "user_id": "u", "occurred_at": "2026-01-01T10:00:00Z", "source": "s",
            "change": "scheduled", "calendar_event_id": "c", "starts_at": "2026-01-01T10:00:00Z",
            "ends_at": "2026-01-01T09:00:00Z"}
    with pytest.raises(InvalidRecord, match="ends_at is before starts_at"):
        decode(CalendarChanged, json.dumps(body).encode())


def test_nested_field_errors_carry_their_path():
    decided = plain(TipDecided(
        event_id="e", user_id="u", occurred_at=NOW, source="s", decision_id="d", triggered_by="t",
        moment="m", policy="p", propensity=0.5, reason="r",
        tip=Tip(id="a", kind="advice", title="T", source="c")))
    decided["tip"]["kind"] = "poem"
    with pytest.raises(InvalidRecord, match=r"^tip\.kind: 'poem' is not one of"):
        decode(TipDecided, json.dumps(decided).encode())
