"""Pydantic request and response models (the HTTP edge only), and the conversions from store records."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from detector.store import AllowEntry, Decision, go_duration, rfc3339


class ThresholdsOut(BaseModel):
    throttle: float
    block: float


class MessageOut(BaseModel):
    message: str


class DecisionOut(BaseModel):
    """A decision in CrowdSec LAPI's shape (Go bouncers decode it as ``models.Decision``)."""

    id: int
    origin: str = Field(description="model (detector's verdicts) or manual (an operator)")
    type: str = Field(description="ban (a block), throttle, or allow (operators only; never sent to bouncers)")
    scope: str = Field(description="Ip, Range, or Client for a client keyed on something else")
    value: str
    duration: str = Field(description="time left as a Go duration ending in seconds; negative once ended")
    until: str = Field(description="when the decision ends, RFC 3339 UTC")
    scenario: str
    simulated: bool = Field(description="shadow mode: reported, not enforced")


class AdminDecisionOut(DecisionOut):
    """A decision with what operators also want to see."""

    created_at: float
    until_epoch: float
    lifted_at: float | None
    active: bool
    reasons: list[str]
    score: float | None
    model_version: str


class StreamOut(BaseModel):
    new: list[DecisionOut] | None = Field(description="decisions to enforce from now on (null: none)")
    deleted: list[DecisionOut] | None = Field(description="decisions to stop enforcing (null: none)")


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str = Field(min_length=1, max_length=64, description="an IP address or a CIDR",
                       examples=["203.0.113.9", "198.51.100.0/24"])
    type: Literal["ban", "throttle", "allow"] = "ban"
    duration: str | float | None = Field(None, description="a Go duration (4h, 30m, 1h30m) or seconds; "
                                         "default decisions.default_ttl", examples=["4h"])
    reason: str = Field("", max_length=512)


class DeletedOut(BaseModel):
    nbDeleted: str = Field(description="how many decisions were lifted (a string, as CrowdSec answers)")


class AllowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str = Field(min_length=1, max_length=64, description="an IP address or a CIDR")
    reason: str = Field("", max_length=512)


class AllowOut(BaseModel):
    id: int
    value: str
    scope: str
    reason: str
    created_at: float
    origin: str


class AllowAddedOut(AllowOut):
    lifted: list[int] = Field(description="ids of the decisions the new entry lifted")


class ScoreOut(BaseModel):
    client: str
    known: bool = Field(description="whether detector has seen this client recently")
    verdict: str = Field(description="allow | throttle | block, as /authz would answer now (in shadow mode: "
                         "what it would answer if enforced)")
    score: float | None = Field(description="latest anomaly score; higher = more anomalous")
    thresholds: ThresholdsOut
    reasons: list[str]
    features: dict[str, float | None]
    window: dict[str, float] = Field(description="feature window widths in seconds and the scoring tick")
    model_version: str
    updated_at: float | None = Field(description="event time of the latest score")
    until: float | None = Field(description="when the current verdict lapses")
    simulated: bool = Field(False, description="shadow mode: the verdict is reported but not enforced")
    allowlisted: bool = Field(False, description="the client is on the allowlist: always allowed")
    decisions: list[AdminDecisionOut] = Field(description="active decisions covering the client, newest first")


class ModelOut(BaseModel):
    version: str
    path: str
    features: list[str]
    thresholds: ThresholdsOut
    training: dict
    libraries: dict


class ReloadOut(BaseModel):
    previous: str
    version: str


class HealthOut(BaseModel):
    status: str


def decision_out(d: Decision, now: float) -> dict:
    """The LAPI dict of a decision (plain dict: the stream answers many of these)."""
    return {"id": d.id, "origin": d.origin, "type": d.type, "scope": d.scope, "value": d.value,
            "duration": go_duration(d.ends - now), "until": rfc3339(d.ends), "scenario": d.scenario,
            "simulated": d.simulated}


def admin_decision_out(d: Decision, now: float) -> dict:
    return {**decision_out(d, now), "created_at": d.created_at, "until_epoch": d.ends, "lifted_at": d.lifted_at,
            "active": d.active(now), "reasons": list(d.reasons), "score": d.score, "model_version": d.model_version}


def allow_out(e: AllowEntry) -> dict:
    return {"id": e.id, "value": e.value, "scope": e.scope, "reason": e.reason, "created_at": e.created_at,
            "origin": e.origin}
