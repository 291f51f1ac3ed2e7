"""The feature stream: ticks on event time, lateness, eviction, and one path for batch sizes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from detector.features.catalog import FEATURE_NAMES
from detector.features.stream import FeatureStream

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
