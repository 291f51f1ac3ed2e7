"""The operator commands (cscli-like) on a store file and against a running service over HTTP:
``decisions``, ``allowlist``, ``keys``, ``models``."""

from __future__ import annotations

import json

import pytest

from detector.api import Upkeep
from detector.cli import main
from detector.model import CARD_FILE, save_artifact, set_current
from detector.store import SqliteStore

from ..api.test_http import T0


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_keys_add_list_revoke(tmp_path, capsys):
    db = str(tmp_path / "s.db")
    code, token, err = run(capsys, "keys", "add", "--role", "bouncer", "edge-1", "--store", db)
    token = token.strip()
    assert code == 0 and token.startswith("dtk_") and "shown once" in err
    code, out, _ = run(capsys, "keys", "list", "--store", db, "-o", "json")
    assert [(k["name"], k["role"]) for k in json.loads(out)] == [("edge-1", "bouncer")]
    assert token not in (tmp_path / "s.db").read_bytes().decode("latin-1")
    assert run(capsys, "keys", "add", "--role", "bouncer", "edge-1", "--store", db)[0] == 2  # name taken
    store = SqliteStore(db)
    assert store.authenticate(token).name == "edge-1"
    assert run(capsys, "keys", "revoke", "edge-1", "--store", db)[:2] == (0, "key 'edge-1' revoked\n")
    assert store.sync() and store.authenticate(token) is None  # a running service syncs every watch_interval
    code, _, err = run(capsys, "keys", "revoke", "edge-1", "--store", db)
    assert code == 2 and err == "detector keys: no API key named 'edge-1'\n"
    store.close()


def test_decisions_and_allowlist_on_the_store_file(tmp_path, capsys):
    db = str(tmp_path / "s.db")
    SqliteStore(db).close()
    code, out, _ = run(capsys, "decisions", "add", "--ip", "203.0.113.9", "--duration", "2h", "--reason", "stuffing",
                       "--store", db)
    assert code == 0 and "Ip:203.0.113.9" in out and ("2h0m0s" in out or "1h59m59s" in out)
    run(capsys, "decisions", "add", "--range", "198.51.100.0/24", "--type", "throttle", "--store", db)
    code, out, _ = run(capsys, "decisions", "list", "--store", db, "-o", "json")
    listed = json.loads(out)
    assert [(d["value"], d["type"], d["scenario"]) for d in listed] == \
        [("203.0.113.9", "ban", "stuffing"), ("198.51.100.0/24", "throttle", listed[1]["scenario"])]
    assert listed[1]["scenario"].startswith("manual 'throttle' from 'cli:")
    code, out, _ = run(capsys, "allowlist", "add", "198.51.100.0/24", "--reason", "partner", "--store", db)
    assert code == 0 and f"lifted decision(s) {listed[1]['id']}" in out
    code, out, _ = run(capsys, "allowlist", "list", "--store", db, "-o", "json")
    assert [(e["value"], e["reason"]) for e in json.loads(out)] == [("198.51.100.0/24", "partner")]
    code, _, err = run(capsys, "decisions", "add", "--ip", "198.51.100.7", "--store", db)
    assert code == 2 and "allowlisted" in err
    assert run(capsys, "decisions", "delete", "--ip", "203.0.113.9", "--store", db)[1] == "1 decision(s) deleted\n"
    assert run(capsys, "decisions", "list", "--store", db)[1] == "(none)\n"
    assert len(json.loads(run(capsys, "decisions", "list", "--all", "--store", db, "-o", "json")[1])) == 2
    assert run(capsys, "allowlist", "delete", "198.51.100.0/24", "--store", db)[0] == 0
    assert run(capsys, "allowlist", "delete", "198.51.100.0/24", "--store", db)[0] == 2
    for bad in (["decisions", "add", "--store", db], ["decisions", "add", "--ip", "x", "--store", db],
                ["decisions", "add", "--ip", "192.0.2.1", "--duration", "soon", "--store", db],
                ["decisions", "list", "--store", str(tmp_path / "missing.db")]):
        code, out, err = run(capsys, *bad)
        assert code == 2 and err.count("\n") == 1 and err.startswith("detector decisions: "), err


def test_decisions_over_http_with_an_admin_key(make_server, tmp_path, capsys, monkeypatch):
    service, http, clock = make_server(now=T0)
    _, token = service.store.add_key("ops", "admin", T0)
    url = str(http.base_url)
    code, out, _ = run(capsys, "decisions", "add", "--ip", "203.0.113.9", "--type", "throttle", "--duration", "10m",
                       "--url", url, "--api-key", token, "-o", "json")
    made = json.loads(out)
    assert code == 0 and made["duration"] == "10m0s" and made["scenario"] == "manual 'throttle' from 'ops'"
    assert http.get("/authz", headers={"X-Real-IP": "203.0.113.9"}).status_code == 429
    monkeypatch.setenv("DETECTOR_URL", url)
    monkeypatch.setenv("DETECTOR_API_KEY", token)
    code, out, _ = run(capsys, "decisions", "list")
    assert code == 0 and "Ip:203.0.113.9" in out and "throttle" in out
    assert run(capsys, "allowlist", "add", "203.0.113.9")[0] == 0
    assert http.get("/authz", headers={"X-Real-IP": "203.0.113.9"}).status_code == 200
    code, _, err = run(capsys, "decisions", "delete", "--id", str(made["id"]))  # the allowlist lifted it
    assert code == 2 and err.strip().endswith(f"answered 404: no active decision {made['id']}")
    code, _, err = run(capsys, "decisions", "list", "--api-key", "dtk_wrong")
    assert code == 2 and err.strip().endswith("answered 403: access forbidden")
    monkeypatch.delenv("DETECTOR_API_KEY")
    code, _, err = run(capsys, "decisions", "list")
    assert code == 2 and "--api-key" in err


def test_a_running_service_picks_up_store_writes_from_the_cli(make_server, capsys):
    service, http, clock = make_server(now=T0)
    db = str(service.store._backend.path)
    run(capsys, "decisions", "add", "--ip", "203.0.113.77", "--store", db)
    assert http.get("/authz", headers={"X-Real-IP": "203.0.113.77"}).status_code == 200  # not yet seen
    Upkeep(service, clock, 1.0).run_once()
    assert http.get("/authz", headers={"X-Real-IP": "203.0.113.77"}).status_code == 403
    token = run(capsys, "keys", "add", "--role", "bouncer", "late", "--store", db)[1].strip()
    assert http.get("/v1/decisions", headers={"X-Api-Key": token}).status_code == 200  # a key works at once


@pytest.fixture
def models(tmp_path, small_model):
    root = tmp_path / "models"
    for version in ("v1", "v2", "bad"):
        save_artifact(small_model[0], root, version)
    card = json.loads((root / "bad" / CARD_FILE).read_text())
    (root / "bad" / CARD_FILE).write_text(json.dumps({**card, "features": card["features"][::-1]}))
    set_current(root, "v1")
    return root


def test_models_list_promote_rollback(models, capsys):
    code, out, _ = run(capsys, "models", "list", "--models-dir", str(models), "-o", "json")
    assert code == 0 and [(m["version"], m["current"]) for m in json.loads(out)] == \
        [("bad", False), ("v1", True), ("v2", False)]
    assert run(capsys, "models", "promote", "v2", "--models-dir", str(models))[0] == 0
    assert (models / "current").read_text().strip() == "v2"
    code, _, err = run(capsys, "models", "promote", "bad", "--models-dir", str(models))
    assert code == 2 and "do not match" in err and (models / "current").read_text().strip() == "v2"
    assert run(capsys, "models", "promote", "nope", "--models-dir", str(models))[0] == 2
    assert run(capsys, "models", "rollback", "--models-dir", str(models))[1].strip().endswith("-> v1")
    assert (models / "current").read_text().strip() == "v1"
    code, _, err = run(capsys, "models", "rollback", "--models-dir", str(models))
    assert code == 2 and "nothing to roll back to" in err


def test_a_bad_config_value_is_named(tmp_path, capsys):
    for section, line, name in (("store", "keep_deleted = -1", "store.keep_deleted"),
                                ("decisions", 'shadow = ["everything"]', "decisions.shadow.0"),
                                ("api", "watch_interval = 'often'", "api.watch_interval"),
                                ("policy", "throttle_fpr = 1.5", "policy.throttle_fpr"),
                                ("policy", "throttle_fpr = 0.001\nblock_fpr = 0.01", "policy.block_fpr")):
        path = tmp_path / "bad.toml"
        path.write_text(f"[{section}]\n{line}\n")
        code, _, err = run(capsys, "decisions", "list", "--config", str(path))
        assert code == 2 and f"bad config value for '{name}'" in err, err


def test_promote_refuses_a_model_that_cannot_serve_the_configured_targets(models, small_model, tmp_path, capsys):
    import copy

    old = copy.deepcopy(small_model[0])  # an artifact from before models kept their calibration scores
    del old.calibration_
    save_artifact(old, models, "old")
    config = tmp_path / "targets.toml"
    config.write_text("[policy]\nthrottle_fpr = 0.05\n")
    code, _, err = run(capsys, "models", "promote", "old", "--models-dir", str(models), "--config", str(config))
    assert code == 2 and "keeps no calibration scores" in err and (models / "current").read_text().strip() == "v1"
    # without targets in the config it serves its own thresholds, so it may be made current
    assert run(capsys, "models", "promote", "old", "--models-dir", str(models))[0] == 0
    assert run(capsys, "models", "promote", "v2", "--models-dir", str(models), "--config", str(config))[0] == 0


def test_train_refuses_targets_that_cannot_be_calibrated_before_reading_the_logs(tmp_path, capsys):
    # the log does not exist: the targets are checked first, so the message is about them
    code, _, err = run(capsys, "train", str(tmp_path / "no.log"), "--out", str(tmp_path / "m"),
                       "--throttle-fpr", "0.001", "--block-fpr", "0.01")
    assert code == 2 and "--block-fpr (0.01) <= --throttle-fpr (0.001)" in err, err
    assert not (tmp_path / "m").exists()
