import pytest

from agents.counters import Counters

pytestmark = pytest.mark.unit


def test_counters_render_prometheus_text():
    counters = Counters()
    counters.inc("oo_dead_letters_total", "topic", 'oo.signals."x"')
    counters.inc("oo_dead_letters_total", "topic", 'oo.signals."x"')
    counters.inc("oo_signals_folded_total", "domain", "mood")
    text = counters.prometheus()
    assert '# TYPE oo_dead_letters_total counter' in text
    assert 'oo_dead_letters_total{topic="oo.signals.\\"x\\""} 2' in text
    assert 'oo_signals_folded_total{domain="mood"} 1' in text
