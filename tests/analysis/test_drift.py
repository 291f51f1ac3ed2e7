"""detector.drift: profiles, bins, PSI and the drift table, against numbers worked out by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from detector import drift as d


def test_profile_quantiles_cdf_and_missing():
    raw = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 5.0], [np.nan, 0.0]])
    p = d.profile(raw, ("x", "y"), probs=(0.5, 0.75))
    assert p.quantiles[:, 0].tolist() == [2.5, 3.25] and p.quantiles[:, 1].tolist() == [0.0, 0.0]
    assert p.cdf[:, 0].tolist() == [0.5, 0.75]  # 2 of 4 values <= 2.5, 3 of 4 <= 3.25
    assert p.cdf[:, 1].tolist() == [0.8, 0.8]  # 4 of 5 values are 0
    assert p.missing.tolist() == [0.2, 0.0] and p.exact


def test_profile_round_trips_through_json():
    p = d.profile(np.array([[1.0, np.nan], [3.0, np.nan]]), ("x", "y"), probs=(0.5,), source="s")
    back = d.FeatureProfile.from_dict(json.loads(json.dumps(p.to_dict())), "card")
    assert back.names == ("x", "y") and back.probs == (0.5,) and back.source == "card"
    assert back.quantiles[0, 0] == 2.0 and np.isnan(back.quantiles[0, 1]) and back.missing.tolist() == [0.0, 1.0]


def test_bins_merge_repeated_quantiles_and_shares_are_right_closed():
    edges, expected = d.bins(np.array([0.0, 0.0, 0.0, 7.0]), np.array([0.8, 0.8, 0.8, 0.95]))
    assert edges.tolist() == [0.0, 7.0] and expected.round(3).tolist() == [0.8, 0.15, 0.05]
    assert d.shares(np.array([0.0, 0.0, 3.0, 7.0, 9.0]), edges).tolist() == [0.4, 0.4, 0.2]


def test_psi_by_hand():
    # training: values 1..10, one quantile at 0.5 (5.5), half the values at or below it
    reference = d.profile(np.arange(1.0, 11.0)[:, None], ("x",), probs=(0.5,))
    same = d.drift_table(reference, np.arange(1.0, 11.0)[:, None], ("x",))
    assert same.loc["x", "psi"] == 0.0 and same.loc["x", "drift"] == "stable"
    moved = d.drift_table(reference, np.full((4, 1), 10.0), ("x",))
    # expected (0.5, 0.5), actual (0, 1) floored at 1e-4
    by_hand = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + (1 - 0.5) * math.log(1 / 0.5)
    assert moved.loc["x", "psi"] == pytest.approx(by_hand) and moved.loc["x", "drift"] == "major"
    assert d.psi(np.array([0.5, 0.5]), np.array([0.6, 0.4])) == pytest.approx(
        0.1 * math.log(0.6 / 0.5) - 0.1 * math.log(0.4 / 0.5))


def test_drift_table_shift_and_missing_shares():
    train = np.arange(1.0, 101.0)[:, None]
    reference = d.profile(train, ("x",))
    now = np.vstack([train + 10.0, [[np.nan]] * 25])
    row = d.drift_table(reference, now, ("x",)).loc["x"]
    assert row["train p50"] == 50.5 and row["now p50"] == 60.5
    assert row["median shift"] == pytest.approx(10.0 / (95.05 - 5.95))  # in training p5–p95 spans
    assert row["missing train"] == 0.0 and row["missing now"] == 0.2
    assert 0 < row["psi"]


def test_drift_matches_features_by_name():
    reference = d.profile(np.ones((5, 2)), ("old_only", "shared"))
    table = d.drift_table(reference, np.ones((5, 2)), ("shared", "new_only"))
    assert table.index.tolist() == ["shared"]
    assert d.unmatched(reference, ("shared", "new_only")) == {"only in training": ["old_only"],
                                                             "only now": ["new_only"]}


def test_profile_from_a_model_without_one_in_its_card(small_model):
    model, card = small_model
    coarse = d.profile_of(model, card)
    assert not coarse.exact and coarse.probs == d.REFERENCE_PROBS and "coarse" in coarse.source
    assert np.array_equal(coarse.quantiles, model.reference_) and np.isnan(coarse.missing).all()
    stored = d.profile(np.ones((3, len(card["features"]))), tuple(card["features"]))
    fine = d.profile_of(model, {**card, "training": {"feature_profile": stored.to_dict()}})
    assert fine.exact and fine.probs == d.PROBS and "model card of test-1" in fine.source
