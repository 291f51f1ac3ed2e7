"""Decisions: what is enforced against a client or a range, by whom, until when; and the precedence rules.

A decision is DESIGN.md's decision record (CrowdSec's shape): ``type`` ``ban`` (a verdict's ``block``),
``throttle`` or, for operators only, ``allow``; ``scope`` ``Ip`` / ``Range`` (``Client`` for a client
keyed on something that is not an address); ``origin`` ``model`` (from the policy's verdicts) or
``manual`` (an operator). Decisions are immutable records: lifting one early makes a copy with
``lifted_at`` set, so readers on other threads always see a whole record.

Precedence, one rule for ``/authz``, ``/score``, ``/v1/decisions`` and the bouncer stream:

1. the allowlist beats everything (checked by the store before these functions);
2. manual decisions override the model's: among manual ones covering a client the most specific value
   wins, then the newest; an operator's ``allow`` there means "let it through";
3. among the model's, the most severe wins (ban over throttle), then the one that lasts longest.

Simulated decisions (shadow mode) are resolved the same way but never enforced: ``resolve`` reports
what would apply if they were, next to what applies.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Iterable, Literal

from detector.records import Action
from detector.store.index import target_of

DecisionType = Literal["ban", "throttle", "allow"]
Origin = Literal["model", "manual"]
DECISION_TYPES: tuple[str, ...] = ("ban", "throttle", "allow")
ORIGINS: tuple[str, ...] = ("model", "manual")
TYPE_OF_ACTION: dict[str, str] = {"block": "ban", "throttle": "throttle", "allow": "allow"}
ACTION_OF_TYPE: dict[str, Action] = {"ban": "block", "throttle": "throttle", "allow": "allow"}
_SEVERITY = {"allow": 0, "throttle": 1, "ban": 2}


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision. Times are epoch seconds (event time for the model's, wall time for operators')."""

    id: int
    origin: str
    type: str
    scope: str
    value: str
    created_at: float
    until: float
    scenario: str
    simulated: bool = False
    reasons: tuple[str, ...] = ()
    score: float | None = None
    model_version: str = ""
    lifted_at: float | None = None

    @property
    def ends(self) -> float:
        """When the decision stops: its ``until``, or earlier if it was lifted."""
        return self.until if self.lifted_at is None else min(self.until, self.lifted_at)

    def active(self, now: float) -> bool:
        return self.ends > now

    @property
    def action(self) -> Action:
        return ACTION_OF_TYPE[self.type]


@dataclass(frozen=True, slots=True)
class AllowEntry:
    """An allowlisted IP or CIDR. ``origin`` is ``config`` (``policy.allowlist``, not stored) or ``manual``."""

    id: int
    value: str
    scope: str
    reason: str
    created_at: float
    origin: str = "manual"


@dataclass(frozen=True, slots=True)
class Answer:
    """What applies to one client now: the enforced decision (ban / throttle) or ``None`` for allow, what
    would apply if simulated decisions were enforced (``shadow``, only when it differs), and the
    allowlist entry that let the client through, if any."""

    enforced: Decision | None = None
    shadow: Decision | None = None
    allowlisted: AllowEntry | None = None

    @property
    def action(self) -> Action:
        return self.enforced.action if self.enforced else "allow"

    @property
    def reported(self) -> Decision | None:
        """The decision a person should see: the enforced one, else the shadow one."""
        return self.enforced or self.shadow


def _rank(d: Decision) -> tuple:
    if d.origin == "manual":
        return (1, target_of(d.value).prefix, d.created_at, d.id)
    return (0, _SEVERITY[d.type], d.until, d.id)


def winner(decisions: Iterable[Decision]) -> Decision | None:
    """The decision that answers among ``decisions`` covering one client (see the module docstring)."""
    return max(decisions, key=_rank, default=None)


def resolve(covering: Iterable[Decision], now: float) -> Answer:
    """The answer for a client from the decisions whose value covers it (allowlist already checked)."""
    active = [d for d in covering if d.active(now)]
    if not active:
        return Answer()
    enforced = winner(d for d in active if not d.simulated)
    would = winner(active)
    enforced = enforced if enforced is not None and enforced.type != "allow" else None
    would = would if would is not None and would.type != "allow" else None
    return Answer(enforced, would if would is not enforced else None)


def go_duration(seconds: float) -> str:
    """Whole seconds as Go's ``time.Duration.String`` writes them: always ending in seconds, never ``0s``
    for a live decision (rounded up) and negative once expired (rounded away from zero).

    >>> go_duration(14398.2), go_duration(59), go_duration(3600), go_duration(-61), go_duration(0)
    ('3h59m59s', '59s', '1h0m0s', '-1m1s', '-1s')
    """
    n = math.ceil(seconds) if seconds > 0 else -max(1, math.ceil(-seconds))
    sign, n = ("-" if n < 0 else ""), abs(n)
    h, rest = divmod(n, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{sign}{h}h{m}m{s}s"
    if m:
        return f"{sign}{m}m{s}s"
    return f"{sign}{s}s"


def rfc3339(epoch: float) -> str:
    """An epoch time as RFC 3339 UTC, as CrowdSec writes ``until``.

    >>> rfc3339(1764403200.25)
    '2025-11-29T08:00:00Z'
    """
    return dt.datetime.fromtimestamp(math.floor(epoch), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str | float | int) -> float:
    """Seconds from a number or a Go-style duration (``4h``, ``1h30m``, ``90s``, ``1.5h``); > 0.

    >>> parse_duration("1h30m"), parse_duration("90"), parse_duration(2.5), parse_duration("3h59m58s")
    (5400.0, 90.0, 2.5, 14398.0)
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        raw = str(text).strip().lower()
        try:
            seconds = float(raw)
        except ValueError:
            seconds, pos, number = 0.0, 0, ""
            while pos < len(raw):
                ch = raw[pos]
                if ch.isdigit() or ch == ".":
                    number += ch
                    pos += 1
                    continue
                unit = "ms" if raw.startswith("ms", pos) else ch
                if unit not in _UNITS or not number:
                    raise ValueError(f"not a duration: {text!r} (say e.g. 4h, 30m, 1h30m or seconds)") from None
                seconds += float(number) * _UNITS[unit]
                number, pos = "", pos + len(unit)
            if number or not raw:
                raise ValueError(f"not a duration: {text!r} (say e.g. 4h, 30m, 1h30m or seconds)")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a duration must be positive: {text!r}")
    return seconds
