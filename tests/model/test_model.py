"""The model wrapper: estimator contract, score sign, calibration, explanation, artifacts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from detector.features.catalog import FEATURE_NAMES
from detector.features.stream import FeatureStream
from detector.model import AnomalyModel, ModelSchemaError, _fmt, load_artifact, resolve, save_artifact, set_current

from ..conftest import poll_traffic, reconnect_loop


def _loop_rows():
    ev = reconnect_loop("6.6.6.6", 1_764_403_300.0, 1_764_403_360.0)
    stream = FeatureStream(tick=2.0, lateness=1.0)
    frames = list(stream.push(ev)) + list(stream.finish())
    return np.vstack([f.raw for f in frames])


def test_estimator_contract(small_model):
    model, _ = small_model
    assert list(model.feature_names_in_) == list(FEATURE_NAMES)
    assert model.n_features_in_ == len(FEATURE_NAMES)
    assert clone(model).get_params()["n_estimators"] == 50
    with pytest.raises(NotFittedError):
        AnomalyModel().score_samples(np.zeros((1, len(FEATURE_NAMES))))


def test_score_sign_higher_is_more_anomalous(small_model):
    model, _ = small_model
    loop = model.score_samples(_loop_rows())
    stream = FeatureStream(tick=2.0, lateness=1.0)
    normal = np.vstack([f.raw for f in list(stream.push(poll_traffic(seed=1))) + list(stream.finish())])
    ordinary = model.score_samples(normal)
    assert 0 < ordinary.min() and loop.max() <= 1
    assert np.median(loop) > np.quantile(ordinary, 0.99)
    assert loop.max() > model.thresholds_.block


def test_calibration_is_per_client(small_model):
    model, _ = small_model
    scores = np.array([0.1, 0.9, 0.2, 0.3, 0.4, 0.5])
    groups = np.array(["a", "a", "b", "c", "d", "e"])
    # per-client highest: a 0.9, b 0.2, c 0.3, d 0.4, e 0.5; the 0.75 quantile of those is 0.5
    thr = model.calibrate(scores, groups, throttle_fpr=0.25, block_fpr=0.0)
    assert thr.throttle == pytest.approx(0.5) and thr.block == pytest.approx(0.9)
    # block at least throttle + margin x (throttle - median): 0.5 + 0.5 x (0.5 - 0.4) = 0.55 > 0.5
    thr = model.calibrate(scores, groups, throttle_fpr=0.25, block_fpr=0.25)
    assert thr.block == pytest.approx(0.55)


def test_thresholds_for_other_targets_are_read_off_the_kept_calibration_scores(small_model):
    model, _ = small_model
    assert model.thresholds_at() == model.thresholds_  # the model's own targets (0.01, 0.001)
    assert model.thresholds_at(0.01, 0.001) == model.thresholds_
    # the same reading as calibrating again on the clients' highest scores the model kept
    looser = model.thresholds_at(throttle_fpr=0.05)
    again = model.calibrate(model.calibration_, None, throttle_fpr=0.05, block_fpr=0.001)
    assert (looser.throttle, looser.block) == (again.throttle, again.block)
    assert looser.throttle < model.thresholds_.throttle and looser.throttle_fpr == 0.05
    stricter = model.thresholds_at(throttle_fpr=0.002, block_fpr=0.0005)  # a few clients: their highest
    assert stricter.throttle >= model.thresholds_.throttle and stricter.throttle_fpr == 0.002
    assert stricter.single == max(stricter.block, model.single_tick_max_)
    with pytest.raises(ValueError, match="block_fpr .* must not exceed throttle_fpr"):
        model.thresholds_at(throttle_fpr=0.001, block_fpr=0.01)
    with pytest.raises(ValueError, match="throttle_fpr must be at least 0 and below 1"):
        model.thresholds_at(throttle_fpr=1.5)


def test_a_pipeline_serves_the_policys_false_positive_targets(small_model):
    from detector.pipeline import Pipeline
    from detector.policy import PolicyConfig

    model, _ = small_model
    assert Pipeline(model).policy.thresholds == model.thresholds_
    assert Pipeline(model, policy_config=PolicyConfig(throttle_fpr=0.05)).policy.thresholds == model.thresholds_at(0.05)
    # one target set: an unset block target is the model's (0.001), or the throttle target if lower
    assert Pipeline(model, policy_config=PolicyConfig(throttle_fpr=0.0005)).policy.thresholds == \
        model.thresholds_at(0.0005, 0.0005)
    with pytest.raises(ValueError, match=r"policy.block_fpr \(0.05\) is above the throttle target \(0.01, the model's own\)"):
        Pipeline(model, policy_config=PolicyConfig(block_fpr=0.05))
    old = clone(model)  # an artifact from before calibration scores were kept
    old.__dict__.update({k: v for k, v in model.__dict__.items() if k != "calibration_"})
    assert Pipeline(old).policy.thresholds == model.thresholds_  # its own thresholds still serve
    with pytest.raises(ValueError, match="keeps no calibration scores"):
        Pipeline(old, policy_config=PolicyConfig(throttle_fpr=0.05))


def test_contamination_leaves_the_top_clients_out_of_calibration(small_model):
    model = clone(small_model[0]).set_params(contamination=0.2)
    scores = np.array([0.9, 0.2, 0.3, 0.4, 0.5])
    thr = model.calibrate(scores, None, throttle_fpr=0.0, block_fpr=0.0)
    assert thr.throttle == pytest.approx(0.5)  # the top 20 % (0.9) is assumed abusive


def test_missing_features_are_imputed_not_fatal(small_model):
    model, _ = small_model
    row = np.full((1, len(FEATURE_NAMES)), np.nan)
    assert np.isfinite(model.score_samples(row)).all()


def test_explain_names_the_features_outside_the_normal_range(small_model):
    model, _ = small_model
    rows = _loop_rows()
    reasons = model.explain(rows[-1], top=3)
    names = [n for n, _ in reasons]
    assert "aborts_per_ua_10s" in names or "aborts_per_ua_60s" in names
    text = dict(reasons)[names[0]]
    assert "(normal " in text


def test_artifact_round_trip(tmp_path, small_model):
    model, _ = small_model
    path = save_artifact(model, tmp_path, "2026-11-29.1", {"logs": ["x.log"]})
    set_current(tmp_path, "2026-11-29.1")
    assert resolve(tmp_path) == path and resolve(tmp_path / "current") == path
    loaded, card = load_artifact(tmp_path / "current")
    assert card["version"] == "2026-11-29.1" and card["features"] == list(FEATURE_NAMES)
    assert card["thresholds"]["throttle"] == pytest.approx(model.thresholds_.throttle)
    assert card["libraries"]["scikit-learn"]
    rows = _loop_rows()
    np.testing.assert_array_equal(loaded.score_samples(rows), model.score_samples(rows))


def test_schema_mismatch_is_refused(tmp_path, small_model):
    path = save_artifact(small_model[0], tmp_path, "v1")
    card = json.loads((path / "card.json").read_text())
    card["features"] = card["features"][:-1] + ["something_else"]
    (path / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelSchemaError, match="do not match"):
        load_artifact(path)


def test_not_an_artifact(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a model artifact"):
        load_artifact(tmp_path)


def test_fit_model_leaves_incident_ticks_out_of_calibration(small_model):
    from detector.pipeline import TrainingRows, fit_model
    from detector.policy import PolicyConfig
    from detector.records import IngestStats

    stream = FeatureStream(tick=2.0, lateness=1.0)
    frames = list(stream.push(poll_traffic(clients=40, seconds=300))) + list(stream.finish())
    raw = np.vstack([f.raw for f in frames])
    clients = np.concatenate([f.clients for f in frames])
    at = np.concatenate([np.full(len(f), f.at) for f in frames])
    loop = _loop_rows()  # a reconnect loop's rows, all during an "outage"
    loop = np.vstack([loop[::2], loop[1::2]])  # its highest ticks (in a row when in time order) apart
    t_loop = np.full(len(loop), at.max() + 10)
    rows = TrainingRows(
        raw=np.vstack([raw, loop]), clients=np.r_[clients, ["6.6.6.6"] * len(loop)].astype(object),
        groups=np.r_[np.char.add("0:", clients.astype(str)), ["0:6.6.6.6"] * len(loop)].astype(object),
        at=np.r_[at, t_loop], failing=np.r_[np.zeros(len(at)), np.full(len(loop), 0.9)], stats=IngestStats())
    # beyond=0: the loop's rows alone pass the ceilings, and cross-fitted it would be judged against
    # ceilings without it (test_thresholds_are_calibrated_on_cross_fitted_ceilings)
    params = dict(n_estimators=30, max_samples=256, throttle_fpr=0.0, block_fpr=0.0, beyond=0.0)
    guarded = fit_model(rows, PolicyConfig(incident_share=0.3, confirm_within=0), **params)
    unguarded = fit_model(rows, PolicyConfig(incident_share=1.0, confirm_within=0), **params)
    # with throttle_fpr 0 the threshold is the highest training client: the loop only when not excluded
    loop_max = guarded.score_samples(loop).max()
    assert guarded.thresholds_.throttle < loop_max
    assert unguarded.thresholds_.incident is None  # no incident ticks in training: no verdicts in incidents
    assert guarded.thresholds_.incident is None  # one client in incidents: too few to calibrate on
    loop_scores = unguarded.score_samples(loop)
    assert unguarded.thresholds_.throttle == pytest.approx(loop_scores.max())
    # calibrated on confirmed scores (the lower of two ticks in a row), the loop's single highest tick
    # does not set the threshold: its best pair of consecutive ticks does
    confirmed = fit_model(rows, PolicyConfig(incident_share=1.0, confirm_within=30), **params)
    best_pair = np.minimum(loop_scores[1:], loop_scores[:-1]).max()
    assert best_pair < loop_scores.max()
    assert confirmed.thresholds_.throttle == pytest.approx(best_pair)
    # one unconfirmed tick acts only past every training client's highest single tick (here the loop's)
    assert confirmed.training_["single_tick_max"] == pytest.approx(loop_scores.max())
    assert confirmed.thresholds_.single == pytest.approx(max(confirmed.thresholds_.block, loop_scores.max()))
    # ... counted outside incidents: with the loop's ticks an incident, the ordinary clients' highest
    assert guarded.training_["single_tick_max"] == pytest.approx(guarded.score_samples(raw).max())


def test_the_incident_threshold_is_the_tail_of_clients_scores_during_incidents(small_model):
    model, _ = small_model
    per_client = np.linspace(0.5, 0.9, 400)  # 400 clients' scores in incidents, top 1 %: 4 < min_tail
    clients = np.array([f"c{i}" for i in range(400)])
    assert model.calibrate_incident(per_client, clients) == pytest.approx(
        max(np.quantile(per_client, 1 - model.throttle_fpr), model.thresholds_.throttle))
    assert model.calibrate_incident(per_client[:100], clients[:100]) is None  # under 200 clients
    low = np.full(400, 0.1)  # incidents calmer than ordinary ticks: never below the ordinary threshold
    assert model.calibrate_incident(low, clients) == model.thresholds_.throttle


TOY_CLIENTS = np.repeat(np.arange(100), 4).astype(str)  # 400 rows, four per client


def _noise(seed: int) -> tuple[np.random.Generator, np.ndarray]:
    """400 rows of uniform noise in [0, 1] for every feature after log1p (raw: at most e - 1), and the
    generator that drew them, for the test's further draws."""
    rng = np.random.default_rng(seed)
    return rng, np.expm1(rng.uniform(0.0, 1.0, (400, len(FEATURE_NAMES))))


def _toy_model(beyond: float = 1.0) -> AnomalyModel:
    """A forest over ``_noise``."""
    _rng, raw = _noise(3)
    return AnomalyModel(n_estimators=20, max_samples=128, beyond=beyond).fit(raw, groups=TOY_CLIENTS)


def test_a_ceiling_feature_beyond_the_training_maximum_raises_the_score():
    model, flat = _toy_model(), _toy_model(beyond=0.0)
    i = FEATURE_NAMES.index("client_errors_top_ua_60s")
    row = np.full((1, len(FEATURE_NAMES)), np.expm1(0.5))
    far = row.copy()
    far[0, i] = np.expm1(model.ceiling_[i] + 2.0)  # two log units past the most any training row had
    # the forest alone puts it in the same leaves as the training maximum ...
    assert flat.score_samples(far)[0] == pytest.approx(
        flat.score_samples(np.where(np.arange(len(FEATURE_NAMES)) == i, np.expm1(model.ceiling_[i]), row))[0])
    # ... the ceiling moves it towards 1: the distance left shrinks by exp(-2)
    forest = model._forest_score(model._transform(far))[0]
    assert model.score_samples(far)[0] == pytest.approx(1 - (1 - forest) * np.exp(-2.0))
    assert model.score_samples(far)[0] > model.thresholds_.block


def test_only_ceiling_features_have_a_ceiling():
    model = _toy_model()
    ceilings = {n for n, c in zip(FEATURE_NAMES, np.isfinite(model.ceiling_)) if c}
    assert "client_errors_top_ua_60s" in ceilings and "rpm_per_ua_60s" in ceilings
    # how many people share an address, and the neighbours' traffic, are no program's ceiling
    # (nor are the open requests of its busiest user agent: colleagues on one browser build behind a NAT)
    assert not ceilings & {"rpm_60s", "user_agents_60s", "prefix_failures_per_ua_60s", "irregularity_60s",
                           "busiest_ua_concurrency_10s", "busiest_ua_concurrency_60s"}
    i = FEATURE_NAMES.index("user_agents_60s")
    row = np.full((1, len(FEATURE_NAMES)), np.expm1(0.5))
    many = row.copy()
    many[0, i] = 500.0
    forest = model._forest_score(model._transform(many))[0]
    assert model.score_samples(many)[0] == pytest.approx(forest)


def test_thresholds_are_calibrated_on_cross_fitted_ceilings():
    """One training log holds a client far past the other log's highest: calibration sees its raised
    score (judged against the other log's ceiling), so the threshold sits above the forest's alone."""
    rng, raw = _noise(5)
    i = FEATURE_NAMES.index("aborts_per_ua_60s")
    raw[:200, i] = np.expm1(rng.uniform(0.0, 0.2, 200))  # log "a" never aborts much ...
    raw[200:, i] = np.expm1(rng.uniform(0.0, 3.0, 200))  # ... log "b" does
    groups = np.array([f"{'a' if k < 200 else 'b'}:{k // 2}" for k in range(400)])
    folds = np.array([g[0] for g in groups])
    kw = dict(n_estimators=20, max_samples=128, throttle_fpr=0.05, tail_share=0.0)
    crossed = AnomalyModel(**kw).fit(raw, groups=groups, folds=folds)
    forest_only = AnomalyModel(**kw, beyond=0.0).fit(raw, groups=groups, folds=folds)
    assert crossed.thresholds_.throttle > forest_only.thresholds_.throttle + 0.1
    # the served ceiling is the maximum over both logs
    assert crossed.ceiling_[i] == pytest.approx(np.log1p(raw[:, i]).max())


def test_explain_names_a_feature_past_the_ceiling_first_with_the_training_maximum():
    model = _toy_model()
    i = FEATURE_NAMES.index("client_errors_top_ua_60s")
    row = np.expm1(np.full(len(FEATURE_NAMES), 0.5))
    row[FEATURE_NAMES.index("rpm_60s")] = 1e6  # far outside too, but no ceiling
    row[i] = 53.0
    name, text = model.explain(row, top=2)[0]
    assert name == "client_errors_top_ua_60s"
    assert text.startswith("4xx answers per minute of its most refused user agent 53 (normal ")
    assert text.endswith(f"; past the training ceiling {_fmt(model.ceiling_raw_[i])})")


def test_a_count_the_training_day_barely_saw_is_not_suspicious_at_its_first_events():
    _rng, raw = _noise(4)
    i = FEATURE_NAMES.index("throttled_per_ua_60s")
    raw[:, i] = 0.0  # nobody was ever throttled in training
    model = AnomalyModel(n_estimators=20, max_samples=128).fit(raw, groups=TOY_CLIENTS)
    assert model.ceiling_[i] == pytest.approx(np.log1p(6.0))  # the floor: one event in a 10 s window
    j = FEATURE_NAMES.index("client_errors_top_ua_60s")
    raw[:, j] = np.r_[np.full(399, 0.0), 1.0]  # one 4xx a minute, once: the floor still holds
    model = AnomalyModel(n_estimators=20, max_samples=128).fit(raw, groups=TOY_CLIENTS)
    assert model.ceiling_[j] == pytest.approx(np.log1p(6.0))
    row = np.expm1(np.full((1, len(FEATURE_NAMES)), 0.5))
    forest = model._forest_score(model._transform(row))[0]
    one, many = row.copy(), row.copy()
    one[0, i], many[0, i] = 1.0, 60.0  # one 429 in the minute; one a second
    assert model.score_samples(one)[0] == pytest.approx(model._forest_score(model._transform(one))[0])
    assert model.score_samples(many)[0] > forest + 0.1


def test_fit_model_cross_fits_the_ceilings_per_training_log():
    """``fit_model`` hands each row's log to the model as its fold: the thresholds are those of a model
    fitted with ``folds`` = the logs, not with two halves of the clients."""
    from detector.pipeline import TrainingRows, fit_model
    from detector.policy import PolicyConfig
    from detector.records import IngestStats

    rng, raw = _noise(6)
    i = FEATURE_NAMES.index("aborts_per_ua_60s")
    raw[200:, i] = np.expm1(rng.uniform(0.0, 4.0, 200))  # the second log aborts far more
    groups = np.array([f"{k // 200}:c{k // 4}" for k in range(400)], dtype=object)
    rows = TrainingRows(raw=raw, clients=groups, groups=groups, at=np.tile(np.arange(200.0), 2),
                        failing=np.zeros(400), stats=IngestStats())
    kw = dict(n_estimators=20, max_samples=128, throttle_fpr=0.05, tail_share=0.0)
    fitted = fit_model(rows, PolicyConfig(confirm_within=0), **kw)
    by_log = AnomalyModel(**kw).fit(raw, groups=groups, folds=np.array([g[0] for g in groups]))
    by_halves = AnomalyModel(**kw).fit(raw, groups=groups)
    assert fitted.thresholds_.throttle == pytest.approx(by_log.thresholds_.throttle)
    assert fitted.thresholds_.throttle != pytest.approx(by_halves.thresholds_.throttle)


def test_a_feature_outside_the_forest_acts_only_past_its_ceiling():
    """``refusals_top_ua_300s`` is no input of the forest: the forest, its calibration and its thresholds are
    those of a fit without it, a client below its ceiling scores as the forest has it, and it is named as a
    reason only past it."""
    from dataclasses import replace

    from detector.features.catalog import FEATURES

    i = FEATURE_NAMES.index("refusals_top_ua_300s")
    assert not FEATURES[i].forest
    rng, raw = _noise(7)
    raw[:, i] = np.r_[np.zeros(396), 1.0, 2.0, 3.0, 5.0]  # a few people mistyping a password
    outside = AnomalyModel(n_estimators=20, max_samples=128).fit(raw, groups=TOY_CLIENTS)
    inside = AnomalyModel(n_estimators=20, max_samples=128,
                          specs=tuple(replace(s, forest=True) if s.forest is False else s for s in FEATURES)
                          ).fit(raw, groups=TOY_CLIENTS)
    others = [k for k in range(len(FEATURE_NAMES)) if k != i]
    without = AnomalyModel(n_estimators=20, max_samples=128, specs=tuple(FEATURES[k] for k in others)
                           ).fit(raw[:, others], groups=TOY_CLIENTS)
    assert outside.thresholds_ == without.thresholds_  # the same forest: nothing of the column reaches it
    assert inside.thresholds_ != outside.thresholds_
    assert outside.ceiling_raw_[i] == pytest.approx(6.0)  # the floor: nobody passed 6
    row = np.expm1(np.full((1, len(FEATURE_NAMES)), 0.5))
    row[0, i] = 6.0
    assert outside.score_samples(row)[0] == pytest.approx(without.score_samples(row[:, others])[0])
    assert "refusals_top_ua_300s" not in dict(outside.explain(row[0]))
    row[0, i] = 20.0  # a login every 15 s for five minutes
    assert outside.score_samples(row)[0] > without.score_samples(row[:, others])[0] + 0.1
    name, text = outside.explain(row[0])[0]
    assert name == "refusals_top_ua_300s" and text.endswith("; past the training ceiling 6)")


def test_a_feature_outside_the_forest_must_have_a_ceiling():
    from dataclasses import replace

    from detector.features.catalog import SPECS

    with pytest.raises(ValueError, match="rpm_60s: a feature outside the forest is read only past its ceiling"):
        replace(SPECS["rpm_60s"], forest=False)
