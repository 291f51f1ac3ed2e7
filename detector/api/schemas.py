"""Pydantic response models (the HTTP edge only)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ThresholdsOut(BaseModel):
    throttle: float
    block: float


class ScoreOut(BaseModel):
    client: str
    known: bool = Field(description="whether detector has seen this client recently")
    verdict: str = Field(description="allow | throttle | block, as /authz would answer now")
    score: float | None = Field(description="latest anomaly score; higher = more anomalous")
    thresholds: ThresholdsOut
    reasons: list[str]
    features: dict[str, float | None]
    window: dict[str, float] = Field(description="feature window widths in seconds and the scoring tick")
    model_version: str
    updated_at: float | None = Field(description="event time of the latest score")
    until: float | None = Field(description="when the current verdict lapses")
    simulated: bool = Field(False, description="shadow mode: the verdict is reported but not enforced")


class HealthOut(BaseModel):
    status: str
