"""The pull model for bouncers, in CrowdSec LAPI's shapes, so existing CrowdSec bouncers enforce
detector's decisions: ``GET /v1/decisions`` and ``GET /v1/decisions/stream``.

Empty lists are ``null``, as LAPI answers. Only decisions to enforce are served: simulated (shadow)
decisions, operators' ``allow`` decisions, allowlisted values and model decisions overridden by an
operator's are left out (bouncers would enforce anything they are sent).
"""

from __future__ import annotations

from typing import Callable

from fastapi import APIRouter, Depends, Query

from detector.api.auth import requires
from detector.api.errors import error_responses
from detector.api.schemas import DecisionOut, StreamOut, decision_out
from detector.service import Service
from detector.store import ApiKey
from detector.store.index import target_of

_FORBIDDEN = error_responses(403)


def _csv(text: str | None) -> list[str] | None:
    items = [s.strip() for s in (text or "").split(",") if s.strip()]
    return items or None


def lapi_router(service: Service, clock: Callable[[], float]) -> APIRouter:
    store = service.store
    bouncer = requires(store, "bouncer")
    router = APIRouter(tags=["bouncers"])

    @router.get("/v1/decisions", response_model=list[DecisionOut] | None, responses=_FORBIDDEN,
                summary="decisions in force (for one IP: the one that applies)")
    def decisions(ip: str | None = Query(None, max_length=64, description="the decision /authz applies to this IP"),
                  scope: str | None = Query(None, max_length=16), value: str | None = Query(None, max_length=64),
                  type: str | None = Query(None, max_length=16),
                  key: ApiKey = Depends(bouncer)) -> list[dict] | None:
        now = clock()
        if ip is not None:
            found = store.answer(ip, now).enforced
            chosen = [found] if found is not None else []
        else:
            chosen = list(store.enforced(now).values())
        canon = target_of(value).value if value else None
        out = [decision_out(d, now) for d in sorted(chosen, key=lambda d: d.id)
               if (scope is None or d.scope.lower() == scope.lower()) and (type is None or d.type == type)
               and (value is None or d.value == canon)]
        return out or None

    @router.get("/v1/decisions/stream", response_model=StreamOut, responses=_FORBIDDEN,
                summary="what changed for this bouncer since its last pull")
    def stream(startup: bool = Query(False, description="true: every decision in force, and reset the cursor"),
               scopes: str | None = Query(None, max_length=64, description="comma-separated, e.g. ip,range"),
               origins: str | None = Query(None, max_length=64, description="comma-separated: model, manual"),
               key: ApiKey = Depends(bouncer)) -> dict:
        now = clock()
        new, deleted = store.stream(key.id, now, startup=startup, scopes=_csv(scopes), origins=_csv(origins))
        return {"new": [decision_out(d, now) for d in new] or None,
                "deleted": [decision_out(d, now) for d in deleted] or None}

    return router
