"""Replay mode: a small model replayed over a small log, checked against the file mode on its own output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

from detector.evaluate import evaluate_files, evaluate_log, write_report
from detector.evaluate.replay import MaxScoreStore
from detector.model import save_artifact
from detector.pipeline import fit_model, training_rows

from ..conftest import nginx_line

T = 1_764_403_200.0
HEADER = "client,label,class,population,attack_start,attack_end,active_in_outage\n"


def polls(client: str, rng: np.random.Generator, t0: float, t1: float, hold: float, gap: float,
          ua: str = "Mozilla/5.0") -> list[tuple[float, bytes]]:
    """Back-to-back long polls: each held ~``hold`` s, the next sent ~``gap`` s after the answer."""
    out, t = [], t0 + rng.uniform(0, 5)
    while t < t1:
        duration = max(0.01, hold * rng.uniform(0.9, 1.1))
        out.append((t + duration, nginx_line(client, t + duration, duration, ua=ua)))
        t += duration + gap * rng.uniform(0.5, 1.5)
    return out


def write_log(path: Path, entries: list[tuple[float, bytes]]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for _end, line in sorted(entries)))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("replay")
    rng = np.random.default_rng(3)
    normal = [f"10.0.{i}.1" for i in range(40)]  # each in its own /24
    # browsers hold 25 s and come straight back; apps hold 10-30 s and dawdle; a few short-pollers
    kinds = [dict(hold=25, gap=0.4), dict(hold=15, gap=2.0, ua="PollApp/5.4.0"), dict(hold=30, gap=1.0),
             dict(hold=2, gap=6.0, ua="python-httpx/0.27.0")]

    def traffic(t0: float, t1: float) -> list[tuple[float, bytes]]:
        return [e for i, c in enumerate(normal) for e in polls(c, rng, t0, t1, **kinds[i % len(kinds)])]

    # calibrated as `detector train` does: on the confirmed scores the policy acts on
    model = fit_model(training_rows([write_log(tmp / "train.log", traffic(T - 600, T))]),
                      n_estimators=100, max_samples=2048)
    artifact = save_artifact(model, tmp / "models", "replay.1")

    entries = traffic(T, T + 240)
    attackers = {"203.0.113.1": "reconnect_loop", "203.0.113.2": "reconnect_loop"}
    for c in attackers:  # answers cut at once, re-requested within 50 ms, ten per second
        entries += polls(c, rng, T + 60, T + 240, hold=0.05, gap=0.05, ua="python-requests/2.31.0")
    log = write_log(tmp / "access.log", entries)
    labels = tmp / "labels.csv"
    labels.write_text(HEADER + "".join(f"{c},normal,browser,browser,,,0\n" for c in normal) + "".join(
        f"{c},abusive,{cls},attacker,{T + 60},{T + 240},0\n" for c, cls in attackers.items()))
    return {"tmp": tmp, "log": log, "labels": labels, "model": artifact}


def test_replay_writes_verdicts_and_agrees_with_the_file_mode(world):
    out = world["tmp"] / "out"
    seen = []
    result = evaluate_log([world["log"]], world["labels"], world["model"], out_dir=out,
                          progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1] == world["log"].stat().st_size

    lines = [orjson.loads(x) for x in (out / "verdicts.jsonl").read_bytes().splitlines()]
    assert lines and all(x["model_version"] == "replay.1" for x in lines)
    mx = result.metrics
    assert mx["verdicts"]["lines"] == len(lines)
    assert mx["sources"]["model_version"] == "replay.1"
    assert "every tick" in mx["ranking"]["score_source"]
    assert set(result.thresholds) == {"throttle", "block"}

    # the reconnect loops stand out (loose bounds: this tests the plumbing, not the model)
    assert mx["per_class"]["abusive"]["reconnect_loop"]["detected"] >= 1
    assert mx["ranking"]["roc_auc"] >= 0.9
    # a client's max over every tick is at least the score on any of its verdict lines
    scores = result.clients["score"]
    line_max = pd.DataFrame(lines).groupby("client")["score"].max()
    line_max = line_max[line_max.index.isin(scores.index)]  # the attackers' /24, scored whole, is no labelled client
    assert len(line_max) and (scores.reindex(line_max.index) >= line_max - 1e-4).all()
    assert (scores > 0).all()  # every labelled client was in the log and scored

    again = evaluate_files(world["labels"], out / "verdicts.jsonl", [world["log"]], progress=lambda d, t: None)
    for key in ("tp", "fp", "fn", "tn"):
        assert again.metrics["model"][key] == mx["model"][key]
    assert again.metrics["rate_limit"] == mx["rate_limit"]  # times noted in replay = times read in file mode
    assert again.metrics["log"] == mx["log"]
    assert (again.clients["max_rate"] == result.clients["max_rate"]).all()
    assert again.metrics["time_to_detect"] == mx["time_to_detect"]

    report = write_report(result, out, fmt="html")
    assert report == out / "report.html" and "every tick" in report.read_text()


def test_replay_serves_the_configs_false_positive_targets(world):
    from detector.model import load_artifact
    from detector.policy import PolicyConfig

    model, _card = load_artifact(world["model"])
    looser = model.thresholds_at(throttle_fpr=0.2, block_fpr=0.01)
    assert looser.throttle < model.thresholds_.throttle
    result = evaluate_log([world["log"]], world["labels"], world["model"], progress=lambda d, t: None,
                          policy=PolicyConfig(throttle_fpr=0.2, block_fpr=0.01))
    # the report's thresholds are those the policy acted on, read again off the model's calibration scores
    assert result.thresholds == {"throttle": looser.throttle, "block": looser.block}
    default = evaluate_log([world["log"]], world["labels"], world["model"], progress=lambda d, t: None)
    assert default.thresholds == {"throttle": model.thresholds_.throttle, "block": model.thresholds_.block}
    # a lower throttle threshold flags at least every client the card's did
    assert result.metrics["model"]["flagged"] >= default.metrics["model"]["flagged"]


def test_max_score_store_keeps_the_highest_score_across_reductions(monkeypatch):
    import detector.evaluate.replay as replay_module

    monkeypatch.setattr(replay_module, "_REDUCE_ROWS", 2)
    store = MaxScoreStore()
    no_features = np.empty((0, 0))
    store.observe(1.0, np.array(["a", "b"], dtype=object), np.array([0.5, 0.7]), no_features, ())
    store.observe(2.0, np.array(["a"], dtype=object), np.array([0.9]), no_features, ())
    store.observe(3.0, np.array(["a", "c"], dtype=object), np.array([0.1, 0.2]), no_features, ())
    assert store.max_scores().to_dict() == {"a": 0.9, "b": 0.7, "c": 0.2}


JSONL = '[ingest]\nformat = "jsonl"\n[ingest.jsonl]\nclient = "ip"\ntime = "t"\nstatus = "code"\n'


@pytest.mark.parametrize("config", ["", "[features]\ntick = 2.0\n", JSONL])
def test_evaluate_replays_as_detector_replay_and_serve_would(world, tmp_path, config, capsys):
    # `detector evaluate --log` reads the log and scores on the ticks `detector replay` (and `serve`) use with
    # the same config: the same verdict lines, whichever tick the config sets, and a log read with the
    # config's JSONL mapping (the same lines with the client, time and status under other names)
    from detector.cli import main

    log = world["log"]
    if config == JSONL:
        renamed = {b'"remote_addr"': b'"ip"', b'"msec"': b'"t"', b'"status"': b'"code"'}
        text = log.read_bytes()
        for old, new in renamed.items():
            text = text.replace(old, new)
        log = tmp_path / "access.jsonl"
        log.write_bytes(text)
    cfg = tmp_path / "detector.toml"
    cfg.write_text(config)
    assert main(["replay", "--config", str(cfg), "--model", str(world["model"]), "--out", str(tmp_path / "r.jsonl"),
                 str(log)]) == 0
    assert main(["evaluate", "--config", str(cfg), "--model", str(world["model"]), "--labels", str(world["labels"]),
                 "--log", str(log), "--report", str(tmp_path / "rep")]) == 0
    capsys.readouterr()
    replayed = (tmp_path / "r.jsonl").read_bytes().splitlines()
    assert replayed and replayed == (tmp_path / "rep" / "verdicts.jsonl").read_bytes().splitlines()
