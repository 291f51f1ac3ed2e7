"""Golden scenarios: how the shipped model treats one kind of client, each in a folder of its own.

``<name>/scenario.json`` describes the client's requests and what should become of it; the test writes the
events (with ``background`` ordinary long-poll clients around them), replays them through the live
pipeline with ``models/current`` and compares. A folder is a behaviour the product promises (a stale tab
is not an attack; a login every 15 s is), so a model or feature change that breaks one says which.

``requests``: streams of one request repeated ``every`` seconds (start to start) from ``from`` to ``to``
(seconds after the scenario's start), each lasting ``duration``, with ``client``, ``ua`` (a string, or a
list taken in turn by the copies), ``method`` (GET), ``path``, ``query``, ``status`` and ``bytes``; ``{i}``
in the path or query is the request's number in its stream and ``{k}`` its copy's. ``copies`` repeats the
stream that many times, each ``stagger`` seconds after the last (people behind one address).
``expect``: per client, ``verdict`` ``allow`` (never throttled nor blocked), ``flagged`` (throttled or
blocked) or ``block``, and for the last two ``within`` seconds of its first request. The background
clients are never flagged.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from detector.model import load_artifact
from detector.pipeline import Pipeline

from ..conftest import events, poll_traffic

HERE = Path(__file__).parent
MODELS = HERE.parents[1] / "models"
T0 = 1_764_403_200.0
SCENARIOS = sorted(p.parent.name for p in HERE.glob("*/scenario.json"))


def requests(spec: dict) -> list[dict]:
    """The request rows of one ``requests`` entry (see module docstring)."""
    rows = []
    uas = spec["ua"] if isinstance(spec["ua"], list) else [spec["ua"]]
    for k in range(spec.get("copies", 1)):
        offset = k * spec.get("stagger", 0.0)
        for i, t in enumerate(np.arange(spec["from"] + offset, spec["to"], spec["every"])):
            rows.append(dict(client=spec["client"], ua=uas[k % len(uas)], method=spec.get("method", "GET"),
                             path=spec["path"].format(i=i, k=k), query=spec.get("query", "").format(i=i, k=k),
                             status=spec["status"], bytes=spec.get("bytes", 0), start=T0 + t,
                             end=T0 + t + spec["duration"]))
    return rows


def test_requests_follow_the_spec():
    rows = requests({"copies": 2, "stagger": 1, "client": "a", "ua": ["x", "y"], "path": "/p/{k}", "query": "c={i}",
                     "status": 204, "from": 0, "to": 25, "every": 10, "duration": 2})
    assert [(r["ua"], r["path"], r["query"], r["start"] - T0) for r in rows] == [
        ("x", "/p/0", "c=0", 0.0), ("x", "/p/0", "c=1", 10.0), ("x", "/p/0", "c=2", 20.0),
        ("y", "/p/1", "c=0", 1.0), ("y", "/p/1", "c=1", 11.0), ("y", "/p/1", "c=2", 21.0)]


@pytest.fixture(scope="module")
def shipped():
    return load_artifact(MODELS)


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario(name, shipped):
    scenario = json.loads((HERE / name / "scenario.json").read_text())
    rows = [r for spec in scenario["requests"] for r in requests(spec)]
    background = poll_traffic(clients=scenario.get("background", 40), seconds=scenario["seconds"], t0=T0)
    ev = pd.concat([background, events(rows)]).sort_values("end", ignore_index=True)
    model, card = shipped
    pipeline = Pipeline(model, card["version"])
    verdicts = pipeline.push(ev) + pipeline.finish()
    flagged = [v for v in verdicts if v.action != "allow"]
    assert not [v.client for v in flagged if v.client not in scenario["expect"]], "a background client was flagged"
    for client, want in scenario["expect"].items():
        mine = [v for v in flagged if v.client == client]
        first = min(r["start"] for r in rows if r["client"] == client)
        if want["verdict"] == "allow":
            assert not mine, f"{client}: {mine[0].action} at +{mine[0].at - first:.0f} s, {mine[0].reasons}"
            continue
        hits = [v for v in mine if want["verdict"] == "flagged" or v.action == "block"]
        assert hits, f"{client} was never {want['verdict']}: {[(v.action, v.score) for v in mine]}"
        late = hits[0].at - first
        assert late <= want["within"], f"{client}: first {hits[0].action} only at +{late:.0f} s"
