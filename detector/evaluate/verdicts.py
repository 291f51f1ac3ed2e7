"""Verdict-change lines (``detector replay`` output, DESIGN.md) as a table, and what they say per client.

A client is *flagged* if any of its lines is ``throttle`` or ``block``. A verdict holds from its ``at``
until its ``until`` or the next line on the same client, whichever comes first. A verdict on a network
(``"a.b.c.0/24"``, a prefix scored whole) applies to every labelled address inside it (``expand_ranges``):
a block of a carrier's pool counts against each phone in it, and holds whatever the phone's own lines say.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import numpy as np
import orjson
import pandas as pd

from detector.ingest.identity import in_networks, parse_networks
from detector.records import ACTIONS

FLAGS = ("throttle", "block")
COLUMNS = ("client", "verdict", "score", "at", "until", "model_version", "simulated")


def read_verdicts(path: str | Path) -> pd.DataFrame:
    """Read a verdicts JSONL file; a line that is not a JSON verdict raises, naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"verdicts file not found: {path}")
    records: list[dict] = []
    numbers: list[int] = []
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                records.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                raise ValueError(f"{path} line {n}: not JSON") from None
            numbers.append(n)
    return verdict_frame(records, source=str(path), line_numbers=numbers)


def verdict_frame(records: Iterable[dict], source: str = "verdicts", line_numbers: list[int] | None = None
                  ) -> pd.DataFrame:
    """Check verdict dicts (``Verdict.to_json()`` or parsed lines) and make a table sorted by client, at."""
    cols: dict[str, list] = {c: [] for c in COLUMNS}
    for i, obj in enumerate(records):
        where = f"{source} line {line_numbers[i] if line_numbers else i + 1}"
        if not isinstance(obj, dict):
            raise ValueError(f"{where}: expected a JSON object")
        client, verdict = obj.get("client"), obj.get("verdict")
        if client in (None, ""):
            raise ValueError(f"{where}: no client")
        if verdict not in ACTIONS:
            raise ValueError(f"{where}: verdict {verdict!r} is not one of {', '.join(ACTIONS)}")
        at = _number(obj.get("at"), where, "at", required=True)
        cols["client"].append(str(client))
        cols["verdict"].append(verdict)
        cols["score"].append(_number(obj.get("score"), where, "score"))
        cols["at"].append(at)
        cols["until"].append(_number(obj.get("until"), where, "until"))
        cols["model_version"].append(str(obj.get("model_version") or ""))
        cols["simulated"].append(bool(obj.get("simulated", False)))
    frame = pd.DataFrame({
        "client": np.asarray(cols["client"], dtype=object),
        "verdict": np.asarray(cols["verdict"], dtype=object),
        "score": np.asarray(cols["score"], dtype=float),
        "at": np.asarray(cols["at"], dtype=float),
        "until": np.asarray(cols["until"], dtype=float),
        "model_version": np.asarray(cols["model_version"], dtype=object),
        "simulated": np.asarray(cols["simulated"], dtype=bool),
    })
    return frame.sort_values(["client", "at"], kind="stable", ignore_index=True)


def _number(value, where: str, name: str, required: bool = False) -> float:
    if value is None:
        if required:
            raise ValueError(f"{where}: no {name}")
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: {name} {value!r} is not a number")
    if required and not math.isfinite(value):
        raise ValueError(f"{where}: {name} {value!r} is not a finite number")
    return float(value)


def per_client(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Per client with at least one line: max score, flagged, blocked, first flag time, line count."""
    flag_at = verdicts["at"].where(verdicts["verdict"].isin(FLAGS))
    block = verdicts["verdict"] == "block"
    grouped = pd.DataFrame({"client": verdicts["client"], "score": verdicts["score"], "flag_at": flag_at,
                            "block": block}).groupby("client", sort=False)
    out = pd.DataFrame({
        "verdict_score": grouped["score"].max(),
        "first_flag": grouped["flag_at"].min(),
        "blocked": grouped["block"].any(),
        "verdict_lines": grouped.size(),
    })
    out["flagged"] = out["first_flag"].notna()
    return out


def first_flag_from(verdicts: pd.DataFrame, since: pd.Series) -> pd.Series:
    """Per client, the first moment at or after ``since[client]`` it was throttled or blocked: ``since``
    itself when a verdict reached earlier still held then (a fleet's range judged on the addresses that
    started first covers the one starting a second later), else the first throttle/block ``at`` after
    it. Clients without one are absent.

    >>> v = verdict_frame([{"client": "a", "verdict": "throttle", "at": 5.0, "until": 9.0},
    ...                    {"client": "a", "verdict": "block", "at": 20.0, "until": 30.0},
    ...                    {"client": "a", "verdict": "allow", "at": 25.0}])
    >>> [first_flag_from(v, pd.Series({"a": t})).to_dict().get("a") for t in (3.0, 7.0, 12.0, 27.0)]
    [5.0, 7.0, 20.0, None]
    """
    held = spans(verdicts, math.inf)
    start = held["client"].map(since).to_numpy(dtype=np.float64)
    holds = held["stop"].to_numpy(dtype=np.float64) > start  # in force at ``since`` or reached after it
    first = pd.Series(np.maximum(held["start"].to_numpy(dtype=np.float64), start), index=held.index)[holds]
    return first.groupby(held["client"][holds], sort=False).min()


def spans(verdicts: pd.DataFrame, end: float) -> pd.DataFrame:
    """Throttle/block spans: client, verdict, start, stop (``until`` or the next line on the same client,
    a network's line counting for its own network: ``source`` after ``expand_ranges``; ``end`` if neither).

    >>> v = verdict_frame([{"client": "203.0.113.7", "verdict": "throttle", "at": 2.0, "until": 100.0},
    ...                    {"client": "203.0.113.0/24", "verdict": "block", "at": 5.0, "until": 305.0},
    ...                    {"client": "203.0.113.7", "verdict": "allow", "at": 100.0}])
    >>> spans(expand_ranges(v, ["203.0.113.7"]), 400.0).values.tolist()  # the range outlives .7's allow
    [['203.0.113.0/24', 'block', 5.0, 305.0], ['203.0.113.7', 'throttle', 2.0, 100.0], ['203.0.113.7', 'block', 5.0, 305.0]]
    """
    keys = ["client", "source"] if "source" in verdicts else ["client"]
    nxt = verdicts.groupby(keys, sort=False)["at"].shift(-1)
    stop = np.fmin(verdicts["until"].to_numpy(), nxt.to_numpy())  # fmin ignores a NaN on either side
    stop = np.where(np.isnan(stop), end, stop)
    out = pd.DataFrame({"client": verdicts["client"], "verdict": verdicts["verdict"], "start": verdicts["at"],
                        "stop": stop})
    return out[out["verdict"].isin(FLAGS)].reset_index(drop=True)


def expand_ranges(verdicts: pd.DataFrame, clients: Iterable[str]) -> pd.DataFrame:
    """Verdict lines on networks repeated for each of ``clients`` inside them (and kept for the network),
    each line with its ``source``: the client it was written for.

    >>> v = verdict_frame([{"client": "203.0.113.0/24", "verdict": "block", "at": 5.0, "until": 9.0}])
    >>> expand_ranges(v, ["203.0.113.7", "198.51.100.1", "203.0.113.9"])["client"].tolist()
    ['203.0.113.0/24', '203.0.113.7', '203.0.113.9']
    """
    members = _members(verdicts["client"].unique(), clients)
    verdicts = verdicts.assign(source=verdicts["client"])  # whose line it is (a network's, for the copies)
    if not members:
        return verdicts
    parts = [verdicts]
    for text, inside in members.items():
        rows = verdicts[verdicts["client"] == text]
        parts.extend(rows.assign(client=c) for c in inside)
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["client", "at"], kind="stable", ignore_index=True)


def expand_range_scores(scores: pd.Series, clients: Iterable[str]) -> pd.Series:
    """Per-client scores where each address also takes the score of a network scored whole around it.

    >>> s = pd.Series({"203.0.113.0/24": 0.9, "203.0.113.7": 0.5, "198.51.100.1": 0.4})
    >>> expand_range_scores(s, ["203.0.113.7", "198.51.100.1"]).to_dict()
    {'203.0.113.0/24': 0.9, '203.0.113.7': 0.9, '198.51.100.1': 0.4}
    """
    out = scores.copy()
    for text, inside in _members(scores.index, clients).items():
        for c in inside:
            out[c] = max(float(out.get(c, 0.0)), float(scores[text]))
    return out


def _members(keys: Iterable[str], clients: Iterable[str]) -> dict[str, list[str]]:
    """For each key that is a network, the ``clients`` (addresses) inside it."""
    networks = {}
    for key in keys:
        if "/" in str(key):
            try:
                networks[key] = parse_networks([key])
            except ValueError:
                continue
    clients = list(clients) if networks else []
    return {key: [c for c in clients if in_networks(c, net)] for key, net in networks.items()}
