"""The model lifecycle over a real socket: /v1/model, reload on demand and when ``current`` changes, a
schema-mismatch model refused while the old one keeps serving, feature state kept across a swap."""

from __future__ import annotations

import copy
import json
import time

import pytest

from detector.api import Upkeep
from detector.features.catalog import FEATURE_NAMES
from detector.model import CARD_FILE, save_artifact, set_current
from detector.records import Thresholds

from .conftest import key
from .test_http import ATTACKER, T0, _feed


@pytest.fixture
def models(tmp_path, small_model):
    """A models folder: test-1 (current), test-2 (other thresholds), bad (another feature schema)."""
    model = small_model[0]
    root = tmp_path / "models"
    save_artifact(model, root, "test-1", {"source": "tests"})
    other = copy.deepcopy(model)
    other.thresholds_ = Thresholds(throttle=0.93, block=0.97)
    save_artifact(other, root, "test-2", {"source": "tests, recalibrated"})
    save_artifact(model, root, "bad")
    card = json.loads((root / "bad" / CARD_FILE).read_text())
    card["features"] = card["features"][:-1] + ["a_feature_this_code_does_not_compute"]
    (root / "bad" / CARD_FILE).write_text(json.dumps(card))
    set_current(root, "test-1")
    return root


def test_model_card(make_server, model_dir):
    service, http, clock = make_server()
    m = http.get("/v1/model").json()
    assert m["version"] == "test-1" and m["features"] == list(FEATURE_NAMES)
    assert m["thresholds"] == {"throttle": service.thresholds.throttle, "block": service.thresholds.block}
    assert m["training"]["source"] == "tests" and m["training"]["rows"] > 0 and "scikit-learn" in m["libraries"]


def test_reload_on_demand_and_refusal_of_a_mismatched_schema(make_server, models):
    service, http, clock = make_server(now=T0 + 600, model=models / "current")
    admin = key(service, "admin")
    _feed(service)
    stream, states = service.pipeline.stream, dict(service.pipeline.policy.states)
    assert ATTACKER in states
    set_current(models, "test-2")
    r = http.post("/v1/admin/model/reload", headers=admin)
    assert (r.status_code, r.json()) == (200, {"previous": "test-1", "version": "test-2"})
    assert http.get("/v1/model").json()["thresholds"] == {"throttle": 0.93, "block": 0.97}
    assert http.get("/score", params={"client": "10.1.3.7"}).json()["thresholds"]["throttle"] == 0.93
    assert http.get("/authz", headers={"X-Real-IP": "10.1.3.7"}).headers["X-Model-Version"] == "test-2"
    # feature state and policy states survive the swap; the policy scores against the new thresholds
    assert service.pipeline.stream is stream and service.pipeline.policy.states.keys() == states.keys()
    assert service.pipeline.policy.thresholds.throttle == 0.93 and service.pipeline.model_version == "test-2"
    set_current(models, "bad")
    refused = http.post("/v1/admin/model/reload", headers=admin)
    assert refused.status_code == 409
    assert "still serving test-2" in refused.json()["message"] and "do not match" in refused.json()["message"]
    assert http.get("/v1/model").json()["version"] == "test-2"
    assert http.get("/authz", headers={"X-Real-IP": ATTACKER}).headers["X-Model-Version"] == "test-2"
    (models / "current").write_text("missing\n")
    assert http.post("/v1/admin/model/reload", headers=admin).status_code == 404
    metrics = http.get("/metrics").text
    assert 'detector_model_reloads_total{result="ok"} 1.0' in metrics
    assert 'detector_model_reloads_total{result="refused"} 2.0' in metrics
    assert 'detector_model_info{version="test-2"} 1.0' in metrics


def test_a_model_that_cannot_serve_the_configured_targets_is_refused(make_server, models, small_model):
    model = small_model[0]
    old = copy.deepcopy(model)  # an artifact from before models kept their calibration scores
    del old.calibration_
    save_artifact(old, models, "old")
    service, http, clock = make_server(model=models / "current", policy={"throttle_fpr": 0.05})
    served = model.thresholds_at(0.05, min(model.block_fpr, 0.05))
    assert http.get("/v1/model").json()["thresholds"] == {"throttle": served.throttle, "block": served.block}
    set_current(models, "old")
    refused = http.post("/v1/admin/model/reload", headers=key(service, "admin"))
    assert refused.status_code == 409 and "keeps no calibration scores" in refused.json()["message"]
    assert http.get("/v1/model").json()["version"] == "test-1" and service.thresholds == served


def test_reload_when_current_changes(make_server, models):
    service, http, clock = make_server(model=models / "current")
    upkeep = Upkeep(service, clock, interval=0.05)
    upkeep.start()
    try:
        set_current(models, "test-2")
        deadline = time.monotonic() + 10
        while http.get("/v1/model").json()["version"] != "test-2":
            assert time.monotonic() < deadline, "the watcher did not reload"
            time.sleep(0.05)
    finally:
        upkeep.stop()
        upkeep.join(5)
    set_current(models, "bad")
    outcome = upkeep.run_once()
    assert outcome.startswith("refused:") and "do not match" in outcome
    assert upkeep.run_once() is None  # refused once, not retried until current changes again
    assert http.get("/v1/model").json()["version"] == "test-2"
    set_current(models, "test-1")
    assert upkeep.run_once() == "reloaded test-1"
