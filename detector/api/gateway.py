"""The gateway-facing answers: ``/authz`` (forward auth) and ``/score`` (the why). See DESIGN.md's API table.

Both read what the pipeline and operators already stored, with a few dictionary look-ups
(``Store.answer``): allowlist, then manual decisions, then the model's. Nothing here calls the model.
"""

from __future__ import annotations

import math
from typing import Callable

from fastapi import APIRouter, Depends, Query, Request, Response

from detector.api.auth import HEADER, optional
from detector.api.identity import client_of
from detector.api.schemas import ScoreOut, ThresholdsOut, admin_decision_out
from detector.features.catalog import WINDOWS
from detector.ingest.identity import parse_networks
from detector.service import Service

AUTHZ_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_FORBIDDEN = b'{"message":"access forbidden"}'


def gateway_router(service: Service, clock: Callable[[], float]) -> APIRouter:
    settings = service.settings
    store = service.store
    trusted = parse_networks(settings.api.trusted_proxies)
    allow_cache = str(settings.api.allow_cache_seconds)
    require_key = settings.api.require_key
    router = APIRouter()

    async def authz(request: Request) -> Response:
        if require_key and store.authenticate(request.headers.get(HEADER)) is None:
            return Response(_FORBIDDEN, status_code=403, media_type="application/json")
        client = client_of(request, trusted)
        now = clock()
        answer = store.answer(client, now)
        decision = answer.enforced
        obs = store.observation(client)
        headers = {"X-Model-Version": service.version}
        if decision is None:
            headers.update({"X-Authz-Decision": "allow", "X-Accel-Expires": allow_cache,
                            "X-Authz-Score": f"{obs.score:.4f}" if obs else "0"})
            if answer.shadow is not None:
                headers["X-Authz-Shadow"] = answer.shadow.action
            return Response(status_code=200, headers=headers)
        score = decision.score if decision.score is not None else (obs.score if obs else 0.0)
        remaining = str(max(1, math.ceil(decision.ends - now)))
        headers.update({"X-Authz-Decision": decision.action, "X-Authz-Score": f"{score:.4f}",
                        "X-Accel-Expires": remaining})
        if decision.type == "ban":
            return Response(status_code=403, headers=headers)
        if request.headers.get("x-authz-compat", "").lower() == "nginx":
            headers["X-Authz-Retry-After"] = remaining
            return Response(status_code=403, headers=headers)
        headers["Retry-After"] = remaining
        return Response(status_code=429, headers=headers)

    desc = ("Forward-auth decision for the requesting client: 200 allow, 429 + Retry-After throttle, 403 block "
            "(with `X-Authz-Compat: nginx`, throttle is 403 + X-Authz-Retry-After). The client is `X-Client-Id`, "
            "`X-Real-IP` or `X-Forwarded-For` (behind `api.trusted_proxies`), else the peer. With "
            "`api.require_key`, an `X-Api-Key` is needed too.")
    responses: dict = {200: {"description": "allow"}, 403: {"description": "block"},
                       429: {"description": "throttle (Retry-After)"},
                       404: {"description": "a path that cannot be routed (e.g. with a line break)"}}
    path_param = {"parameters": [{"name": "path", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[^\r\n]*$"},
                                  "description": "the original request's path (Envoy and others append it)"}]}
    for method in AUTHZ_METHODS:
        for route, op, extra in (("/authz", "authz", None), ("/authz/{path:path}", "authz_path", path_param)):
            router.add_api_route(route, authz, methods=[method], summary="forward-auth decision", description=desc,
                                 operation_id=f"{op}_{method.lower()}", response_class=Response, tags=["gateway"],
                                 openapi_extra=extra, responses=responses)

    @router.get("/score", response_model=ScoreOut, summary="a client's verdict, score, features and decisions",
                tags=["gateway"], responses={403: {"description": "a key is required (api.require_key)"}},
                dependencies=[Depends(optional(store, require_key))])
    def score(client: str = Query(..., min_length=1, max_length=256)) -> dict:
        now = clock()
        answer = store.answer(client, now)
        obs = store.observation(client)
        shown = answer.reported
        thr = service.thresholds
        return dict(
            client=client, known=obs is not None,
            verdict=shown.action if shown else "allow",
            score=shown.score if shown and shown.score is not None else (obs.score if obs else None),
            thresholds=ThresholdsOut(throttle=thr.throttle, block=thr.block),
            reasons=list(shown.reasons) if shown else [],
            features={k: (v if math.isfinite(v) else None) for k, v in obs.features} if obs else {},
            window={**{f"{w:g}s": w for w in WINDOWS}, "tick": settings.features.tick},
            model_version=service.version,
            updated_at=obs.at if obs else None,
            until=shown.ends if shown else None,
            simulated=answer.enforced is None and answer.shadow is not None,
            allowlisted=answer.allowlisted is not None,
            decisions=[admin_decision_out(d, now) for d in store.covering(client, now)],
        )

    return router
