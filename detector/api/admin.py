"""Operators' writes, with an admin key: manual decisions (ban / throttle / allow of an IP or CIDR, with
a TTL and a reason), the allowlist, and model reload. Every write is committed before it is answered.
"""

from __future__ import annotations

from typing import Callable

from fastapi import APIRouter, Depends, Query

from detector.api.auth import requires
from detector.api.errors import ApiError, error_responses
from detector.api.schemas import (AdminDecisionOut, AllowAddedOut, AllowIn, AllowOut, DecisionIn, DeletedOut,
                                  ReloadOut, admin_decision_out, allow_out)
from detector.model import ModelSchemaError
from detector.service import Service
from detector.store import AllowlistedError, ApiKey, parse_duration


def admin_router(service: Service, clock: Callable[[], float]) -> APIRouter:
    store = service.store
    limits = service.settings.decisions
    admin = requires(store, "admin")
    router = APIRouter(prefix="/v1/admin", tags=["admin"])

    @router.get("/decisions", response_model=list[AdminDecisionOut], responses=error_responses(403),
                summary="decisions, simulated ones included")
    def list_decisions(value: str | None = Query(None, max_length=64), origin: str | None = Query(None, max_length=16),
                       type: str | None = Query(None, max_length=16),
                       all: bool = Query(False, description="also those that ended and are still kept"),
                       key: ApiKey = Depends(admin)) -> list[dict]:
        now = clock()
        found = store.decisions(now, include_inactive=all, value=value, origin=origin, type=type)
        return [admin_decision_out(d, now) for d in sorted(found, key=lambda d: d.id)]

    @router.post("/decisions", status_code=201, response_model=AdminDecisionOut,
                 responses=error_responses(400, 403, 409), summary="add a manual decision")
    def add_decision(body: DecisionIn, key: ApiKey = Depends(admin)) -> dict:
        now = clock()
        try:
            duration = limits.default_ttl if body.duration is None else parse_duration(body.duration)
            if duration > limits.max_ttl:
                raise ValueError(f"duration over decisions.max_ttl ({limits.max_ttl:g} s)")
            d = store.add_decision(body.value, body.type, duration, now, reason=body.reason, author=key.name)
        except AllowlistedError as exc:
            raise ApiError(409, str(exc)) from None
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        return admin_decision_out(d, now)

    @router.delete("/decisions/{decision_id}", response_model=DeletedOut, responses=error_responses(403, 404),
                   summary="lift one decision now")
    def delete_decision(decision_id: int, key: ApiKey = Depends(admin)) -> dict:
        if store.lift(decision_id, clock()) is None:
            raise ApiError(404, f"no active decision {decision_id}")
        return {"nbDeleted": "1"}

    @router.delete("/decisions", response_model=DeletedOut, responses=error_responses(403),
                   summary="lift every active decision on a value")
    def delete_decisions(value: str = Query(..., min_length=1, max_length=64),
                         origin: str | None = Query(None, max_length=16), key: ApiKey = Depends(admin)) -> dict:
        return {"nbDeleted": str(len(store.lift_value(value, clock(), origin)))}

    @router.get("/allowlist", response_model=list[AllowOut], responses=error_responses(403),
                summary="allowlisted IPs and CIDRs (configured and stored)")
    def list_allowlist(key: ApiKey = Depends(admin)) -> list[dict]:
        return [allow_out(e) for e in store.allowlist()]

    @router.post("/allowlist", status_code=201, response_model=AllowAddedOut, responses=error_responses(400, 403),
                 summary="allowlist an IP or CIDR (lifts the decisions inside it)")
    def add_allow(body: AllowIn, key: ApiKey = Depends(admin)) -> dict:
        try:
            entry, lifted = store.add_allow(body.value, clock(), body.reason)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        return {**allow_out(entry), "lifted": [d.id for d in lifted]}

    @router.delete("/allowlist", response_model=DeletedOut, responses=error_responses(400, 403, 404),
                   summary="take an IP or CIDR off the stored allowlist")
    def delete_allow(value: str = Query(..., min_length=1, max_length=64), key: ApiKey = Depends(admin)) -> dict:
        try:
            removed = store.remove_allow(value)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        if not removed:
            raise ApiError(404, f"{value} is not on the stored allowlist")
        return {"nbDeleted": "1"}

    @router.post("/model/reload", response_model=ReloadOut, responses=error_responses(403, 404, 409),
                 summary="load the configured model (e.g. models/current) again; a bad one is refused")
    def reload_model(key: ApiKey = Depends(admin)) -> dict:
        try:
            previous, version = service.reload_model()
        except (ModelSchemaError, ValueError) as exc:  # ValueError: it cannot serve the configured targets
            raise ApiError(409, f"model refused, still serving {service.version}: {exc}") from None
        except FileNotFoundError as exc:
            raise ApiError(404, f"model not found, still serving {service.version}: {exc}") from None
        return {"previous": previous, "version": version}

    return router
