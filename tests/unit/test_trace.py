import pytest

from topics.trace import continue_or_start, trace_id

pytestmark = pytest.mark.unit
INCOMING = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_incoming_trace_is_continued_with_a_new_span():
    out = continue_or_start(INCOMING)
    assert trace_id(out) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert out != INCOMING and out.endswith("-01")


@pytest.mark.parametrize("bad", [None, "", "garbage", "01-" + INCOMING[3:],
                                 "00-" + "0" * 32 + "-00f067aa0ba902b7-01", INCOMING + "x"])
def test_anything_else_starts_a_new_trace(bad):
    out = continue_or_start(bad)
    assert trace_id(out) is not None and trace_id(out) != trace_id(bad)
