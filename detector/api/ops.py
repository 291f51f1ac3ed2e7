"""Operations: ``/metrics`` (Prometheus), ``/healthz`` (liveness), ``/readyz`` (model loaded, store
reachable) and ``/v1/model`` (what is serving: version, features, thresholds, training description)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from detector.api.auth import optional
from detector.api.errors import error_responses
from detector.api.metrics import Metrics
from detector.api.schemas import HealthOut, ModelOut, ThresholdsOut
from detector.service import Service


def ops_router(service: Service, metrics: Metrics) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response,
                responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}})
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @router.get("/healthz", response_model=HealthOut, summary="liveness")
    async def healthz() -> HealthOut:
        return HealthOut(status="ok")

    @router.get("/readyz", response_model=HealthOut, summary="readiness: a model is loaded and the store answers",
                responses={503: {"model": HealthOut, "description": "not ready"}})
    def readyz():
        ready, status = service.ready()
        if not ready:
            return JSONResponse({"status": status}, status_code=503)
        return HealthOut(status=status)

    @router.get("/v1/model", response_model=ModelOut, summary="the model serving", responses=error_responses(403),
                dependencies=[Depends(optional(service.store, service.settings.api.require_key))])
    def model() -> ModelOut:
        card = service.card
        thr = service.thresholds
        return ModelOut(version=service.version, path=str(service.model_path), features=list(card.get("features", [])),
                        thresholds=ThresholdsOut(throttle=thr.throttle, block=thr.block),
                        training=dict(card.get("training", {})), libraries=dict(card.get("libraries", {})))

    return router
