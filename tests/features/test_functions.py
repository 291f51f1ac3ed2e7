"""Each feature function against values worked out by hand.

The fixture window is 60 s wide, ending at t=100 (events ending in (40, 100]):

client a (ua "A", then "B"):
  1. start 40.0 end 65.0  (25 s hold, 204; starts on the window's edge)
  2. start 65.5 end 90.5  (25 s, 200, 300 bytes)
  3. start 91.0 end 91.1  (0.1 s, 499, ua B)
client b (one ua):
  1. start 50 end 50.05 (429)   2. start 50.05 end 50.1 (429)   3. start 50.1 end 50.15 (503)
  4. start 70 end 70.05 (404, path /x)
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from detector.features import functions as f
from detector.features.view import ClientEvents, EventArrays, Interner, poll_paths

from ..conftest import events


@pytest.fixture
def ev() -> ClientEvents:
    frame = events([
        dict(client="a", start=40.0, end=65.0, status=204),
        dict(client="a", start=65.5, end=90.5, status=200, bytes=300),
        dict(client="a", start=91.0, end=91.1, status=499, ua="B"),
        dict(client="b", start=50.0, end=50.05, status=429),
        dict(client="b", start=50.05, end=50.1, status=429),
        dict(client="b", start=50.1, end=50.15, status=503),
        dict(client="b", start=70.0, end=70.05, status=404, path="/x"),
        dict(client="c", start=10.0, end=39.0),  # ended before the window: not counted
    ])
    return ClientEvents.from_frame(frame, at=100.0, width=60.0, clients=np.array(["a", "b"], dtype=object))


def test_counts_and_rates(ev):
    np.testing.assert_allclose(f.requests_per_minute(ev), [3, 4])  # 60 s window: counts are per minute
    np.testing.assert_allclose(f.user_agents(ev), [2, 1])
    np.testing.assert_allclose(f.requests_per_ua_per_minute(ev), [1.5, 4])


def test_status_counts_per_ua(ev):
    np.testing.assert_allclose(f.aborts_per_ua_per_minute(ev), [0.5, 0])  # one 499 over two UAs
    np.testing.assert_allclose(f.client_errors_top_ua_per_minute(ev), [0, 1])  # the 404 only
    np.testing.assert_allclose(f.throttled_per_ua_per_minute(ev), [0, 2])
    np.testing.assert_allclose(f.server_errors_per_ua_per_minute(ev), [0, 1])


def test_rates_scale_to_a_minute_on_short_windows():
    frame = events([dict(client="a", start=95.0, end=95.5), dict(client="a", start=96.0, end=96.5)])
    ev10 = ClientEvents.from_frame(frame, at=100.0, width=10.0)
    np.testing.assert_allclose(f.requests_per_minute(ev10), [12.0])  # 2 in 10 s = 12 per minute


def test_hold_and_concurrency(ev):
    np.testing.assert_allclose(f.median_hold_seconds(ev), [25.0, 0.05])
    # a: overlaps 25 + 25 + 0.1 = 50.1 s over 60 s, 2 UAs -> 0.4175
    # b: 0.05 * 4 = 0.2 s over 60 s, 1 UA -> 0.003333
    np.testing.assert_allclose(f.concurrency_per_ua(ev), [50.1 / 60 / 2, 0.2 / 60])


def test_concurrency_clips_requests_that_started_before_the_window():
    frame = events([dict(client="a", start=30.0, end=55.0)])  # 25 s hold, 15 s inside (40, 100]
    ev = ClientEvents.from_frame(frame, at=100.0, width=60.0)
    # the request covers 30..55; inside the window (40, 100] that is 40..55 = 15 s, over 60 s
    np.testing.assert_allclose(f.concurrency_per_ua(ev), [15 / 60])


def test_gaps(ev):
    # a: 65.5-65.0 = 0.5, 91.0-90.5 = 0.5 -> median 0.5
    # b: 50.05-50.05 = 0, 50.1-50.1 = 0, 70-50.15 = 19.85 -> median 0
    np.testing.assert_allclose(f.median_gap_seconds(ev), [0.5, 0.0], atol=1e-9)
    # after a 429/5xx: only b has errors followed by a request: gaps 0, 0, 19.85 -> median 0
    out = f.gap_after_error_seconds(ev)
    assert math.isnan(out[0])
    assert out[1] == pytest.approx(0.0, abs=1e-9)


def test_bytes_and_paths(ev):
    np.testing.assert_allclose(f.bytes_per_request(ev), [100.0, 0.0])
    np.testing.assert_allclose(f.paths_per_ua(ev), [0.5, 2.0])  # a: /v1/poll over 2 UAs; b: /v1/poll, /x


def test_path_entropy_and_the_share_outside_the_long_poll_endpoint(ev):
    # the server holds a's two polls of /v1/poll for 25 s (a, the one client holding a request 5 s or
    # more, holds it there): /v1/poll is the long-poll endpoint, its hold 25 s.
    # a: 3 requests, all /v1/poll -> entropy 0, none outside. b: /v1/poll x3, /x x1 -> entropy
    # -(3/4 log2 3/4 + 1/4 log2 1/4) = 0.75 * 0.415037 + 0.5 = 0.811278; a quarter outside.
    np.testing.assert_allclose(f.path_entropy(ev), [0.0, 0.811278], atol=1e-6)
    np.testing.assert_allclose(f.outside_poll_share(ev), [0.0, 0.25])
    # without durations (combined logs) nothing shows which endpoint holds: NaN, not a guess
    frame = events([dict(client="a", start=50.0, end=50.0, duration=np.nan, path="/x"),
                    dict(client="a", start=60.0, end=60.0, duration=np.nan)])
    blind = ClientEvents.from_frame(frame, at=100.0, width=60.0)
    assert np.isnan(f.outside_poll_share(blind)).all()
    np.testing.assert_allclose(f.path_entropy(blind), [1.0])  # two paths, one request each: 1 bit


def test_timing_irregularity():
    # starts 0, 10, 20, 30: diffs 10,10,10 -> cv 0 (machine-perfect); starts 0, 1, 3: diffs 1, 2 -> std 0.5 / mean 1.5
    frame = events([dict(client="p", start=s, end=s + 0.01) for s in (0, 10, 20, 30)]
                   + [dict(client="q", start=s, end=s + 0.01) for s in (0, 1, 3)]
                   + [dict(client="r", start=5, end=5.01)])
    ev = ClientEvents.from_frame(frame, at=31.0, width=60.0, clients=np.array(["p", "q", "r"], dtype=object))
    out = f.timing_irregularity(ev)
    assert out[0] == pytest.approx(0.0, abs=1e-9)
    assert out[1] == pytest.approx(0.5 / 1.5)
    assert math.isnan(out[2])


def test_missing_durations_degrade_to_nan():
    frame = events([dict(client="a", start=50.0, end=50.0, duration=float("nan"))])
    ev = ClientEvents.from_frame(frame, at=100.0, width=60.0)
    assert math.isnan(f.median_hold_seconds(ev)[0])
    assert math.isnan(f.concurrency_per_ua(ev)[0])
    assert f.requests_per_minute(ev)[0] == 1.0


def test_clients_without_events_get_zero_counts():
    frame = events([dict(client="a", start=50.0, end=51.0)])
    ev = ClientEvents.from_frame(frame, at=100.0, width=60.0, clients=np.array(["a", "zz"], dtype=object))
    np.testing.assert_allclose(f.requests_per_minute(ev), [1.0, 0.0])
    np.testing.assert_allclose(f.user_agents(ev), [1.0, 0.0])


def test_busiest_agent_concurrency():
    # client f: ua X holds two polls 40..100 (60 s each in the window), ua Y one 70..100 (30 s)
    # per UA: X = 120 / 60 = 2.0, Y = 30 / 60 = 0.5 -> busiest 2.0; the per-UA mean is 2.5 / 2 = 1.25
    frame = events([dict(client="f", start=40, end=100, ua="X"), dict(client="f", start=40, end=100, ua="X"),
                    dict(client="f", start=70, end=100, ua="Y")])
    ev = ClientEvents.from_frame(frame, at=100.0, width=60.0)
    np.testing.assert_allclose(f.busiest_agent_concurrency(ev), [2.0])
    np.testing.assert_allclose(f.concurrency_per_ua(ev), [1.25])


def test_bytes_and_quick_requests_per_ua(ev):
    # a: 300 bytes over 2 UAs in one minute -> 150; quick (< 1 s) requests: the 0.1 s 499 -> 1 / 2 UAs
    # b: 0 bytes; quick: all four (0.05 s each) -> 4
    np.testing.assert_allclose(f.bytes_per_ua_per_minute(ev), [150.0, 0.0])
    np.testing.assert_allclose(f.quick_requests_per_ua_per_minute(ev), [0.5, 4.0])


def test_population_failing_share_counts_every_client_in_the_window(ev):
    # the window (40, 100] holds clients a and b (c ended at 39); b got 429s and a 503 -> 1 of 2 clients
    np.testing.assert_allclose(f.population_failing_share(ev), [0.5, 0.5])
    # asked about "a" only, the share still counts everyone active: a ok, b failing, d failing -> 2 / 3
    only_a = ClientEvents.from_frame(events([
        dict(client="a", start=40.0, end=65.0), dict(client="b", start=50.0, end=50.05, status=429),
        dict(client="b", start=50.1, end=50.15, status=200), dict(client="d", start=60.0, end=60.1, status=503),
        dict(client="c", start=10.0, end=39.0, status=503),
    ]), at=100.0, width=60.0, clients=np.array(["a"], dtype=object))
    np.testing.assert_allclose(f.population_failing_share(only_a), [2 / 3])


def test_gaps_follow_each_user_agent_apart():
    # two browsers behind one address, interleaved: X polls 0..10, 10.5..20; Y polls 5..15, 15.2..25
    # by client alone the gaps would be 5-10 -> 0, 10.5-15 -> 0, ...; per UA they are 0.5 and 0.2
    frame = events([dict(client="n", start=0, end=10, ua="X"), dict(client="n", start=10.5, end=20, ua="X"),
                    dict(client="n", start=5, end=15, ua="Y"), dict(client="n", start=15.2, end=25, ua="Y")])
    ev = ClientEvents.from_frame(frame, at=30.0, width=60.0)
    np.testing.assert_allclose(f.median_gap_seconds(ev), [0.35])


def test_repeated_answers_count_the_same_request_answered_again():
    # r replays cursor=0 four times with data (3 repeats, of which the third counts: asking once or twice
    # more is ordinary), plus one empty 204 and one 404 of the same request that do not count; m moves its cursor
    # on (no repeat); 30 s window -> counts x 2 per minute
    frame = events([
        dict(client="r", start=71, end=71.1, query="cursor=0", bytes=30_000),
        dict(client="r", start=72.1, end=72.2, query="cursor=0", bytes=30_000),
        dict(client="r", start=73, end=73.1, query="cursor=0", bytes=31_000),
        dict(client="r", start=73.5, end=73.6, query="cursor=0", bytes=32_000),
        dict(client="r", start=74, end=99, query="cursor=0", status=204),
        dict(client="r", start=99, end=99.5, query="cursor=0", status=404, bytes=100),
        dict(client="m", start=71, end=80, query="cursor=5", bytes=500),
        dict(client="m", start=80, end=90, query="cursor=6", bytes=500),
        dict(client="m", start=90, end=95, query="cursor=7", bytes=500, ua="other"),
        dict(client="m", start=96, end=96.1, method="POST", path="/v1/publish", bytes=20),  # writes never
        dict(client="m", start=97, end=97.1, method="POST", path="/v1/publish", bytes=20),  # repeat
        # n: two colleagues behind one NAT, one browser build, poll cursor=3 at once and are answered
        # together (a repeat, but asked before the first answer came: no replay); s loads one script
        # bundle four times (3 repeats, the third counts; not of a poll)
        dict(client="n", start=80, end=90, query="cursor=3", bytes=400),
        dict(client="n", start=81, end=90.001, query="cursor=3", bytes=400),
        *[dict(client="s", start=t, end=t + 0.2, path="/static/app.js", bytes=190_000) for t in (75, 80, 85, 95)],
        # v: a PDF viewer fetching one file by ranges (206), one after the other: parts, not repeats
        *[dict(client="v", start=t, end=t + 0.5, path="/doc.pdf", status=206, bytes=65_536) for t in (80, 81, 82)],
        # w: /big answered at 76, asked again at 77 (a slow answer, until 81: a repeat), at 78 (while the
        # slow one still runs, but after the first had come: a repeat too) and at 79.5 (the third: it counts)
        dict(client="w", start=75, end=76, path="/big", bytes=1_000),
        dict(client="w", start=77, end=81, path="/big", bytes=1_000),
        dict(client="w", start=78, end=79, path="/big", bytes=1_000),
        dict(client="w", start=79.5, end=80, path="/big", bytes=1_000),
    ])
    ev = ClientEvents.from_frame(frame, at=100.0, width=30.0,
                                 clients=np.array(["r", "m", "n", "s", "v", "w"], dtype=object))
    # n's colleagues asked at once (neither had the answer yet): no repeat
    np.testing.assert_allclose(f.repeated_answers_top_read_per_minute(ev), [2.0, 0.0, 0.0, 2.0, 0.0, 2.0])
    # the counted repeats' bytes, twice a minute: r's fourth answer (32,000), s's fourth bundle, w's 79.5
    np.testing.assert_allclose(f.repeated_bytes_top_read_per_minute(ev),
                               [64_000.0, 0.0, 0.0, 380_000.0, 0.0, 2_000.0])
    # writes: m's two POSTs in 30 s, 4 a minute over its 2 user agents = 2
    np.testing.assert_allclose(f.writes_per_ua_per_minute(ev), [0.0, 2.0, 0.0, 0.0, 0.0, 0.0])
    # user agents on a single request answered within 1 s: none (m's "other" made one poll, held 5 s;
    # every other agent asked two or more times)
    np.testing.assert_allclose(f.quick_one_off_agents(ev), [0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    # r, m and n each held a request 5 s or more, all on /v1/poll: the long-poll endpoint. Replays: r's
    # three, each asked after the earlier answer; the third counts
    np.testing.assert_allclose(f.replayed_polls_top_read_per_minute(ev), [2.0, 0.0, 0.0, 0.0, 0.0, 0.0])


def test_repeats_count_the_most_repeated_read_asked_again_later():
    # t: a phone with four tabs on one channel, one user agent. Two polls held 5 s, the tabs asking at once
    # (no repeat); after each, the four tabs fetch the new message one after the other, 0.1 s apart, once
    # the first answer had come; then a poll answered at once, asked by the tabs one after the other. Each
    # read is asked 4 times, but within a second of its first answer (AGAIN_AFTER): no repeat at all
    rows = []
    for i, t in enumerate((71.0, 77.0)):
        for tab in range(4):
            rows.append(dict(client="t", start=t + 0.05 * tab, end=t + 5 + 0.05 * tab, query=f"cursor={i}",
                             bytes=600))
            rows.append(dict(client="t", start=t + 5.2 + 0.1 * tab, end=t + 5.21 + 0.1 * tab,
                             path=f"/v1/messages/{40 + i}", bytes=1_500))
    rows += [dict(client="t", start=83.0 + 0.1 * tab, end=83.02 + 0.1 * tab, query="cursor=2", bytes=600)
             for tab in range(4)]
    # k: three messages, each asked again 2, 4 and 6 s after its first answer (3 repeats each, the third
    # counts: asking once or twice more is ordinary): summed 3, but its most repeated read drew 1 -> 2 a
    # minute
    rows += [dict(client="k", start=t0 + dt, end=t0 + dt + 0.01, path=f"/v1/messages/{m}", bytes=900)
             for m, t0 in ((7, 71.0), (8, 79.0), (9, 87.0)) for dt in (0.0, 2.0, 4.0, 6.0)]
    # l: a loop fetching one file five times (4 repeats, 2 count) beside one page it loads three times (2
    # repeats, none counted): its most repeated read drew 2 -> 4 a minute, and 2 x 190,000 bytes -> 760,000
    rows += [dict(client="l", start=t, end=t + 0.2, path="/static/app.js", bytes=190_000)
             for t in (72, 76, 80, 84, 88)]
    rows += [dict(client="l", start=t, end=t + 0.1, path="/", bytes=6_000) for t in (73, 81, 90)]
    ev = ClientEvents.from_frame(events(rows), at=100.0, width=30.0,
                                 clients=np.array(["t", "k", "l"], dtype=object))
    np.testing.assert_allclose(f.repeated_answers_top_read_per_minute(ev), [0.0, 2.0, 4.0])
    np.testing.assert_allclose(f.repeated_bytes_top_read_per_minute(ev), [0.0, 2 * 900.0, 2 * 380_000.0])
    # /v1/poll, held 5 s, is the window's long-poll endpoint; t's tabs replayed none of its polls
    np.testing.assert_allclose(f.replayed_polls_top_read_per_minute(ev), [0.0, 0.0, 0.0])


def test_a_request_answered_at_once_without_a_body_again_and_again_is_a_repeat():
    # 30 s window (70, 100]. u: a WebSocket upgrade (101) dropped 0.2 s later and asked again 2 s on, five
    # times: 4 repeats, from the third on 2 count -> 4 a minute. h: its poll held 3 s (a short hold) and
    # answered empty (204), asked again as it is, five times: no repeat (not within a second). d: one
    # address redirected (302, 150 bytes) at once, four times 1.5 s apart: 3 repeats, 1 counts -> 2 a
    # minute. v: parts of one file (206) fetched at once, five times: never a repeat. e: refused (404) at
    # once, five times: an error, no answer to repeat (failed_paths and the 4xx counts see it)
    rows = [dict(client="u", start=t, end=t + 0.2, path="/v1/ws", status=101) for t in (71, 73, 75, 77, 79)]
    rows += [dict(client="h", start=t, end=t + 3, status=204) for t in (71, 75, 79, 83, 87)]
    rows += [dict(client="d", start=t, end=t + 0.05, status=302, bytes=150) for t in (80, 81.5, 83, 84.5)]
    rows += [dict(client="v", start=t, end=t + 0.3, path="/doc.pdf", status=206, bytes=65_536)
             for t in (80, 82, 84, 86, 88)]
    rows += [dict(client="e", start=t, end=t + 0.01, path="/admin", status=404) for t in (80, 82, 84, 86, 88)]
    ev = ClientEvents.from_frame(events(rows), at=100.0, width=30.0,
                                 clients=np.array(["u", "h", "d", "v", "e"], dtype=object))
    np.testing.assert_allclose(f.repeated_answers_top_read_per_minute(ev), [4.0, 0.0, 2.0, 0.0, 0.0])
    # their bytes: u's answers carry none; d's counted redirect 150 bytes -> 300 a minute
    np.testing.assert_allclose(f.repeated_bytes_top_read_per_minute(ev), [0.0, 0.0, 300.0, 0.0, 0.0])


def test_written_paths_count_the_different_things_written_to():
    # 60 s window (40, 100]. p, a publisher, POSTs to /v1/publish ten times -> 1. s posts to four rooms by
    # name (one twice), reads a fifth and wrote to a sixth before the window -> 4. r marks eight messages
    # read (POST /v1/messages/<id>/read: the id is taken out, one target) and saves a note by its UUID ->
    # 2. n: two user agents behind one address, one posting to /v1/rooms/lobby and PUTting /v1/profile,
    # the other DELETEing /v1/rooms/lobby/messages/9 -> 3 over 2 agents = 1.5
    rows = [dict(client="p", start=45.0 + 5 * i, end=45.1 + 5 * i, method="POST", path="/v1/publish")
            for i in range(10)]
    rows += [dict(client="s", start=60.0 + i, end=60.1 + i, method="POST", path=f"/v1/rooms/{r}/messages",
                  status=201) for i, r in enumerate(("lobby", "sales", "support", "support", "games"))]
    rows += [dict(client="s", start=70.0, end=70.1, path="/v1/rooms/music/messages"),
             dict(client="s", start=10.0, end=10.1, method="POST", path="/v1/rooms/news/messages")]
    rows += [dict(client="r", start=50.0 + i, end=50.1 + i, method="POST", path=f"/v1/messages/{101 + 7 * i}/read")
             for i in range(8)]
    rows += [dict(client="r", start=80.0, end=80.1, method="PUT",
                  path="/v1/notes/0b7c9e3a-1f2d-4c5e-9a8b-123456789abc")]
    rows += [dict(client="n", start=50.0, end=50.1, method="POST", path="/v1/rooms/lobby", ua="X"),
             dict(client="n", start=51.0, end=51.1, method="PUT", path="/v1/profile", ua="X"),
             dict(client="n", start=52.0, end=52.1, method="DELETE", path="/v1/rooms/lobby/messages/9", ua="Y")]
    ev = ClientEvents.from_frame(events(rows), at=100.0, width=60.0,
                                 clients=np.array(["p", "s", "r", "n"], dtype=object))
    np.testing.assert_allclose(f.written_paths_per_ua(ev), [1.0, 4.0, 2.0, 1.5])


def test_failed_paths_count_the_different_things_that_failed():
    # in an outage (every upstream answer a 502): s, a scanner, fails on 5 different paths (one twice);
    # b, a browser, retries its poll 4 times and reloads its page (/ and /static/app.js) -> 3 paths, over
    # its 2 user agents (the other one answered) = 1.5; t's 429s and aborted poll (499) are no failure;
    # n was refused /a (404) and /b (403) and answered /c -> 2
    rows = [dict(client="s", start=60.0 + i, end=60.1 + i, path=p, status=502)
            for i, p in enumerate(("/.env", "/wp-login.php", "/.git/config", "/admin", "/.env", "/backup.zip"))]
    rows += [dict(client="b", start=50.0 + 5 * i, end=50.2 + 5 * i, status=502) for i in range(4)]
    rows += [dict(client="b", start=71.0, end=71.1, path="/", status=502),
             dict(client="b", start=71.2, end=71.3, path="/static/app.js", status=502),
             dict(client="b", start=72.0, end=80.0, ua="other")]
    rows += [dict(client="t", start=70.0 + i, end=70.1 + i, path=f"/x{i}", status=429) for i in range(3)]
    rows += [dict(client="t", start=60.0, end=75.0, status=499)]
    rows += [dict(client="n", start=80.0, end=80.1, path="/a", status=404),
             dict(client="n", start=81.0, end=81.1, path="/b", status=403),
             dict(client="n", start=82.0, end=82.1, path="/c")]
    ev = ClientEvents.from_frame(events(rows), at=100.0, width=60.0,
                                 clients=np.array(["s", "b", "t", "n"], dtype=object))
    np.testing.assert_allclose(f.failed_paths_per_ua(ev), [5.0, 1.5, 0.0, 2.0])


def test_unprompted_read_seconds_count_a_walk_not_a_page_load():
    # Window (40, 100]; reads are judged from 42 on. /v1/poll, held 25 s, is the poll endpoint.
    # c, a consumer (ua lib), is answered on its poll with a body at 65 and 90.1 and fetches messages 1-3
    # within 0.03 s of the first (prompted; message 1 asked again at 96 is nothing new); 4 at 93 and 5 at
    # 94, 2.9 s or more after the second (not): 2 seconds; its other user agent fetches 6 right after lib's
    # answer, which was not its own: 1; top: 2.
    # s walks messages 10-14 one a second after a poll answered 204 (no body: nothing announced), asks 12
    # again at 65 (nothing new), is refused 15 (404) at 66 and posts at 67 (a write): 6 seconds; message 9,
    # asked at 41.5, is not judged (an answer before the window might have announced it), nor is it new
    # when asked again at 68.
    # b loads a page of 5 files within half a second on ua A and reloads it (1 second: nothing new on the
    # reload), and pages 1-3 of a list on ua B, a second apart (the query tells pages apart): 3, not 5.
    rows = [dict(client="c", start=40.0, end=65.0, status=200, bytes=300, ua="lib"),
            dict(client="c", start=65.1, end=90.1, status=200, bytes=300, ua="lib")]
    rows += [dict(client="c", start=65.01 + 0.01 * i, end=65.015 + 0.01 * i, path=f"/v1/messages/{i + 1}", ua="lib")
             for i in range(3)]
    rows += [dict(client="c", start=93.0 + i, end=93.01 + i, path=f"/v1/messages/{4 + i}", ua="lib") for i in range(2)]
    rows += [dict(client="c", start=65.05, end=65.06, path="/v1/messages/6", ua="other"),
             dict(client="c", start=96.0, end=96.01, path="/v1/messages/1", ua="lib")]
    rows += [dict(client="s", start=30.0, end=59.9, status=204, ua="py"),
             dict(client="s", start=41.5, end=41.6, path="/v1/messages/9", ua="py"),
             dict(client="s", start=68.0, end=68.01, path="/v1/messages/9", ua="py")]
    rows += [dict(client="s", start=60.0 + i, end=60.01 + i, path=f"/v1/messages/{m}", ua="py")
             for i, m in enumerate((10, 11, 12, 13, 14, 12))]
    rows += [dict(client="s", start=66.0, end=66.01, path="/v1/messages/15", status=404, ua="py"),
             dict(client="s", start=67.0, end=67.01, path="/v1/publish", method="POST", ua="py")]
    rows += [dict(client="b", start=t + 0.1 * i, end=t + 0.1 * i + 0.05, path=p, ua="A") for t in (50.0, 70.0)
             for i, p in enumerate(("/", "/static/app.js", "/static/app.css", "/static/logo.svg", "/static/x.png"))]
    rows += [dict(client="b", start=81.0 + i, end=81.1 + i, path="/x", query=f"page={i + 1}", ua="B") for i in range(3)]
    ev = ClientEvents.from_frame(events(rows), at=100.0, width=60.0,
                                 clients=np.array(["c", "s", "b"], dtype=object))
    np.testing.assert_allclose(f.unprompted_read_seconds_top_ua(ev), [2.0, 6.0, 3.0])
    # per minute over 60 s: the same; over the 10 s (90, 100] (judged from 92): c's 4 at 93, 5 at 94 and
    # message 1 at 96 (first asked in this window, 5.9 s after lib's last answer): 3 seconds = 18 a minute;
    # s and b asked nothing then. lib's poll ending at 90.1 shows the endpoint.
    np.testing.assert_allclose(f.unprompted_read_seconds_per_minute(ev), [2.0, 6.0, 3.0])
    ev10 = ClientEvents.from_frame(events(rows), at=100.0, width=10.0,
                                   clients=np.array(["c", "s", "b"], dtype=object))
    np.testing.assert_allclose(f.unprompted_read_seconds_per_minute(ev10), [18.0, 0.0, 0.0])
    # without durations nothing shows which endpoint holds, so nothing can be told prompted: NaN
    blind = ClientEvents.from_frame(events([dict(r, duration=np.nan) for r in rows]), at=100.0, width=60.0)
    assert np.isnan(f.unprompted_read_seconds_top_ua(blind)).all()
    # a prefix's row: the walker's 6 seconds are its own program's, judged on its address's row, not the
    # /24's (NaN there, for both windows)
    on_net = [dict(r, client={"c": "203.0.113.1", "s": "203.0.113.2", "b": "203.0.113.3"}[r["client"]]) for r in rows]
    names, paths, agents, prefixes = Interner(), Interner(), Interner(), Interner()
    arrays = EventArrays.from_frame(events(on_net), names, paths, agents, prefixes)
    for width in (10.0, 60.0):
        whole = ClientEvents.from_arrays(arrays, 100.0, width, np.array([prefixes.codes["203.0.113.0/24"]]),
                                         len(prefixes), by="prefix")
        assert np.isnan(f.unprompted_read_seconds_per_minute(whole)).all()
    alone = ClientEvents.from_frame(events(on_net), at=100.0, width=60.0, clients=np.array(["203.0.113.2"], dtype=object))
    np.testing.assert_allclose(f.unprompted_read_seconds_top_ua(alone), [6.0])


def test_prefix_view_counts_every_address_of_the_prefix():
    # 203.0.113.0/24 holds .1 (2 requests, ua A, one 401), .2 (1 request, ua A, a 499) and .3 (1 request,
    # ua B, ended before the 60 s window); 198.51.100.7 is alone; 2001:db8::/64 holds ::1 and ::2 (ua C)
    frame = events([
        dict(client="203.0.113.1", start=50, end=51, ua="A"),
        dict(client="203.0.113.1", start=52, end=53, ua="A", status=401),
        dict(client="203.0.113.2", start=60, end=61, ua="A", status=499),
        dict(client="203.0.113.3", start=10, end=30, ua="B"),
        dict(client="198.51.100.7", start=70, end=71, ua="A"),
        dict(client="2001:db8::1", start=80, end=81, ua="C"),
        dict(client="2001:db8::2", start=82, end=83, ua="C", status=429),
    ])
    clients = np.array(["203.0.113.1", "198.51.100.7", "2001:db8::2"], dtype=object)
    ev = ClientEvents.from_frame(frame, at=100.0, width=60.0, clients=clients)
    np.testing.assert_allclose(f.prefix_addresses(ev), [2, 1, 2])
    np.testing.assert_allclose(f.prefix_requests_per_ua_per_minute(ev), [3, 1, 2])  # one UA in each prefix
    np.testing.assert_allclose(f.prefix_failures_per_ua_per_minute(ev), [2, 0, 1])
    # on a 40 s window (60, 100] .1's requests (ended 51, 53) are out: the /24 shows .2 alone, 1 in 40 s
    ev40 = ClientEvents.from_frame(frame, at=100.0, width=40.0, clients=np.array(["203.0.113.2"], dtype=object))
    np.testing.assert_allclose(f.prefix_addresses(ev40), [1])
    np.testing.assert_allclose(f.prefix_failures_per_ua_per_minute(ev40), [1.5])


def test_early_empty_answers_count_204s_well_before_the_servers_hold():
    # durations in the window: 55 (x3: the server's hold, the 99th percentile), 1, 2, 1, 40; a quarter
    # of 55 is 13.75. Client s: 204 after 1 s and 2 s (early), 200 with a body after 1 s (not empty) -> 2 a minute;
    # client h: 204 after 55 s (the hold ran out) -> 0; client m, two agents: 204 after 1 s and after
    # 40 s -> 1 early / 2 agents = 0.5 a minute
    frame = events([dict(client="h", start=0, end=55, status=204), dict(client="h", start=55, end=110, status=204),
                    dict(client="x", start=50, end=105),
                    dict(client="s", start=100, end=101, status=204), dict(client="s", start=101, end=103, status=204),
                    dict(client="s", start=103, end=104, bytes=300),
                    dict(client="m", start=60, end=61, status=204, ua="A"),
                    dict(client="m", start=61, end=101, status=204, ua="B")])
    ev = ClientEvents.from_frame(frame, at=110.0, width=60.0, clients=np.array(["s", "h", "m"], dtype=object))
    assert ev.population_hold == pytest.approx(55.0)
    np.testing.assert_allclose(f.early_empty_answers_per_ua_per_minute(ev), [2.0, 0.0, 0.5])
    no_durations = events([dict(client="s", start=0, end=1, status=204, duration=float("nan"))])
    assert np.isnan(f.early_empty_answers_per_ua_per_minute(ClientEvents.from_frame(no_durations, at=60.0,
                                                                                   width=60.0))).all()


def test_early_empty_answers_count_bodiless_2xx_and_redirects_on_the_poll_endpoint():
    # hold 55 s (three held polls of "h", one with a body); client "q" sends HEADs answered 200 with no
    # body after 0.01 s, three in the window, and gets its stylesheet "not modified" (304, not a poll)
    # -> 3 a minute; "g" gets a 200 with a body at once -> 0; "r" is redirected (302) at once, twice -> 2
    held = [dict(client="h", start=55.0 * i - 50, end=55.0 * i + 5, status=200, bytes=900 * (i == 1))
            for i in range(3)]
    heads = [dict(client="q", start=100.0 + i, end=100.01 + i, status=200, bytes=0) for i in range(3)]
    heads += [dict(client="q", start=103.5, end=103.51, status=304, path="/static/app.css")]
    others = [dict(client="g", start=104.0, end=104.5, status=200, bytes=700),
              dict(client="r", start=105.0, end=105.01, status=302, bytes=154),
              dict(client="r", start=106.0, end=106.01, status=302, bytes=154)]
    frame = events(held + heads + others)
    clients = np.array(["q", "g", "r"], dtype=object)
    ev = ClientEvents.from_frame(frame, at=115.0, width=60.0, clients=clients)
    assert ev.bodies_logged
    np.testing.assert_allclose(f.early_empty_answers_per_ua_per_minute(ev), [3.0, 0.0, 2.0])
    # a log without response sizes (every answer reads 0 bytes): a 200 may have had a body, so q's HEADs
    # do not count; redirects still do
    sizeless = ClientEvents.from_frame(frame.assign(bytes=0), at=115.0, width=60.0, clients=clients)
    assert not sizeless.bodies_logged
    np.testing.assert_allclose(f.early_empty_answers_per_ua_per_minute(sizeless), [0.0, 0.0, 2.0])
    # without a long-poll endpoint in the window (no held polls), only 204s count: "r"'s one 204
    bare = events(heads + others[:2] + [dict(client="r", start=107.0, end=107.01, status=204)]
                  + [dict(client="x", start=60.0 + i, end=62.0 + i, bytes=300) for i in range(20)])
    unheld = ClientEvents.from_frame(bare, at=115.0, width=60.0, clients=clients)
    assert len(unheld.poll_paths) == 0
    np.testing.assert_allclose(f.early_empty_answers_per_ua_per_minute(unheld), [0.0, 0.0, 1.0])


def test_the_poll_endpoint_and_hold_are_read_off_many_clients_not_a_few_long_requests():
    # 40 pollers p0..p39 each hold one poll 25 s (ending 60..99) and fetch twice at once; d1 and d2
    # download /big.mp4, 60 s each, three at a time; t never sends a request line: 408 after 30 s, no path.
    # Clients holding a request 5 s or more: 43; /v1/poll 40 of them (kept), /big.mp4 2 and "" 1 (under
    # a tenth of 43). The hold is read off /v1/poll alone: 25 s (off all 127 durations it would be 60 s:
    # 7 of them are over 25 s, past the 99th percentile's reach).
    polls = [dict(client=f"p{i}", start=35.0 + i, end=60.0 + i, status=204) for i in range(40)]
    quick = [dict(client=f"p{i}", start=60.0 + i + 0.1 * k, end=60.05 + i + 0.1 * k, bytes=300)
             for i in range(40) for k in range(2)]
    big = [dict(client=f"d{j}", start=39.0 + k / 10, end=99.0 + k / 10, path="/big.mp4", bytes=40_000_000)
           for j in (1, 2) for k in range(3)]
    hung = [dict(client="t", start=60.0, end=90.0, status=408, method="", path="")]
    clients = np.array(["p0", "d1", "t"], dtype=object)
    calm = ClientEvents.from_frame(events(polls + quick + big + hung), at=100.0, width=60.0, clients=clients)
    assert len(calm.poll_paths) == 1
    assert f.outside_poll_share(calm).tolist() == [0.0, 1.0, 1.0]  # p0 polls it; d1's and t's are outside
    assert calm.population_hold == pytest.approx(25.0)
    # an outage: 400 pollers get 503 at once, nothing of theirs is held. The three long requests are all
    # that is held; each path's holders are a third or more of the 3 holding clients, but under 1 in 100 of
    # the window's 403 clients: no long polling, and the hold falls back to the 99th percentile of all
    # 407 durations, 60 s
    outage = [dict(client=f"p{i}", start=40.5 + i / 10, end=40.51 + i / 10, status=503, bytes=95)
              for i in range(400)]
    ev = ClientEvents.from_frame(events(outage + big + hung), at=100.0, width=60.0, clients=clients)
    assert len(ev.poll_paths) == 0
    assert ev.population_hold == pytest.approx(60.0)
    # sixty clients' quick requests and one slow report (6 s): one client of 61 holding is no long polling
    quick60 = [dict(client=f"c{i}", start=50.0 + i / 2 + k, end=50.2 + i / 2 + k, path=f"/api/{k}")
               for i in range(60) for k in range(5)]
    slow = events(quick60 + [dict(client="r", start=90.0, end=96.0, path="/report.csv")])
    ev = ClientEvents.from_frame(slow, at=100.0, width=60.0, clients=np.array(["c0", "r"], dtype=object))
    assert len(ev.poll_paths) == 0 and np.isnan(f.outside_poll_share(ev)).all()
    # the same without ``least``: the downloads and the 408 would be taken for the endpoint
    frame = events(outage + big + hung)
    codes = pd.factorize(frame["path"])[0]
    who = pd.factorize(frame["client"])[0]
    assert len(poll_paths(codes, frame["duration"].to_numpy(), who, least=0.0)) == 2


def test_hold_share_divides_by_the_servers_hold_seen_in_the_traffic():
    # durations in the window: 55 (x3, the server's hold), 5, 0.5; the 99th percentile of
    # [0.5, 5, 55, 55, 55] is 55. Client h holds 55 and 55 -> 1.0; client c: 5 and 0.5 -> median 2.75 -> 0.05
    frame = events([dict(client="h", start=0, end=55), dict(client="h", start=55, end=110),
                    dict(client="x", start=50, end=105),
                    dict(client="c", start=100, end=105), dict(client="c", start=105, end=105.5)])
    ev = ClientEvents.from_frame(frame, at=110.0, width=60.0, clients=np.array(["h", "c"], dtype=object))
    assert ev.population_hold == pytest.approx(55.0)
    np.testing.assert_allclose(f.hold_share(ev), [1.0, 0.05])
    no_durations = events([dict(client="h", start=0, end=55, duration=float("nan"))])
    assert np.isnan(f.hold_share(ClientEvents.from_frame(no_durations, at=60.0, width=60.0))).all()


def test_fleet_client_errors_sum_a_prefixs_addresses_per_user_agent_string():
    # 203.0.113.0/24 judged whole: .1 and .2 run "bot" (two 401s and one 404 between them, one 200),
    # .3 runs "app" (one 403, one 499); in 60 s that is 4 client errors (the 499 is an abort, not one)
    # over 2 user-agent strings = 2 a minute. Per address and agent (the prefix row's ``ua``) it is 3 programs,
    # of which 2 were served (.2's "bot" was only refused).
    frame = events([
        dict(client="203.0.113.1", start=50, end=51, ua="bot", status=401),
        dict(client="203.0.113.1", start=60, end=61, ua="bot", status=200),
        dict(client="203.0.113.2", start=52, end=53, ua="bot", status=401),
        dict(client="203.0.113.2", start=70, end=71, ua="bot", status=404),
        dict(client="203.0.113.3", start=80, end=81, ua="app", status=403),
        dict(client="203.0.113.3", start=82, end=83, ua="app", status=499),
    ])
    names, paths, agents, prefixes = Interner(), Interner(), Interner(), Interner()
    arrays = EventArrays.from_frame(frame, names, paths, agents, prefixes)
    whole = ClientEvents.from_arrays(arrays, 100.0, 60.0, np.array([0]), len(prefixes), by="prefix")
    np.testing.assert_allclose(f.fleet_client_errors_per_ua_per_minute(whole), [2.0])
    np.testing.assert_allclose(f.user_agents(whole), [2.0])
    # a single address has no fleet count: NaN, its own is client_errors_top_ua (2 in 60 s, one agent)
    alone = ClientEvents.from_frame(frame, at=100.0, width=60.0, clients=np.array(["203.0.113.2"], dtype=object))
    assert np.isnan(f.fleet_client_errors_per_ua_per_minute(alone)).all()
    np.testing.assert_allclose(f.client_errors_top_ua_per_minute(alone), [2.0])


def test_fleet_early_empty_answers_sum_a_prefixs_addresses_per_user_agent_string():
    # /v1/poll is the long-poll endpoint (the two clients holding requests 5 s or more, .3 and
    # 198.51.100.7, hold them there); the server holds polls 40 s (the 99th percentile of its durations:
    # 198.51.100.7's four held polls and .3's one), so an empty answer to a poll within 10 s is early.
    # 203.0.113.0/24 judged whole: .1 and .2
    # run "lib", asking for a 1 s wait (204 after 1 s): 3 and 2 times; .1 also sends a beacon answered 204
    # at once (not a poll: not counted). .3 runs "app": one 204 after 8 s (early), one after exactly 10 s
    # and one after 15 s (not early), a 200 after 2 s with a body (not empty) and one 204 held 40 s. .2
    # also sends "rot", a string only ever refused (a 401): not one of the prefix's user agents. In 60 s:
    # 6 early empty answers over 2 user-agent strings = 3 a minute; per program (address and agent:
    # 3 served) it is 2.
    lib = [dict(client="203.0.113.1", start=t, end=t + 1, ua="lib", status=204) for t in (50, 55, 60)]
    lib += [dict(client="203.0.113.1", start=62, end=62.01, ua="lib", status=204, method="POST",
                 path="/v1/beacon")]
    lib += [dict(client="203.0.113.2", start=t, end=t + 1, ua="lib", status=204) for t in (52, 57)]
    lib += [dict(client="203.0.113.2", start=58, end=58.1, ua="rot", status=401, path="/login")]
    app = [dict(client="203.0.113.3", start=70, end=78, ua="app", status=204),
           dict(client="203.0.113.3", start=80, end=90, ua="app", status=204),
           dict(client="203.0.113.3", start=60, end=75, ua="app", status=204),
           dict(client="203.0.113.3", start=80, end=82, ua="app", status=200, bytes=300),
           dict(client="203.0.113.3", start=45, end=85, ua="app", status=204)]
    held = [dict(client="198.51.100.7", start=t, end=t + 40, status=204) for t in (41, 45, 50, 55)]
    frame = events(lib + app + held)
    names, paths, agents, prefixes = Interner(), Interner(), Interner(), Interner()
    arrays = EventArrays.from_frame(frame, names, paths, agents, prefixes)
    whole = ClientEvents.from_arrays(arrays, 100.0, 60.0, np.array([prefixes.codes["203.0.113.0/24"]]),
                                     len(prefixes), by="prefix")
    assert whole.population_hold == pytest.approx(40.0)
    np.testing.assert_allclose(f.fleet_early_empty_answers_per_ua_per_minute(whole), [3.0])
    np.testing.assert_allclose(f.early_empty_answers_per_ua_per_minute(whole), [2.0])
    # a single address has no fleet count (NaN); its own: 3 early answers of one agent in 60 s
    alone = ClientEvents.from_frame(frame, at=100.0, width=60.0, clients=np.array(["203.0.113.1"], dtype=object))
    assert np.isnan(f.fleet_early_empty_answers_per_ua_per_minute(alone)).all()
    np.testing.assert_allclose(f.early_empty_answers_per_ua_per_minute(alone), [3.0])
    # where the window shows no long-poll endpoint (only "lib"'s requests: the longest took 1 s, hold 1 s,
    # early below 0.25 s), every 204 counts: here only the beacon (0.01 s), 1 a minute for the 1 string
    quick = events([r for r in lib if r["end"] - r["start"] < 5])
    arrays = EventArrays.from_frame(quick, Interner(), Interner(), Interner(), prefixes)
    whole = ClientEvents.from_arrays(arrays, 100.0, 60.0, np.array([prefixes.codes["203.0.113.0/24"]]),
                                     len(prefixes), by="prefix")
    assert len(whole.poll_paths) == 0
    np.testing.assert_allclose(f.fleet_early_empty_answers_per_ua_per_minute(whole), [1.0])
    # without durations (a combined log) there is no hold time to be early against: NaN
    arrays = EventArrays.from_frame(frame.assign(duration=float("nan")), Interner(), Interner(), Interner(), prefixes)
    whole = ClientEvents.from_arrays(arrays, 100.0, 60.0, np.array([prefixes.codes["203.0.113.0/24"]]),
                                     len(prefixes), by="prefix")
    assert np.isnan(f.fleet_early_empty_answers_per_ua_per_minute(whole)).all()
    assert np.isnan(f.early_empty_answers_per_ua_per_minute(whole)).all()


def test_user_agents_count_only_those_served():
    # In 60 s: "app" polls (204) and fails one login (401); five other strings each fail one login and are
    # never served. Served user agents: 1 ("app"), so the 6 refused logins are 6 a minute per user agent,
    # not 1 (6 over 6 strings) as they would be if each rotated string counted as a person.
    rows = [dict(client="a", start=1, end=26, ua="app", status=204), dict(client="a", start=27, end=28, ua="app", status=401)]
    rows += [dict(client="a", start=30 + i, end=30.5 + i, ua=f"rotated {i}", status=401) for i in range(5)]
    ev = ClientEvents.from_frame(events(rows), at=60.0, width=60.0)
    np.testing.assert_allclose(f.user_agents(ev), [1.0])
    np.testing.assert_allclose(f.client_errors_top_ua_per_minute(ev), [6.0])
    np.testing.assert_allclose(f.requests_per_ua_per_minute(ev), [7.0])
    # a client that was only ever refused has no served user agent; its rates are per one
    only = ClientEvents.from_frame(events(rows[2:]), at=60.0, width=60.0)
    np.testing.assert_allclose(f.user_agents(only), [0.0])
    np.testing.assert_allclose(f.client_errors_top_ua_per_minute(only), [5.0])


def test_quick_one_off_agents_count_strings_used_once_and_answered_at_once():
    # In 60 s: "app" polls twice (held 25 s); "slow" makes one poll held 40 s (a colleague at a long hold);
    # r1..r4 each make one request answered in 0.02 s (a client rotating its user agent): 4
    rows = [dict(client="a", start=1, end=26, ua="app"), dict(client="a", start=26, end=51, ua="app"),
            dict(client="a", start=10, end=50, ua="slow")]
    rows += [dict(client="a", start=52 + i, end=52.02 + i, ua=f"r{i}") for i in range(1, 5)]
    ev = ClientEvents.from_frame(events(rows), at=60.0, width=60.0)
    np.testing.assert_allclose(f.quick_one_off_agents(ev), [4.0])
    no_durations = events([dict(r, duration=float("nan")) for r in rows])
    assert np.isnan(f.quick_one_off_agents(ClientEvents.from_frame(no_durations, at=60.0, width=60.0))).all()


def test_open_surge_per_ua_is_what_is_open_now_beyond_the_windows_mean():
    # window (90, 100]. client g: ua X answered a poll held 80..95 (5 s inside) and has two open, since 92
    # and 99 (start records: status 0; 8 s and 1 s inside); ua Y one open since 85 (10 s inside); ua Z
    # only a refused 401, 95.5..96 (0.5 s). Open now: 3. Mean open: (5 + 8 + 1 + 10 + 0.5) / 10 = 2.45.
    # User agents: X and Y (Z was only refused) -> (3 - 2.45) / 2 = 0.275
    # client h: answered 91..99, nothing open -> (0 - 0.8) / 1 = -0.8
    opened = dict(duration=float("nan"), status=0)
    frame = events([
        dict(client="g", start=80.0, end=95.0, ua="X"),
        dict(client="g", start=92.0, end=92.0, ua="X", **opened),
        dict(client="g", start=99.0, end=99.0, ua="X", **opened),
        dict(client="g", start=85.0, end=85.0, ua="Y", **opened),
        dict(client="g", start=95.5, end=96.0, status=401, ua="Z", path="/login"),
        dict(client="h", start=91.0, end=99.0),
    ])
    ev = ClientEvents.from_frame(frame, at=100.0, width=10.0, clients=np.array(["g", "h"], dtype=object))
    np.testing.assert_allclose(f.open_surge_per_ua(ev), [0.275, -0.8])
    assert ev.count.tolist() == [2.0, 1.0]  # start records are not requests of the window


def test_open_surge_is_nan_where_the_log_writes_no_start_records(ev):
    assert np.isnan(f.open_surge_per_ua(ev)).all()


def test_client_errors_count_the_most_refused_served_agent_whole():
    # In 60 s. client s: a browser tab "tab" polls (two 204s); a script "lib" reads 4 ids, 3 of them 404.
    #   Served agents: tab (0 refused), lib (3 refused) -> 3 a minute, not 3 spread over 2 agents (1.5).
    # client d: "bot" fails 4 logins and is served once; 3 decoy agents each fetch / once (200).
    #   Most refused served agent: bot, 4 -> 4 a minute, not 4 over 4 agents (1).
    # client r: "app" served and refused once; "x1" and "x2" only refused (2 each): 1 + 2 + 2 = 5 a minute.
    rows = [dict(client="s", start=1, end=26, ua="tab", status=204), dict(client="s", start=27, end=52, ua="tab", status=204)]
    rows += [dict(client="s", start=30 + i, end=30.1 + i, ua="lib", path=f"/m/{i}", status=404 if i else 200)
             for i in range(4)]
    rows += [dict(client="d", start=10 + i, end=10.2 + i, ua="bot", path="/login", method="POST", status=401)
             for i in range(4)]
    rows += [dict(client="d", start=20, end=20.2, ua="bot", path="/login", method="POST", status=200)]
    rows += [dict(client="d", start=21 + i, end=21.1 + i, ua=f"decoy {i}", path="/", status=200) for i in range(3)]
    rows += [dict(client="r", start=5, end=5.1, ua="app", status=200), dict(client="r", start=6, end=6.1, ua="app", status=401)]
    rows += [dict(client="r", start=7 + i, end=7.1 + i, ua=f"x{1 + i % 2}", status=403) for i in range(4)]
    ev = ClientEvents.from_frame(events(rows), at=60.0, width=60.0, clients=np.array(["s", "d", "r"], dtype=object))
    np.testing.assert_allclose(f.client_errors_top_ua_per_minute(ev), [3.0, 4.0, 5.0])
    np.testing.assert_allclose(f.user_agents(ev), [2.0, 4.0, 1.0])


def test_a_prefix_rows_client_errors_stay_per_served_program():
    # 198.51.100.0/24 judged whole, in 60 s: five phones each poll (204) with "app" and have one login
    # refused under a user agent string of their own, never served; .9 also has "app" refused twice.
    # The row counts per served program (address and agent): 7 refusals over 5 programs -> 1.4 a minute,
    # not .9's own 3 (2 of its "app" + 1 never served), which is what .9's own row shows.
    rows = []
    for i in (1, 2, 3, 4, 9):
        rows += [dict(client=f"198.51.100.{i}", start=1.0 + i, end=26.0 + i, ua="app", status=204),
                 dict(client=f"198.51.100.{i}", start=30.0 + i, end=30.1 + i, ua=f"old app {i}", status=401)]
    rows += [dict(client="198.51.100.9", start=40.0 + k, end=40.1 + k, ua="app", status=401) for k in range(2)]
    names, paths, agents, prefixes = Interner(), Interner(), Interner(), Interner()
    arrays = EventArrays.from_frame(events(rows), names, paths, agents, prefixes)
    whole = ClientEvents.from_arrays(arrays, 60.0, 60.0, np.array([0]), len(prefixes), by="prefix")
    np.testing.assert_allclose(f.client_errors_top_ua_per_minute(whole), [1.4])
    alone = ClientEvents.from_frame(events(rows), at=60.0, width=60.0,
                                    clients=np.array(["198.51.100.1", "198.51.100.9"], dtype=object))
    np.testing.assert_allclose(f.client_errors_top_ua_per_minute(alone), [1.0, 3.0])


def test_refusals_top_ua_counts_five_minutes_of_refused_attempts_per_program():
    # Over 5 min (0, 300]: "app" polls (204) and posts a login refused every 20 s from 10 s on (401 at 10, 30,
    # ..., 290: 15 writes, each an attempt); "page" fetches a page (200) and its missing logo (404) on each of
    # three views: one read refused again counts once; "tab" re-polls with an expired session every 30 s (403,
    # the same poll each time: 1); r0..r2 each post one login (401) and are never served: strings sent along.
    # Served programs: app 15, page 1 (tab was never served: its 1 is summed) -> the most is 15, plus 1 + 3
    # never served -> 19. Not scaled to a minute (a per-minute count would be 3.8).
    rows = [dict(client="a", start=t, end=t + 25, ua="app", status=204) for t in range(0, 275, 25)]
    rows += [dict(client="a", start=t, end=t + 0.2, ua="app", status=401, path="/login", method="POST")
             for t in range(10, 300, 20)]
    for t in (100, 150, 200):
        rows += [dict(client="a", start=t, end=t + 0.1, ua="page", status=200, path="/"),
                 dict(client="a", start=t + 0.2, end=t + 0.3, ua="page", status=404, path="/logo.gif")]
    rows += [dict(client="a", start=t, end=t + 0.01, ua="tab", status=403, query="cursor=7") for t in range(5, 300, 30)]
    rows += [dict(client="a", start=200 + i, end=200.5 + i, ua=f"r{i}", status=401, path="/login", method="POST")
             for i in range(3)]
    ev = ClientEvents.from_frame(events(rows), at=300.0, width=300.0)
    np.testing.assert_allclose(f.refusals_top_ua(ev), [19.0])
    # a stream's long window holds refusals only: which programs were served is given (``served``, per event)
    held = ClientEvents.from_frame(events([r for r in rows if r["status"] >= 400]), at=300.0, width=300.0)
    assert f.refusals_top_ua(held).tolist() == [20.0]  # read off these alone, none was served: all summed
    served = held.ua < 2  # user agents coded as first seen: app 0, page 1 (both served), tab 2, r0..r2 3..5
    np.testing.assert_allclose(f.refusals_top_ua(replace(held, served=served)), [19.0])


def test_refusals_top_ua_is_not_measured_on_a_prefixs_row():
    rows = [dict(client=f"203.0.113.{i}", start=10.0 * k, end=10.0 * k + 0.1, status=401, path="/login")
            for i in (1, 2) for k in range(1, 20)]
    names, paths, agents, prefixes = Interner(), Interner(), Interner(), Interner()
    arrays = EventArrays.from_frame(events(rows), names, paths, agents, prefixes)
    whole = ClientEvents.from_arrays(arrays, 300.0, 300.0, np.array([0]), len(prefixes), by="prefix")
    assert np.isnan(f.refusals_top_ua(whole)).all()
