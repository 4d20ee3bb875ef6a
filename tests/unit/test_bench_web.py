"""The web benchmark's pure helpers: requests on the wire, response framing, open-loop
scheduling, percentiles, verdicts, page weight and reading a Lighthouse report."""

from __future__ import annotations

import gzip
import math

import pytest

from bench import lighthouse
from bench.web import median_ratio, page_weight, per_request_us, spread, verdict
from bench.webload import (
    ProtocolError,
    build_request,
    bursts,
    due_count,
    parse_response,
    summarize,
)

pytestmark = pytest.mark.unit


def test_a_get_request_is_one_keep_alive_head_without_a_body() -> None:
    raw = build_request("GET", "/api/tip", host="127.0.0.1:8080", headers={"Cookie": "oo_session=t"})
    assert raw == b"GET /api/tip HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nCookie: oo_session=t\r\n\r\n"


def test_a_post_request_carries_its_body_and_its_length() -> None:
    raw = build_request("POST", "/api/context", host="h", headers={"Content-Type": "application/json"},
                        body=b'{"kind":"page_visible"}')
    head, body = raw.split(b"\r\n\r\n")
    assert b"Content-Length: 23" in head.split(b"\r\n")
    assert body == b'{"kind":"page_visible"}'


def test_an_empty_post_still_says_its_length_is_zero() -> None:
    assert b"Content-Length: 0\r\n" in build_request("POST", "/x", host="h")


RESPONSE = (b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n"
            b'{"status": "accepted"}')


def test_a_response_is_complete_only_once_its_whole_body_is_in() -> None:
    assert parse_response(RESPONSE[:30]) is None
    assert parse_response(RESPONSE[:-1]) is None
    assert parse_response(RESPONSE) == (202, len(RESPONSE))


def test_bytes_after_a_response_belong_to_the_next_one() -> None:
    status, length = parse_response(RESPONSE + b"HTTP/1.1 200 OK\r\n")  # type: ignore[misc]
    assert (status, length) == (202, len(RESPONSE))


def test_a_response_without_a_body_length_ends_with_its_head() -> None:
    raw = b"HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n"
    assert parse_response(raw) == (204, len(raw))


def test_header_names_are_matched_whatever_their_case() -> None:
    raw = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"
    assert parse_response(raw) == (200, len(raw))


def test_chunked_or_garbled_responses_are_refused_rather_than_misframed() -> None:
    with pytest.raises(ProtocolError):
        parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
    with pytest.raises(ProtocolError):
        parse_response(b"SSH-2.0-OpenSSH\r\n\r\n")


def test_open_loop_sends_follow_the_clock_the_first_at_zero() -> None:
    assert due_count(-0.001, 1000, 5000) == 0
    assert due_count(0.0, 1000, 5000) == 1
    assert due_count(0.0105, 1000, 5000) == 11
    assert due_count(1.0, 1000, 5000) == 1001


def test_open_loop_never_plans_more_than_the_total() -> None:
    assert due_count(60.0, 1000, 5000) == 5000


def test_slow_requests_close_together_make_one_burst() -> None:
    assert bursts([0.30, 0.0, 0.05, 0.12, 2.0, 2.01], gap_s=0.1) == [[0.0, 0.12, 3], [0.3, 0.3, 1],
                                                                    [2.0, 2.01, 2]]
    assert bursts([], gap_s=0.1) == []


def test_percentiles_are_nearest_rank_values_that_were_observed() -> None:
    s = summarize([float(x) for x in range(1, 101)])
    assert (s["p50"], s["p90"], s["p99"], s["max"]) == (50.0, 90.0, 99.0, 100.0)


def test_an_unanswered_request_counts_as_infinitely_late() -> None:
    s = summarize([1.0] * 98, expected=100)
    assert s["p50"] == 1.0
    assert s["p99"] == math.inf and s["max"] == math.inf


def test_more_answers_than_requests_is_a_bug_not_a_figure() -> None:
    with pytest.raises(ValueError):
        summarize([1.0, 2.0], expected=1)


def test_no_latencies_give_no_figures() -> None:
    assert math.isnan(summarize([])["p99"])


def test_verdicts_compare_against_the_target_and_nan_is_missed() -> None:
    assert verdict(3100, 3000, at_least=True) == "MET"
    assert verdict(2999, 3000, at_least=True) == "MISSED"
    assert verdict(19.9, 20, at_least=False) == "MET"
    assert verdict(20.0, 20, at_least=False) == "MISSED"
    assert verdict(math.nan, 20, at_least=False) == "MISSED"


def test_ratios_are_medians_of_per_run_ratios() -> None:
    assert median_ratio([100, 300, 200], [200, 300, 1000]) == 0.5
    with pytest.raises(ValueError):
        median_ratio([1], [1, 2])


def test_cpu_per_request_is_nan_when_nothing_was_served() -> None:
    assert per_request_us(0.5, 1000) == 500.0
    assert math.isnan(per_request_us(0.5, 0))


def test_page_weight_sums_each_file_raw_and_gzipped() -> None:
    bodies = {"/": b"<!doctype html>" * 100, "/static/oo.css": b"body{}"}
    weight = page_weight(bodies)
    assert weight["bytes"] == 1500 + 6
    assert weight["files"]["/"]["gzip"] == len(gzip.compress(bodies["/"], compresslevel=6, mtime=0))
    assert weight["gzip"] == sum(f["gzip"] for f in weight["files"].values())


def test_post_phases_stay_within_each_persons_share_of_the_limiter() -> None:
    assert spread(2000, 10) == 20000


REPORT = {
    "lighthouseVersion": "12.8.2",
    "categories": {
        "performance": {"score": 0.76, "auditRefs": [
            {"id": "total-blocking-time", "weight": 30}, {"id": "largest-contentful-paint", "weight": 25},
            {"id": "first-contentful-paint", "weight": 10}, {"id": "uses-long-cache-ttl", "weight": 0}]},
        "accessibility": {"score": 0.99, "auditRefs": [
            {"id": "aria-allowed-role", "weight": 1}, {"id": "color-contrast", "weight": 7}]},
        "best-practices": {"score": None, "auditRefs": []},
    },
    "audits": {
        "total-blocking-time": {"title": "Total Blocking Time", "score": 0.28, "displayValue": "980 ms"},
        "largest-contentful-paint": {"title": "LCP", "score": 0.91, "displayValue": "2.4 s"},
        "first-contentful-paint": {"title": "FCP", "score": 1, "displayValue": "0.8 s"},
        "uses-long-cache-ttl": {"title": "cache", "score": 0.5},
        "aria-allowed-role": {"title": "roles", "score": 0},
        "color-contrast": {"title": "contrast", "score": 1},
    },
}


def test_lighthouse_scores_are_whole_percentages_and_none_when_unscored() -> None:
    assert lighthouse.scores(REPORT) == {"performance": 76, "accessibility": 99,
                                         "best-practices": None}


def test_lost_points_list_only_weighted_audits_below_one_worst_first() -> None:
    lost = lighthouse.lost_points(REPORT)
    assert [a["id"] for a in lost["performance"]] == ["total-blocking-time",
                                                      "largest-contentful-paint"]
    assert lost["performance"][0]["value"] == "980 ms"
    assert [a["id"] for a in lost["accessibility"]] == ["aria-allowed-role"]
    assert lost["best-practices"] == []


def test_metrics_are_read_as_lighthouse_displays_them() -> None:
    assert lighthouse.metrics(REPORT) == {"first-contentful-paint": "0.8 s",
                                          "largest-contentful-paint": "2.4 s",
                                          "total-blocking-time": "980 ms"}


def test_the_lighthouse_command_uses_the_three_categories_and_the_chromium_flags() -> None:
    from pathlib import Path

    args = lighthouse.command("http://127.0.0.1:1/", Path("/tmp/r.json"), {"Cookie": "oo_session=x"})
    assert "--only-categories=performance,accessibility,best-practices" in args
    assert any(a.startswith("--chrome-flags=--headless=new --no-sandbox") for a in args)
    assert '--extra-headers={"Cookie": "oo_session=x"}' in args
