"""The feature stream: ticks on event time, lateness, eviction, and one path for batch sizes."""

from __future__ import annotations

import numpy as np
import pytest
import pandas as pd

from detector.features import functions as f
from detector.features.catalog import FEATURE_NAMES
from detector.features.stream import FeatureStream
from detector.features.view import ClientEvents

from ..conftest import events


def _loop(client: str, t0: float, t1: float, every: float) -> list[dict]:
    return [dict(client=client, start=t, end=t + 0.05, status=499) for t in np.arange(t0, t1, every)]


def test_ticks_close_on_the_watermark_and_score_only_active_clients():
    s = FeatureStream(tick=2.0, lateness=1.0)
    ev = events([dict(client="a", start=99.0, end=100.5), dict(client="b", start=100.0, end=101.2),
                 dict(client="a", start=101.0, end=103.9)])
    frames = list(s.push(ev))
    # newest 103.9 - lateness 1 = 102.9: ticks ending 102 close ("a" at 100.5 and "b" at 101.2 both fall in (100, 102])
    assert [(f.at, sorted(f.clients)) for f in frames] == [(102.0, ["a", "b"])]
    rest = list(s.finish())
    assert [(f.at, list(f.clients)) for f in rest] == [(104.0, ["a"])]
    assert s.counters.ticks == 2 and s.counters.rows == 3


def test_late_lines_within_lateness_land_in_their_tick():
    s = FeatureStream(tick=1.0, lateness=2.0)
    list(s.push(events([dict(client="a", start=10.0, end=10.2)])))
    list(s.push(events([dict(client="a", start=11.0, end=11.5)])))
    # "b" arrives after 11.5 but ended at 10.6; its tick (10, 11] is still open (watermark 11.5 - 2 = 9.5)
    frames = list(s.push(events([dict(client="b", start=10.4, end=10.6), dict(client="c", start=13.0, end=13.9)])))
    assert [(f.at, sorted(f.clients)) for f in frames] == [(11.0, ["a", "b"])]
    assert s.counters.late == 0


def test_lines_older_than_a_closed_tick_are_counted_late_and_dropped():
    s = FeatureStream(tick=1.0, lateness=0.0)
    list(s.push(events([dict(client="a", start=10.0, end=10.5), dict(client="a", start=12.0, end=12.5)])))
    list(s.push(events([dict(client="z", start=9.0, end=9.5)])))
    assert s.counters.late == 1
    assert s.counters.events == 3


def test_rates_follow_the_window():
    s = FeatureStream(tick=1.0, lateness=0.0)
    frames = list(s.push(events(_loop("x", 0.0, 30.0, 0.5))))  # 2 requests per second
    frames += list(s.finish())
    last = frames[-1].to_frame()
    i10, i60 = FEATURE_NAMES.index("rpm_10s"), FEATURE_NAMES.index("rpm_60s")
    assert last.iloc[0, i10] == 120.0  # 20 requests in the last 10 s -> 120 per minute
    assert last.iloc[0, i60] == 60.0  # all 60 requests of the 30 s are inside the 60 s window


def test_held_events_are_evicted_past_the_horizon():
    s = FeatureStream(tick=1.0, lateness=0.0)
    list(s.push(events(_loop("x", 0.0, 300.0, 1.0))))
    list(s.finish())
    assert s.held_events <= 62  # longest window (60 s) + lateness, one event per second


def test_batch_size_does_not_change_the_features():
    ev = events(_loop("x", 0.0, 40.0, 0.3) + _loop("y", 5.0, 40.0, 1.7)).sort_values("end", ignore_index=True)
    one = FeatureStream(tick=1.0, lateness=0.5)
    a = list(one.push(ev)) + list(one.finish())
    many = FeatureStream(tick=1.0, lateness=0.5)
    b = []
    for chunk in np.array_split(np.arange(len(ev)), 17):
        b += list(many.push(ev.iloc[chunk]))
    b += list(many.finish())
    assert [f.at for f in a] == [f.at for f in b]
    for fa, fb in zip(a, b):
        pd.testing.assert_frame_equal(fa.to_frame().sort_index(), fb.to_frame().sort_index())


def test_a_prefix_with_several_active_addresses_is_also_scored_whole():
    # .1 and .2 of 203.0.113.0/24 each send 3 requests in (40, 100]; 198.51.100.9 is alone in its /24
    rows = [dict(client=f"203.0.113.{i}", start=t, end=t + 0.5, ua="bot") for i in (1, 2) for t in (50, 70, 90)]
    rows += [dict(client="198.51.100.9", start=95.0, end=99.5, ua="Mozilla")]
    s = FeatureStream(tick=100.0, lateness=0.0)
    frames = list(s.push(events(rows))) + list(s.finish())
    (frame,) = frames
    table = frame.to_frame()
    assert sorted(table.index) == ["198.51.100.9", "203.0.113.0/24", "203.0.113.1", "203.0.113.2"]
    whole = table.loc["203.0.113.0/24"]
    # one agent on two addresses is two programs (address, agent): 6 requests, 3 per program
    assert whole["rpm_60s"] == 6 and whole["rpm_per_ua_60s"] == 3 and whole["user_agents_60s"] == 2
    assert whole["prefix_addresses_60s"] == 2 and table.loc["203.0.113.1", "rpm_60s"] == 3
    off = FeatureStream(tick=100.0, lateness=0.0, prefix_clients=0)
    (frame,) = list(off.push(events(rows))) + list(off.finish())
    assert "203.0.113.0/24" not in list(frame.clients)


def test_a_prefix_one_address_dominates_is_left_to_that_address():
    # .1 sends 6 of the /24's 8 requests: it is judged alone, its neighbour .2 is not blamed with it
    rows = [dict(client="203.0.113.1", start=t, end=t + 0.5) for t in range(50, 98, 8)]
    rows += [dict(client="203.0.113.2", start=t, end=t + 0.5) for t in (60, 80)]
    s = FeatureStream(tick=100.0, lateness=0.0)
    (frame,) = list(s.push(events(rows))) + list(s.finish())
    assert sorted(frame.clients) == ["203.0.113.1", "203.0.113.2"]


def test_a_prefix_with_one_address_far_above_the_others_is_left_to_that_address():
    # four addresses: .1 sends 6 requests, .2-.4 one each -> .1 has 6 of 9 (over half) and 6x the median
    # (1); with .1 at 3 requests (3 of 6: half, 3x the median) the /24 is judged whole
    quiet = [dict(client=f"203.0.113.{i}", start=70.0, end=71.0) for i in (2, 3, 4)]
    for loud, whole in ((6, False), (3, True)):
        rows = quiet + [dict(client="203.0.113.1", start=50.0 + 5 * k, end=50.5 + 5 * k) for k in range(loud)]
        s = FeatureStream(tick=100.0, lateness=0.0)
        (frame,) = list(s.push(events(rows))) + list(s.finish())
        assert ("203.0.113.0/24" in list(frame.clients)) is whole


def test_a_prefix_where_one_address_has_most_of_the_failures_is_left_to_that_address():
    # four phones poll alike; .1 also gets the /24's only 401s (3 of them): the failures are its doing
    rows = [dict(client=f"203.0.113.{i}", start=60.0 + i, end=61.0 + i) for i in (1, 2, 3, 4) for _ in (0, 1)]
    rows += [dict(client="203.0.113.1", start=80.0 + k, end=80.5 + k, status=401) for k in range(3)]
    s = FeatureStream(tick=100.0, lateness=0.0)
    (frame,) = list(s.push(events(rows))) + list(s.finish())
    assert "203.0.113.0/24" not in list(frame.clients)
    spread = rows[:8] + [dict(r, client=f"203.0.113.{k + 2}") for k, r in enumerate(rows[8:])]
    s = FeatureStream(tick=100.0, lateness=0.0)
    (frame,) = list(s.push(events(spread))) + list(s.finish())
    assert "203.0.113.0/24" in list(frame.clients)  # the same 401s from three addresses: judged whole


def test_an_outages_5xx_do_not_hide_the_address_with_most_of_a_prefixs_refusals():
    # four phones poll alike and each gets three 502s (the server is down); .1 also gets four 404s.
    # Counting 5xx as failures .1 would have 7 of 16 (under half) and the /24 would be judged whole with
    # .1's 404s in it; its 4 of the 4 refused requests make the failures its doing.
    rows = [dict(client=f"203.0.113.{i}", start=60.0 + i + k, end=60.1 + i + k, status=502)
            for i in (1, 2, 3, 4) for k in (0, 1, 2)]
    rows += [dict(client=f"203.0.113.{i}", start=70.0 + i, end=71.0 + i) for i in (1, 2, 3, 4)]
    rows += [dict(client="203.0.113.1", start=80.0 + k, end=80.1 + k, status=404, path=f"/.env{k}") for k in range(4)]
    s = FeatureStream(tick=100.0, lateness=0.0)
    (frame,) = list(s.push(events(rows))) + list(s.finish())
    assert "203.0.113.0/24" not in list(frame.clients)
    # the 502s alone, spread over all four: judged whole as before
    s = FeatureStream(tick=100.0, lateness=0.0)
    (frame,) = list(s.push(events(rows[:-4]))) + list(s.finish())
    assert "203.0.113.0/24" in list(frame.clients)


def test_a_prefix_is_left_to_the_address_with_most_of_its_bytes_but_not_for_one_large_answer():
    # four phones poll alike (two polls each, 1 kB answers); .1 also gets large answers
    polls = [dict(client=f"203.0.113.{i}", start=60.0 + i + 10 * k, end=61.0 + i + 10 * k, bytes=1000)
             for i in (1, 2, 3, 4) for k in (0, 1)]

    def whole(large: list[int]) -> bool:
        rows = polls + [dict(client="203.0.113.1", start=80.0 + k, end=80.5 + k, bytes=b) for k, b in enumerate(large)]
        s = FeatureStream(tick=100.0, lateness=0.0)
        (frame,) = list(s.push(events(rows))) + list(s.finish())
        return "203.0.113.0/24" in list(frame.clients)

    # without its largest answer .1 has 11,000 (its polls and the smaller large answer) of the /24's 67,000;
    # with three large answers of 30,000, without its largest it has 62,000 of 98,000: over half
    assert whole([50_000, 9_000])
    assert not whole([30_000] * 3)
    # one history fetched once: without it .1 has 2,000 of the /24's 208,000 (with it, 202,000: over half)
    assert whole([200_000])
    # before, any address with over half of the bytes kept the /24 apart: it still does with many answers
    assert not whole([8_000] * 4)  # 2,000 + 24,000 of 40,000


def test_a_prefix_scored_whole_counts_each_address_and_agent_as_one_program():
    # three hosts of a fleet, one user agent, each holding one 25 s poll on the same channel and cursor:
    # per program (address, agent) that is one open poll and no repeat, not three polls of one agent
    rows = [dict(client=f"203.0.113.{i}", start=70.0, end=95.0, query="cursor=9", bytes=300, ua="lib/1.0")
            for i in (1, 2, 3)]
    s = FeatureStream(tick=100.0, lateness=0.0)
    (frame,) = list(s.push(events(rows))) + list(s.finish())
    table = frame.to_frame()
    whole = table.loc["203.0.113.0/24"]
    assert whole["user_agents_60s"] == 3
    assert (table.loc[[f"203.0.113.{i}" for i in (1, 2, 3)], "repeats_top_read_60s"] == 0).all()
    # an address's measures, not a network's: the most repeated read is one program's, on its own row
    assert np.isnan(whole["quick_one_off_agents_60s"]) and np.isnan(whole["repeats_top_read_60s"])
    assert np.isnan(whole["replayed_polls_top_read_60s"]) and np.isnan(whole["repeated_bytes_top_read_60s"])
    assert whole["busiest_ua_concurrency_60s"] == pytest.approx(25 / 60)


def test_a_prefix_scored_whole_sums_its_addresses_4xx_per_user_agent_string():
    # four hosts of one fleet, one user agent, each failing one login in (90, 100] and one in (40, 90]:
    # the /24 row counts 4 failures in 10 s per one UA string = 24 a minute (8 in 60 s = 8 a minute);
    # each address alone has no fleet count (NaN) and 6 a minute of its own on 10 s
    rows = [dict(client=f"203.0.113.{i}", start=t, end=t + 0.2, status=401, path="/login", ua="lib/1.0")
            for i in (1, 2, 3, 4) for t in (60.0 + i, 95.0 + i / 10)]
    s = FeatureStream(tick=100.0, lateness=0.0)
    (frame,) = list(s.push(events(rows))) + list(s.finish())
    table = frame.to_frame()
    whole, one = table.loc["203.0.113.0/24"], table.loc["203.0.113.2"]
    assert whole["fleet_client_errors_per_ua_10s"] == pytest.approx(24) and whole["fleet_client_errors_per_ua_60s"] == pytest.approx(8)
    # per served program (address, agent): none was ever served, so the 4 failures count per one: 24 a minute
    assert whole["client_errors_top_ua_10s"] == pytest.approx(24)
    assert np.isnan(one["fleet_client_errors_per_ua_10s"]) and one["client_errors_top_ua_10s"] == pytest.approx(6)
    # the neighbours' view is the same for the /24 row as for its addresses: 8 failures / one UA string
    assert whole["prefix_failures_per_ua_60s"] == one["prefix_failures_per_ua_60s"] == pytest.approx(8)


def test_a_prefix_scored_whole_sums_its_addresses_early_empty_answers_per_user_agent_string():
    # the server holds polls 40 s (198.51.100.7's held polls); five hosts of one fleet, one user agent,
    # each re-poll asking for a 1 s wait at 91.5 and 95.5 (both ending in (90, 100]) and at 71.5: the /24
    # row counts 10 early empty answers in 10 s per one UA string = 60 a minute (15 in 60 s: 15 a minute);
    # per program (address and agent) it is 2 in 10 s = 12 a minute, and each address alone has no
    # fleet count (NaN) and 12 a minute of its own
    rows = [dict(client=f"203.0.113.{i}", start=t, end=t + 1, status=204, ua="lib/1.0")
            for i in (1, 2, 3, 4, 5) for t in (71.5, 91.5, 95.5)]
    rows += [dict(client="198.51.100.7", start=t, end=t + 40, status=204) for t in range(41, 60)]
    s = FeatureStream(tick=100.0, lateness=0.0)
    (frame,) = list(s.push(events(rows))) + list(s.finish())
    table = frame.to_frame()
    whole, one = table.loc["203.0.113.0/24"], table.loc["203.0.113.2"]
    assert whole["fleet_early_empty_per_ua_10s"] == pytest.approx(60)
    assert whole["fleet_early_empty_per_ua_60s"] == pytest.approx(15)
    assert whole["early_empty_per_ua_10s"] == pytest.approx(12)
    assert np.isnan(one["fleet_early_empty_per_ua_10s"]) and one["early_empty_per_ua_10s"] == pytest.approx(12)


def _opened(client: str, start: float, ua: str = "ua", path: str = "/v1/poll") -> dict:
    """A start record (Envoy's DownstreamStart): status 0, no duration, end = start."""
    return dict(client=client, start=start, end=start, duration=float("nan"), status=0, ua=ua, path=path)


def _surge(frame, client: str) -> float:
    row = list(frame.clients).index(client)
    return float(frame.raw[row, FEATURE_NAMES.index("open_surge_per_ua_10s")])


def test_start_records_show_open_requests_before_any_ends_and_close_with_their_end():
    s = FeatureStream(tick=2.0, lateness=0.0)
    # "p" opens 30 polls at 100.0-100.9; nothing of "p" ends before 125; "q" polls on as usual, and its
    # request begun at 101.2 (after the first start record) ends with its start record: they match
    opens = [_opened("p", 100.0 + 0.03 * i) for i in range(30)]
    frames = list(s.push(events(opens + [dict(client="q", start=80.0, end=101.0), _opened("q", 101.2),
                                         dict(client="q", start=101.2, end=101.5),
                                         dict(client="q", start=101.7, end=103.5)])))
    # tick 102 (closed once q's 103.5 came): p's 30 polls are open, one user agent; over (92, 102] they were
    # open 2.0 - 0.03 i s each: 60 - 0.03 * 435 = 46.95 s in all, a mean of 4.695 -> 30 - 4.695 beyond it
    assert [(f.at, sorted(f.clients)) for f in frames] == [(102.0, ["p", "q"])]
    assert _surge(frames[0], "p") == pytest.approx(30 - 4.695)
    assert s.open_requests == 30
    # 29 of p's polls end at 125.x (the same request: client, user agent, path, start); one stays open
    ends = [dict(client="p", start=100.0 + 0.03 * i, end=125.0 + 0.03 * i) for i in range(29)]
    frames = list(s.push(events(ends + [dict(client="q", start=126.0, end=130.0)])))
    assert s.open_requests == 1
    # tick 104: p again, though nothing of it came (it still holds its polls: a second score to confirm the
    # first by); its open requests are not read there (NaN), as q's request begun at 101.7, after the first
    # start record, ended without one: 1 of the 2 ends matched (``_open_usable``)
    assert [(f.at, list(f.clients)) for f in frames] == [(104.0, ["p", "q"]), (126.0, ["p"]), (130.0, ["q"])]
    assert np.isnan(_surge(frames[0], "p"))
    # tick 126: one poll still open, the whole window: 1 now; the mean over (116, 126] is 29 polls open
    # until 125.0 + 0.03 i (9.0 + 0.03 i s each: 261 + 12.18) plus the open one's 10 s: 28.318 -> 1 - 28.318
    assert _surge(frames[1], "p") == pytest.approx(1 - 28.318)
    assert s.counters.events == 34 + 30
    assert (s.counters.open_closed, s.counters.open_expired) == (30, 0)


def test_a_client_doubled_at_one_tick_is_featurised_again_at_the_next_while_it_holds_them():
    # "p" opens 30 polls within tick (99, 100]; "q"'s requests (each with its start record) make the ticks.
    # Tick 100: p (its start records) and q; tick 101: p again (still holding 30: over (91, 101] they were
    # open 1.9 - 0.03 i s each, 57 - 13.05 = 43.95 s, a mean of 4.395 -> 30 - 4.395 beyond it), though
    # nothing of p came; tick 102: q only (one follow-up per burst)
    s = FeatureStream(tick=1.0, lateness=0.0)
    rows = [_opened("p", 99.1 + 0.03 * i) for i in range(30)]
    for t in (99.5, 100.5, 101.5, 102.5):
        rows += [_opened("q", t), dict(client="q", start=t, end=t + 0.2)]
    frames = list(s.push(events(rows))) + list(s.finish())
    assert [(f.at, sorted(f.clients)) for f in frames] == [(100.0, ["p", "q"]), (101.0, ["p", "q"]),
                                                           (102.0, ["q"]), (103.0, ["q"])]
    assert _surge(frames[1], "p") == pytest.approx(30 - 4.395)


def test_an_open_request_whose_end_never_comes_is_forgotten_after_max_open():
    s = FeatureStream(tick=1.0, lateness=0.0, max_open=30.0)
    list(s.push(events([_opened("p", 10.0), _opened("p", 10.0), dict(client="q", start=5.0, end=11.0)])))
    assert s.open_requests == 2
    # one end closes one of the two identical requests
    list(s.push(events([dict(client="p", start=10.0, end=20.0), dict(client="q", start=11.0, end=21.0)])))
    assert s.open_requests == 1
    list(s.push(events([dict(client="q", start=21.0, end=41.0), dict(client="q", start=41.0, end=42.0)])))
    assert s.open_requests == 0  # begun at 10, no end by 41: a lost line
    assert (s.counters.open_closed, s.counters.open_expired) == (1, 1)


def test_a_late_end_still_closes_its_open_request():
    s = FeatureStream(tick=1.0, lateness=0.0)
    list(s.push(events([_opened("p", 10.0), dict(client="q", start=5.0, end=12.5)])))  # closes tick (10, 11]
    list(s.push(events([dict(client="p", start=10.0, end=10.9)])))  # its tick is closed: late
    assert s.counters.late == 1 and s.open_requests == 0 and s.counters.open_closed == 1


def test_open_requests_are_capped():
    s = FeatureStream(tick=1.0, lateness=0.0, max_open_requests=3)
    list(s.push(events([_opened("p", 10.0 + 0.1 * i) for i in range(5)] + [dict(client="q", start=5, end=12)])))
    assert s.open_requests == 3 and s.counters.open_refused == 2


def test_start_records_that_no_end_matches_are_not_read():
    # a filter rewrote the path between Envoy's start record and its end record: no end closes its open
    # request, so after a minute every poll of "a" would seem open; the feature is NaN instead
    s = FeatureStream(tick=1.0, lateness=0.0)
    rows = []
    for i in range(60):
        t = 10.0 + i
        rows += [_opened("a", t, path="/v1/poll"), dict(client="a", start=t, end=t + 0.9, path="/poll")]
    frames = list(s.push(events(rows))) + list(s.finish())
    assert s.open_requests == 60 and s.counters.open_closed == 0
    assert all(np.isnan(_surge(f, "a")) for f in frames if "a" in f.clients)
    # the same with matching paths: every end closes its start, and the feature is read
    s = FeatureStream(tick=1.0, lateness=0.0)
    frames = list(s.push(events([dict(r, path="/v1/poll") for r in rows]))) + list(s.finish())
    assert s.open_requests == 0 and s.counters.open_closed == 60
    assert not np.isnan(_surge(frames[-1], "a"))


def test_without_start_records_the_open_requests_are_not_measured():
    s = FeatureStream(tick=1.0, lateness=0.0)
    frames = list(s.push(events([dict(client="a", start=0.0, end=5.0), dict(client="a", start=5.0, end=9.0)])))
    frames += list(s.finish())
    assert all(np.isnan(_surge(f, "a")) for f in frames)


def _trickle(client: str, t0: float, t1: float, every: float) -> list[dict]:
    """A program polling (204 every 25 s) and refused a login (a POST: each an attempt) every ``every`` s."""
    polls = [dict(client=client, start=t, end=t + 25.0, status=204) for t in np.arange(t0, t1 - 25.0, 25.0)]
    return polls + [dict(client=client, start=t, end=t + 0.2, status=401, path="/login", method="POST")
                    for t in np.arange(t0 + 1.0, t1, every)]


def test_the_five_minute_window_holds_only_refusals_and_counts_them():
    s = FeatureStream(tick=1.0, lateness=0.0)
    ev = events(_trickle("t", 0.0, 600.0, 15.0)).sort_values("end", ignore_index=True)
    frames = list(s.push(ev)) + list(s.finish())
    i = FEATURE_NAMES.index("refusals_top_ua_300s")
    last = frames[-1]
    # at 600 (the last 401 ends at 586.2): 401s ending in (300, 600] are those started at 301, 316, ..., 586: 20;
    # the program's polls were answered in the last minute, so it is one served program: 20, not scaled
    assert last.at == 587.0 and last.raw[0, i] == 20.0
    j = FEATURE_NAMES.index("client_errors_top_ua_60s")
    assert last.raw[0, j] == 4.0  # the minute sees 4 of them: within one minute's floor of 6
    # held: 60 s of everything (2 polls, 4 refusals) and 300 s of refusals only (20), never 5 min of polls
    assert s.held_events <= 2 + 4 + 21


def test_idle_clients_are_kept_while_their_refusals_are_in_the_five_minute_window():
    s = FeatureStream(tick=1.0, lateness=0.0)
    rows = [dict(client="r", start=t, end=t + 0.1, status=404, path=f"/p{t}") for t in (10.0, 20.0)]
    rows += [dict(client="q", start=t, end=t + 0.1) for t in np.arange(0.0, 200.0, 5.0)]
    list(s.push(events(rows).sort_values("end", ignore_index=True)))
    s.evict_idle()  # at 195: "r" was last seen at 20.1, past the minute but within five
    assert s.tracked_clients == 2
    frames = list(s.push(events([dict(client="r", start=250.0, end=250.1, status=404, path="/x")])))
    frames += list(s.finish())
    i = FEATURE_NAMES.index("refusals_top_ua_300s")
    row = frames[-1].to_frame().loc["r"]
    assert row.iloc[i] == 3.0  # its two refusals of 10-20 s, kept across the eviction, and this one


def test_the_five_minute_window_knows_which_user_agents_were_served_over_all_five_minutes():
    # an office: 8 browsers each load a page (200) and its two missing touch icons (404) once, at 10-45 s; one
    # loads another page at 200 s. At 201 s every browser was served within five minutes (not within the last
    # minute): each is one served program with 2 refusals, so the most refused is 2, not all 16 summed as
    # if never served. The same as the function over the whole 300 s.
    rows = []
    for k in range(8):
        t, ua = 10.0 + 5 * k, f"Safari/{k}"
        rows += [dict(client="o", start=t, end=t + 0.1, ua=ua, path="/"),
                 dict(client="o", start=t + 0.2, end=t + 0.3, ua=ua, status=404, path="/apple-touch-icon.png"),
                 dict(client="o", start=t + 0.2, end=t + 0.3, ua=ua, status=404,
                      path="/apple-touch-icon-precomposed.png")]
    rows += [dict(client="o", start=200.0, end=200.1, ua="Safari/0", path="/")]
    ev = events(rows).sort_values("end", ignore_index=True)
    s = FeatureStream(tick=1.0, lateness=0.0)
    frames = list(s.push(ev)) + list(s.finish())
    i = FEATURE_NAMES.index("refusals_top_ua_300s")
    assert frames[-1].at == 201.0 and frames[-1].raw[0, i] == 2.0
    assert f.refusals_top_ua(ClientEvents.from_frame(ev, at=201.0, width=300.0)).tolist() == [2.0]


def test_a_window_of_some_events_needs_a_window_of_all():
    from detector.features.catalog import SPECS

    with pytest.raises(ValueError, match="need a window of all events"):
        FeatureStream(specs=(SPECS["refusals_top_ua_300s"],))
