"""The rate-limit baseline: sliding-window maxima counted by hand, the time basis, the limit scan."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detector.evaluate.baseline import RequestTimes, best_limit, max_window_counts
from detector.ingest.formats import parse_lines

from ..conftest import nginx_line

# client a starts: 0, 10, 59.9, 60, 61, 130. Windows [t, t+60) from each start hold:
#   [0, 60): 0 10 59.9 = 3      [10, 70): 10 59.9 60 61 = 4 (the busiest: it slides past the first request)
#   [59.9, 119.9): 3            [60, 120): 2      [61, 121): 1      [130, 190): 1
# With 10 s windows: [59.9, 69.9) holds 59.9 60 61 = 3; every other window holds 1.
# client b: three requests at the same instant = 3.   client c: one request = 1.
A = [0.0, 10.0, 59.9, 60.0, 61.0, 130.0]


def frame_for(times_by_client: dict[str, list[float]], base: float = 0.0):
    pairs = [(c, base + t) for c, ts in times_by_client.items() for t in ts]
    rng = np.random.default_rng(7)
    order = rng.permutation(len(pairs))  # input order must not matter
    return np.array([pairs[i][0] for i in order], dtype=object), np.array([pairs[i][1] for i in order])


@pytest.mark.parametrize("base", [0.0, 1_764_403_200.0])
def test_sliding_window_max_by_hand(base):
    clients, times = frame_for({"a": A, "b": [5.0, 5.0, 5.0], "c": [42.0]}, base)
    assert max_window_counts(clients, times, 60.0).to_dict() == {"a": 4, "b": 3, "c": 1}
    assert max_window_counts(clients, times, 10.0)["a"] == 3
    # the window is half-open: a request exactly 60 s after another is not in its window
    assert max_window_counts(np.array(["x", "x"], dtype=object), np.array([base, base + 60.0]), 60.0)["x"] == 1
    assert max_window_counts(np.array(["x", "x"], dtype=object), np.array([base, base + 59.999]), 60.0)["x"] == 2


def test_empty_input():
    assert max_window_counts(np.array([], dtype=object), np.array([])).empty
    assert RequestTimes().max_counts().empty


def test_windows_count_request_starts_or_ends_when_the_format_has_no_duration():
    # one request held 30 s (start 1000, end 1030), the next held 60 s (start 1050, end 1110):
    # by start both fall in [1000, 1060) -> 2; by end (1030, 1110) they are 80 s apart -> 1.
    json_lines = [nginx_line("192.0.2.1", 1030.0, 30.0), nginx_line("192.0.2.1", 1110.0, 60.0)]
    times = RequestTimes()
    batch = parse_lines(json_lines, "nginx-json")
    times.add(batch.events, batch.stats)
    assert times.max_counts()["192.0.2.1"] == 2
    assert times.basis == "request start time"
    assert times.stats.parsed == 2

    combined = ['192.0.2.1 - - [01/Jan/1970:00:17:10 +0000] "GET /v1/poll HTTP/1.1" 200 0 "-" "curl"',
                '192.0.2.1 - - [01/Jan/1970:00:18:30 +0000] "GET /v1/poll HTTP/1.1" 200 0 "-" "curl"']
    times = RequestTimes()
    times.add(parse_lines(combined, "nginx-combined").events)
    assert times.max_counts()["192.0.2.1"] == 1
    assert times.basis == "request end time (the log has no durations)"

    times.add(parse_lines(json_lines, "nginx-json").events)
    assert times.basis == "request start time (end time for 2 requests without a duration)"


def test_a_request_counts_once_though_envoy_also_logged_its_start():
    import orjson

    rec = {"downstream_remote_address": "192.0.2.1:4000", "path": "/v1/poll", "method": "GET"}
    lines = [orjson.dumps({**rec, "start_time": f"1970-01-01T00:16:{s:02d}Z", "access_log_type": kind,
                           "response_code": 0 if kind == "DownstreamStart" else 204,
                           "duration": None if kind == "DownstreamStart" else 25000})
             for s in (40, 50) for kind in ("DownstreamStart", "DownstreamEnd")]
    times = RequestTimes()
    times.add(parse_lines(lines, "envoy-json").events)
    assert times.requests == 2 and times.without_duration == 0
    assert times.max_counts()["192.0.2.1"] == 2


def test_best_limit_scans_every_distinct_rate():
    # rates 10 50 5 60, abusive: 50 and 60.
    #   L=59: TP1 FP0 FN1 -> F1 2/3;  L=49: TP2 -> 1.0;  L=9: TP2 FP1 -> 4/5;  L=4: TP2 FP2 -> 4/6;
    #   L=60 (flag nobody): 0.
    result = best_limit(np.array([10, 50, 5, 60]), np.array([False, True, False, True]))
    assert result.limit == 49
    assert dict(zip(result.curve["limit"], result.curve["f1"])) == pytest.approx(
        {60: 0.0, 59: 2 / 3, 49: 1.0, 9: 4 / 5, 4: 4 / 6})
    assert result.flags(np.array([49, 50])).tolist() == [False, True]


def test_best_limit_ties_go_to_the_more_lenient_limit():
    # rates 4 and 2 abusive, 3 3 1 1 normal:
    #   L=4: nobody, 0;  L=3: TP1 FP0 FN1 = 2/3;  L=2: TP1 FP2 FN1 = 2/5;  L=1: TP2 FP2 = 4/6 = 2/3;  L=0: 4/8.
    # L=3 and L=1 tie; 3 is the more lenient limit.
    result = best_limit(np.array([4, 2, 3, 3, 1, 1]), np.array([True, True, False, False, False, False]))
    assert result.limit == 3


def test_best_limit_without_attackers_or_requests():
    assert best_limit(np.array([3, 5]), np.array([False, False])).limit == 5  # flag nobody
    quiet = best_limit(np.array([0, 0]), np.array([True, False]))
    assert quiet.limit == 0 and quiet.curve["f1"].tolist() == [0.0]


def test_a_start_record_shows_its_request_when_it_starts():
    import orjson

    rec = {"downstream_remote_address": "192.0.2.7:4000", "path": "/v1/poll", "method": "GET"}
    start = orjson.dumps({**rec, "start_time": "1970-01-01T00:16:40Z", "access_log_type": "DownstreamStart",
                          "response_code": 0, "duration": None})
    end = orjson.dumps({**rec, "start_time": "1970-01-01T00:16:40Z", "access_log_type": "DownstreamEnd",
                        "response_code": 204, "duration": 25000})
    since = pd.Series({"192.0.2.7": 990.0})
    with_start, ends_only = RequestTimes(), RequestTimes()
    with_start.add(parse_lines([start, end], "envoy-json").events)
    ends_only.add(parse_lines([end], "envoy-json").events)
    # begun at 1000 (16:40), answered at 1025: the start record showed it at 1000, the end line at 1025
    assert with_start.first_seen(since).to_dict() == {"192.0.2.7": 1000.0}
    assert ends_only.first_seen(since).to_dict() == {"192.0.2.7": 1025.0}
