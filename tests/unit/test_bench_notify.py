"""The notifier benchmark's arithmetic: the open-loop clock, latency summaries, ratios, verdicts."""

from __future__ import annotations

import json
import math

import pytest

from bench.notify import (
    combine_rounds,
    due_count,
    finite,
    gc_figures,
    latency_summary,
    median_ratio,
    per_core,
    round_sizes,
    verdict,
)

pytestmark = pytest.mark.unit


def test_nothing_is_due_before_the_clock_starts() -> None:
    assert due_count(-0.001, 1000, 5000) == 0


def test_the_first_send_is_due_at_time_zero() -> None:
    assert due_count(0.0, 1000, 5000) == 1


def test_sends_become_due_one_per_interval() -> None:
    assert due_count(0.0009, 1000, 5000) == 1
    assert due_count(0.001, 1000, 5000) == 2
    assert due_count(1.0, 1000, 5000) == 1001


def test_due_sends_never_exceed_the_total() -> None:
    assert due_count(60.0, 1000, 5000) == 5000


def test_latency_summary_uses_nearest_rank_percentiles() -> None:
    summary = latency_summary([float(ms) for ms in range(1, 101)], 100, limit_ms=20)
    assert (summary["p50"], summary["p90"], summary["p99"], summary["max"]) == (50, 90, 99, 100)
    assert summary["over_limit"] == 80
    assert summary["answered"] == summary["count"] == 100


def test_a_push_never_answered_counts_as_infinitely_late() -> None:
    summary = latency_summary([1.0] * 98, 100, limit_ms=20)
    assert summary["p50"] == 1.0
    assert math.isinf(summary["p99"]) and math.isinf(summary["max"])
    assert summary["over_limit"] == 2
    assert summary["answered"] == 98


def test_more_latencies_than_pushes_is_a_bug() -> None:
    with pytest.raises(ValueError):
        latency_summary([1.0, 2.0], 1, limit_ms=20)


def test_median_ratio_pairs_each_run_with_its_own_baseline() -> None:
    # per-run ratios 10, 4 and 6: the median is 6, not 2000/300 from the medians
    assert median_ratio([2000, 1200, 3000], [200, 300, 500]) == 6


def test_median_ratio_needs_one_baseline_per_run() -> None:
    with pytest.raises(ValueError):
        median_ratio([1.0, 2.0], [1.0])


def test_verdict_for_a_floor_includes_the_target() -> None:
    assert verdict(2000, 2000, at_least=True) == "MET"
    assert verdict(1999.9, 2000, at_least=True) == "MISSED"


def test_verdict_for_a_ceiling_excludes_the_target() -> None:
    assert verdict(19.9, 20, at_least=False) == "MET"
    assert verdict(20, 20, at_least=False) == "MISSED"
    assert verdict(math.inf, 20, at_least=False) == "MISSED"


def test_a_figure_that_could_not_be_measured_misses() -> None:
    assert verdict(math.nan, 10, at_least=True) == "MISSED"
    assert verdict(math.nan, 20, at_least=False) == "MISSED"


def test_per_core_turns_cpu_microseconds_into_a_rate() -> None:
    assert per_core(100) == 10_000
    assert per_core(0) == math.inf


def test_finite_writes_unmeasurable_figures_as_json_null() -> None:
    figures = {"p99": math.inf, "runs": [1.5, math.nan], "name": "x"}
    assert json.loads(json.dumps(finite(figures))) == {"p99": None, "runs": [1.5, None], "name": "x"}


def test_pushes_are_split_into_as_few_even_rounds_as_allowed() -> None:
    assert round_sizes(5000, 2000) == [1667, 1667, 1666]
    assert round_sizes(4000, 2000) == [2000, 2000]
    assert round_sizes(1500, 2000) == [1500]


def test_a_round_needs_a_push() -> None:
    with pytest.raises(ValueError):
        round_sizes(0, 2000)


def _round(pushes: int, seconds: float, cpu_s: float, latencies: list[float]) -> dict[str, object]:
    return {"pushes": pushes, "delivered": len(latencies), "failed": pushes - len(latencies),
            "seconds": seconds, "cpu_s": cpu_s, "peer_cpu_s": cpu_s / 2,
            "gc_pauses": [(0, 1.0), (2, 3.0)], "latencies_ms": latencies}


def test_rounds_combine_over_their_summed_time_and_every_push() -> None:
    combined = combine_rounds([_round(100, 1.0, 0.5, [1.0] * 100),
                               _round(100, 3.0, 1.5, [30.0] * 99)], limit_ms=20)
    assert combined["rate"] == 199 / 4.0  # not the mean of 100/s and 33/s
    assert combined["cpu_us"] == 2.0 / 200 * 1e6
    assert combined["cores"] == 0.5 and combined["peer_cores"] == 0.25
    assert combined["failed"] == 1 and combined["over_20ms"] == 100  # 99 slow + 1 lost
    assert combined["latency_ms"]["p50"] == 1.0
    assert math.isinf(combined["latency_ms"]["max"])
    assert (combined["gc_count"], combined["gc_full"], combined["gc_max_ms"]) == (4, 2, 3.0)


def test_gc_figures_count_full_collections_and_the_longest_pause() -> None:
    figures = gc_figures([(0, 0.5), (1, 2.0), (2, 40.0), (0, 0.5)])
    assert figures == {"gc_count": 4, "gc_full": 1, "gc_total_ms": 43.0, "gc_max_ms": 40.0}
    assert gc_figures([])["gc_max_ms"] == 0.0
