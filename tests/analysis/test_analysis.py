"""detector.analysis on hand-made events, rows and scores, with the numbers worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detector import analysis as a
from detector.features.catalog import FEATURE_NAMES
from detector.pipeline import TrainingRows
from detector.records import IngestStats, Thresholds

from ..conftest import events, nginx_line, reconnect_loop

T0 = 1_764_403_200.0  # 2025-11-29 08:00:00 UTC


def _rows(at, clients, raw=None, stats=IngestStats()):
    at = np.asarray(at, dtype=float)
    raw = np.zeros((len(at), len(FEATURE_NAMES))) if raw is None else raw
    clients = np.asarray(clients, dtype=object)
    return TrainingRows(raw, clients, np.char.add("0:", clients.astype(str)).astype(object), at, np.zeros(len(at)),
                        stats)


def test_read_events_keeps_the_time_range_and_counts_bad_lines(tmp_path):
    log = tmp_path / "access.log"
    lines = [nginx_line("10.0.0.1", T0 + 10, 5.0), nginx_line("10.0.0.2", T0 + 70, 25.0), b"not json",
             nginx_line("10.0.0.1", T0 + 130, 1.0)]
    log.write_bytes(b"\n".join(lines) + b"\n")
    frame, stats = a.read_events([log], "nginx-json", start=T0 + 60, end=T0 + 130)
    assert frame["client"].tolist() == ["10.0.0.2"]  # end in [start, end): T0+130 is out
    assert (stats.read, stats.parsed, stats.malformed) == (4, 3, {"invalid_json": 1})
    empty, _ = a.read_events([log], "nginx-json", start=T0 + 1000)
    assert empty.empty and list(empty.columns)[:3] == ["client", "start", "end"]


def test_select_rows_and_overview():
    rows = _rows([T0, T0 + 2, T0 + 4], ["a", "b", "a"], stats=IngestStats(10, 9, {"empty": 1}))
    kept = a.select_rows(rows, T0 + 2, T0 + 4)
    assert kept.clients.tolist() == ["b"] and kept.at.tolist() == [T0 + 2]
    ov = a.overview(rows)
    assert ov["lines read"] == 10 and ov["lines rejected"] == 1 and ov["clients"] == 2
    assert ov["feature rows (client x tick)"] == 3
    assert ov["first tick"] == "2025-11-29 08:00:00 UTC" and ov["last tick"] == "2025-11-29 08:00:04 UTC"


def test_malformed_table_most_first_with_shares():
    table = a.malformed_table(IngestStats(read=10, parsed=7, malformed={"empty": 1, "invalid_json": 2}))
    assert table.index.tolist() == ["invalid_json", "empty"]
    assert table["lines"].tolist() == [2, 1] and table["share of lines read"].tolist() == [0.2, 0.1]
    assert a.malformed_table(IngestStats()).empty


def test_feature_table_quantiles_over_measured_rows():
    raw = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 0.0], [np.nan, 10.0]])
    table = a.feature_table(raw, ("gap_60s", "made_up"))
    hold = table.loc["gap_60s"]
    assert hold["measured"] == 0.8 and hold["p50"] == 2.5 and hold["max"] == 4.0
    assert hold["p5"] == pytest.approx(1.15) and hold["p95"] == pytest.approx(3.85)  # 1 + 0.05*3, 1 + 0.95*3
    assert hold["measures"] == "re-requests after each response in (s)" and table.loc["made_up", "measures"] == ""


def test_populations_from_traits_and_from_labels():
    ev = events([dict(client="one", start=0, end=1, ua="x")]
                + [dict(client="few", start=0, end=1, ua=f"u{i}") for i in range(3)]
                + [dict(client="office", start=0, end=1, ua=f"u{i}") for i in range(12)])
    traits = a.populations(ev)
    assert traits.to_dict() == {"few": "2-9 user agents", "office": "10+ user agents", "one": "one user agent"}
    labels = pd.DataFrame({"class": ["browser", "scanner"], "label": ["normal", "abusive"]},
                          index=pd.Index(["one", "office"], name="client"))
    assert a.populations(ev, labels).to_dict() == {"one": "browser", "few": "unlabelled", "office": "scanner"}
    assert a.populations(ev, labels, "label")["office"] == "abusive"


def test_requests_and_statuses_per_minute_fill_empty_minutes():
    ev = events([dict(client="a", start=T0, end=T0 + 0.5), dict(client="a", start=T0, end=T0 + 30, status=503),
                 dict(client="b", start=T0, end=T0 + 61, status=429), dict(client="c", start=T0, end=T0 + 185, status=499)])
    groups = pd.Series({"a": "browser", "b": "browser", "c": "scanner"})
    per = a.requests_per_minute(ev, groups)
    assert per.index.tolist() == [T0, T0 + 60, T0 + 120, T0 + 180]
    assert per["browser"].tolist() == [2, 1, 0, 0] and per["scanner"].tolist() == [0, 0, 0, 1]
    assert a.requests_per_minute(ev)["requests"].tolist() == [2, 1, 0, 1]
    status = a.status_per_minute(ev)
    assert status.columns.tolist() == ["2xx/3xx", "429 throttled", "499 aborted", "5xx"]
    assert status.loc[T0].tolist() == [1, 0, 0, 1] and status.loc[T0 + 180, "499 aborted"] == 1


def test_hold_times_and_reconnect_gaps_per_user_agent():
    ev = events([dict(client="a", start=0.0, end=10.0, ua="u1"), dict(client="a", start=10.5, end=20.0, ua="u1"),
                 dict(client="a", start=19.0, end=25.0, ua="u1"), dict(client="a", start=1.0, end=2.0, ua="u2"),
                 dict(client="b", start=3.0, end=4.0), dict(client="b", start=0.0, end=1.0)])
    assert a.hold_times(ev).groupby(level=0).sum().to_dict() == {"a": 10 + 9.5 + 6 + 1, "b": 2.0}
    gaps = a.reconnect_gaps(ev)
    # a/u1: 10.5 - 10 = 0.5, then 19 - 20 < 0 -> 0; a/u2 has no next request; b (sorted by start): 3 - 1 = 2
    assert gaps.index.tolist() == ["a", "a", "b"] and gaps.tolist() == [0.5, 0.0, 2.0]
    no_duration = ev.assign(duration=np.nan)
    assert a.hold_times(no_duration).empty


def test_distributions_by_population():
    values = pd.Series([1.0, 2.0, 3.0, 10.0, 5.0], index=["a", "a", "b", "c", "z"])
    groups = pd.Series({"a": "browser", "b": "browser", "c": "scanner"})
    split = a.by_population(values, groups)
    assert list(split) == ["browser", "scanner", "unlabelled"]
    assert split["browser"].tolist() == [1.0, 2.0, 3.0]
    table = a.distribution_table(values, groups)
    assert table.loc["browser", "values"] == 3 and table.loc["browser", "clients"] == 2
    assert table.loc["browser", "p50"] == 2.0 and table.loc["browser", "p25"] == 1.5
    assert table.loc["unlabelled", "clients"] == 1


def test_client_max_scores_and_levels():
    scores = a.client_max_scores(np.array([0.5, 0.9, 0.6, 0.7]), np.array(["a", "b", "a", "c"]))
    assert scores.to_dict() == {"b": 0.9, "c": 0.7, "a": 0.6} and scores.index.tolist() == ["b", "c", "a"]
    thr = Thresholds(throttle=0.65, block=0.8)
    assert a.level(scores, thr).tolist() == ["block", "throttle", "allow"]


def test_top_clients_names_the_highest_with_the_models_reasons(small_model):
    from detector.features.stream import FeatureStream

    model, _ = small_model
    stream = FeatureStream(tick=2.0, lateness=1.0)
    ev = pd.concat([reconnect_loop("6.6.6.6", T0 + 100, T0 + 160), events(
        [dict(client="10.0.0.1", start=T0 + 100 + 25 * i, end=T0 + 125 + 25 * i, ua="Mozilla") for i in range(3)])])
    frames = [f for f in list(stream.push(ev.sort_values("end"))) + list(stream.finish()) if len(f)]
    rows = _rows(np.concatenate([np.full(len(f), f.at) for f in frames]), np.concatenate([f.clients for f in frames]),
                 np.vstack([f.raw for f in frames]))
    scores = model.score_samples(rows.raw)
    top = a.top_clients(model, rows, scores, top=1, groups=pd.Series({"6.6.6.6": "reconnect_loop"}))
    assert top.index.tolist() == ["6.6.6.6"] and top.loc["6.6.6.6", "population"] == "reconnect_loop"
    assert top.loc["6.6.6.6", "score"] == pytest.approx(scores[rows.clients == "6.6.6.6"].max())
    assert top.loc["6.6.6.6", "level"] == "block" and "(normal" in top.loc["6.6.6.6", "reasons"]
    assert top.loc["6.6.6.6", "at"].startswith("2025-11-29 08:0")
    assert a.top_clients(model, rows, np.empty(0)).empty


NEW, OLD = Thresholds(throttle=0.6, block=0.8), Thresholds(throttle=0.75, block=0.85)
NEW_SCORES = pd.Series({"a": 0.9, "b": 0.65, "c": 0.5})
OLD_SCORES = pd.Series({"a": 0.7, "b": 0.4, "c": 0.8})


def test_compare_models_counts_and_overlap():
    table = a.compare_models(NEW_SCORES, OLD_SCORES, NEW, OLD, ("new", "old"))
    assert table.loc["throttle threshold", "difference"] == pytest.approx(-0.15)
    assert table.loc["clients reaching throttle"].tolist()[:2] == [2, 1]  # new: a, b; old: c
    assert table.loc["clients reaching block"].tolist()[:2] == [1, 0]
    assert table.loc["median client score", "new"] == 0.65 and table.loc["median client score", "old"] == 0.7
    assert table.loc["flagged by both", "new"] == 0 and table.loc["flagged only by new", "new"] == 2
    assert table.loc["flagged only by old", "new"] == 1
    assert table.index.name == "clients scored: 3"


def test_flag_changes_lists_who_changes_level():
    changes = a.flag_changes(NEW_SCORES, OLD_SCORES, NEW, OLD)
    assert changes.index.tolist() == ["a", "b", "c"]
    assert changes["new level"].tolist() == ["block", "throttle", "allow"]
    assert changes["current level"].tolist() == ["allow", "allow", "throttle"]
    same = a.flag_changes(NEW_SCORES, NEW_SCORES, NEW, NEW)
    assert same.empty


METRICS = {"model": {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "fpr": 0.01, "flagged": 4, "fp": 2, "blocked": 1},
           "protected_blocks": {"count": 0}, "ranking": {"roc_auc": 0.9, "average_precision": None},
           "time_to_detect": {"median_s": 3.5}, "sources": {"labels": "labels.csv"}}


def test_compare_evaluations_and_card_metrics():
    table = a.compare_evaluations({"new": METRICS, "old": {**METRICS, "model": {**METRICS["model"], "recall": 0.5}}})
    assert table.loc["recall"].tolist() == [1.0, 0.5] and table.loc["F1", "new"] == pytest.approx(2 / 3)
    assert np.isnan(table.loc["average precision", "new"])
    card = a.card_metrics(METRICS)
    assert card["evaluated_on"] == {"labels": "labels.csv"} and card["average precision"] is None
    assert card["clients flagged"] == 4 and card["median time to detect (s)"] == 3.5


def test_describe_training():
    rows = _rows([T0, T0 + 10], ["a", "b"], stats=IngestStats(5, 4, {"empty": 1}))
    d = a.describe_training(rows, ["x.log"], "2026-11-29T00:00:00+00:00", start=T0, extra={"notebook": "n"})
    assert d["span"] == [T0, T0 + 10] and d["time_range"] == [T0, None]
    assert (d["lines"], d["parsed"], d["rejected"], d["malformed"]) == (5, 4, 1, {"empty": 1})
    assert d["notebook"] == "n" and d["logs"] == ["x.log"]
    assert a.describe_training(rows, [], "t")["time_range"] is None
