"""The labels file ``detector simulate`` writes, and the ``meta.json`` that may sit next to it.

Header: ``client,label,class,population,attack_start,attack_end,active_in_outage``. ``label`` is
``normal`` or ``abusive``; ``class`` is the population of a normal client or the attack of an abusive
one (names not listed below are kept, ordered after the known ones); attack times are epoch seconds,
empty for normal clients; ``active_in_outage`` is 0 or 1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ("client", "label", "class", "population", "attack_start", "attack_end", "active_in_outage")
LABELS = ("normal", "abusive")
NORMAL_CLASSES = ("browser", "mobile", "consumer", "nat_office", "health_checker", "fleet")
ATTACK_CLASSES = ("reconnect_loop", "parallel_flood", "retry_storm", "cursor_replay", "scraper",
                  "credential_stuffing", "scanner", "distributed_flood")
NAT_OFFICE = "nat_office"
CONSUMER = "consumer"
META_FILE = "meta.json"

_FLAGS = {"0": False, "1": True, "": False, "false": False, "true": True}


@dataclass(frozen=True, eq=False)
class Labels:
    """One row per client (index ``client``), plus the run's ``meta.json`` when there is one."""

    frame: pd.DataFrame
    path: Path
    meta: dict = field(default_factory=dict)

    @property
    def outage(self) -> tuple[float, float] | None:
        """The simulated outage as (start, end) epoch seconds, when ``meta.json`` gives one."""
        outage = self.meta.get("outage")
        if not outage:
            return None
        return float(outage["start"]), float(outage["end"])


def class_order(classes) -> list[str]:
    """Known classes in their usual order, then unknown ones alphabetically.

    >>> class_order(["scanner", "zeta", "reconnect_loop", "browser"])
    ['browser', 'reconnect_loop', 'scanner', 'zeta']
    """
    known = NORMAL_CLASSES + ATTACK_CLASSES
    present = set(classes)
    return [c for c in known if c in present] + sorted(present - set(known))


def read_labels(path: str | Path) -> Labels:
    """Read and check a labels CSV (and its ``meta.json``); bad input raises with the file named."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"labels file not found: {path}")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a labels CSV ({str(exc).splitlines()[0]})") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (expected header {','.join(COLUMNS)})")
    if raw.empty:
        raise ValueError(f"{path}: no clients in the labels file")
    frame = raw[list(COLUMNS)].apply(lambda col: col.str.strip())
    frame["label"] = frame["label"].str.lower()

    def row_of(mask: pd.Series) -> str:  # line number in the file (header is line 1)
        return str(int(np.flatnonzero(mask.to_numpy())[0]) + 2)

    if (frame["client"] == "").any():
        raise ValueError(f"{path} line {row_of(frame['client'] == '')}: empty client")
    bad = ~frame["label"].isin(LABELS)
    if bad.any():
        value = frame.loc[bad, "label"].iloc[0]
        raise ValueError(f"{path} line {row_of(bad)}: label {value!r} is not one of {', '.join(LABELS)}")
    dup = frame["client"].duplicated()
    if dup.any():
        raise ValueError(f"{path} line {row_of(dup)}: client {frame.loc[dup, 'client'].iloc[0]} listed twice")
    for col in ("attack_start", "attack_end"):
        numbers = pd.to_numeric(frame[col].where(frame[col] != ""), errors="coerce")
        bad = numbers.isna() & (frame[col] != "")
        if bad.any():
            raise ValueError(f"{path} line {row_of(bad)}: {col} {frame.loc[bad, col].iloc[0]!r} is not a number")
        frame[col] = numbers.astype(float)
    flags = frame["active_in_outage"].str.lower().map(_FLAGS)
    if flags.isna().any():
        bad = flags.isna()
        raise ValueError(f"{path} line {row_of(bad)}: active_in_outage "
                         f"{frame.loc[bad, 'active_in_outage'].iloc[0]!r} is not 0 or 1")
    frame["active_in_outage"] = flags.astype(bool)
    frame = frame.set_index("client")
    return Labels(frame, path, read_meta(path.with_name(META_FILE)))


def read_meta(path: Path) -> dict:
    """The simulator's ``meta.json`` ({} when absent); its ``outage`` must have numeric start and end."""
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: expected a JSON object")
    outage = meta.get("outage")
    if outage is not None:
        try:
            float(outage["start"]), float(outage["end"])
        except (TypeError, KeyError, ValueError):
            raise ValueError(f"{path}: outage needs numeric start and end, got {outage!r}") from None
    return meta
