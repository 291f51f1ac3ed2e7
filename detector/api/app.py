"""Routes: ``/authz`` for forward-auth gateways, ``/score``, health. See DESIGN.md's API table."""

from __future__ import annotations

import math
import time
from typing import Callable

from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse

from detector.api.identity import client_of
from detector.api.schemas import HealthOut, ScoreOut, ThresholdsOut
from detector.features.catalog import WINDOWS
from detector.ingest.identity import parse_networks
from detector.service import Service

AUTHZ_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def create_app(service: Service, clock: Callable[[], float] = time.time) -> FastAPI:
    """The FastAPI application over a running ``Service``; ``clock`` gives the wall time."""
    settings = service.settings
    trusted = parse_networks(settings.api.trusted_proxies)
    allow_cache = str(settings.api.allow_cache_seconds)
    app = FastAPI(title="detector", version=service.version or "0",
                  description="Anomaly detection for long-poll API endpoints: verdicts for gateways.")
    app.state.service = service

    def authz(request: Request) -> Response:
        client = client_of(request, trusted)
        now = clock()
        verdict = service.store.verdict(client, now)
        headers = {"X-Model-Version": service.version}
        if verdict is None or verdict.simulated:
            obs = service.store.observation(client)
            headers.update({"X-Authz-Decision": "allow", "X-Accel-Expires": allow_cache,
                            "X-Authz-Score": f"{obs.score:.4f}" if obs else "0"})
            if verdict is not None:
                headers["X-Authz-Shadow"] = verdict.action
            return Response(status_code=200, headers=headers)
        remaining = max(1, math.ceil((verdict.until or now) - now))
        headers.update({"X-Authz-Decision": verdict.action, "X-Authz-Score": f"{verdict.score:.4f}",
                        "X-Accel-Expires": str(remaining)})
        if verdict.action == "block":
            return Response(status_code=403, headers=headers)
        if request.headers.get("x-authz-compat", "").lower() == "nginx":
            headers["X-Authz-Retry-After"] = str(remaining)
            return Response(status_code=403, headers=headers)
        headers["Retry-After"] = str(remaining)
        return Response(status_code=429, headers=headers)

    desc = ("Forward-auth decision for the requesting client: 200 allow, 429 + Retry-After throttle, 403 block "
            "(with `X-Authz-Compat: nginx`, throttle is 403 + X-Authz-Retry-After).")
    for method in AUTHZ_METHODS:
        for route, op in (("/authz", "authz"), ("/authz/{path:path}", "authz_path")):
            app.add_api_route(route, authz, methods=[method], summary="forward-auth decision", description=desc,
                              operation_id=f"{op}_{method.lower()}", response_class=Response,
                              responses={200: {"description": "allow"}, 403: {"description": "block"},
                                         429: {"description": "throttle (Retry-After)"}})

    @app.get("/score", response_model=ScoreOut, summary="a client's verdict, score and features")
    def score(client: str = Query(..., min_length=1, max_length=256)) -> ScoreOut:
        now = clock()
        verdict = service.store.verdict(client, now)
        obs = service.store.observation(client)
        thr = service.thresholds
        features = {k: (None if v != v else v) for k, v in obs.features} if obs else {}
        return ScoreOut(
            client=client, known=obs is not None,
            verdict=verdict.action if verdict else "allow",
            score=verdict.score if verdict else (obs.score if obs else None),
            thresholds=ThresholdsOut(throttle=thr.throttle, block=thr.block),
            reasons=list(verdict.reasons) if verdict else [],
            features=features,
            window={**{f"{w:g}s": w for w in WINDOWS}, "tick": settings.features.tick},
            model_version=service.version,
            updated_at=obs.at if obs else None,
            until=verdict.until if verdict else None,
            simulated=bool(verdict and verdict.simulated),
        )

    @app.get("/healthz", response_model=HealthOut, summary="liveness")
    def healthz() -> HealthOut:
        return HealthOut(status="ok")

    @app.get("/readyz", response_model=HealthOut, summary="readiness: a model is loaded",
             responses={503: {"model": HealthOut}})
    def readyz():
        if service.model is None:
            return JSONResponse({"status": "no model"}, status_code=503)
        return HealthOut(status="ready")

    return app
