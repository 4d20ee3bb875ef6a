import base64
from datetime import UTC, datetime

import pytest

from topics.catalog import SIGNALS
from topics.codec import InvalidRecord, decode, encode
from topics.records import DeadLettered, MoodLogged
from topics.validation import dead_letter, decode_event

pytestmark = pytest.mark.unit
NOW = datetime(2026, 1, 1, tzinfo=UTC)
MOOD = MoodLogged(event_id="e1", user_id="alice", occurred_at=NOW, source="test", score=-1)


def test_a_valid_event_keyed_by_its_user_decodes():
    assert decode_event(SIGNALS["mood"], b"alice", encode(MOOD)) == MOOD


@pytest.mark.parametrize("key", [None, b"bob"])
def test_an_event_keyed_by_another_user_is_refused(key):
    with pytest.raises(InvalidRecord, match="keyed by user_id"):
        decode_event(SIGNALS["mood"], key, encode(MOOD))


def test_dead_letter_keeps_reason_raw_bytes_and_a_stable_id():
    kwargs = dict(topic="oo.signals.mood", partition=2, offset=41, key=b"alice",
                  value=b"\x00garbage", reason="not valid JSON", now=NOW)
    letter = dead_letter(**kwargs)
    assert letter.reason == "not valid JSON" and letter.user_id == "alice"
    assert base64.b64decode(letter.raw) == b"\x00garbage"
    assert dead_letter(**kwargs).event_id == letter.event_id
    assert dead_letter(**{**kwargs, "offset": 42}).event_id != letter.event_id
    assert decode(DeadLettered, encode(letter)) == letter


def test_dead_letter_of_a_binary_key_has_no_user():
    letter = dead_letter(topic="t", partition=0, offset=0, key=b"\xff\x00", value=None,
                         reason="r", now=NOW)
    assert letter.user_id is None and base64.b64decode(letter.key) == b"\xff\x00"


def test_a_dead_letter_of_a_huge_message_is_itself_a_valid_record():
    from datetime import UTC, datetime

    from topics.codec import decode, encode
    from topics.records import DeadLettered
    from topics.validation import RAW_KEPT, dead_letter

    letter = dead_letter(topic="oo.signals.mood", partition=0, offset=7, key=b"u",
                         value=b"x" * 150_000, reason="record: too large", now=datetime.now(UTC))
    again = decode(DeadLettered, encode(letter))
    assert again == letter and "truncated to the first 40000 of 150000 bytes" in letter.reason
    assert len(letter.raw) == 4 * -(-RAW_KEPT // 3)  # base64 of the first RAW_KEPT bytes
