"""``create_app(service, clock)``: the FastAPI application, assembled from its routers.

| router | endpoints |
| --- | --- |
| ``gateway`` | ``/authz``, ``/authz/{path}``, ``/score`` |
| ``lapi`` | ``/v1/decisions``, ``/v1/decisions/stream`` (bouncer keys) |
| ``admin`` | ``/v1/admin/decisions``, ``/v1/admin/allowlist``, ``/v1/admin/model/reload`` (admin keys) |
| ``ops`` | ``/metrics``, ``/healthz``, ``/readyz``, ``/v1/model``; OpenAPI at ``/docs`` |
| ``ingest`` | ``POST /v1/ingest`` (log shippers; with ``ingest.http``) |
"""

from __future__ import annotations

import time
from typing import Callable

from fastapi import FastAPI

from detector.api import errors
from detector.api.admin import admin_router
from detector.api.gateway import gateway_router
from detector.api.ingest import ingest_router
from detector.api.lapi import lapi_router
from detector.api.metrics import Metrics, MetricsMiddleware
from detector.api.ops import ops_router
from detector.feeds import Ingestion
from detector.service import Service


def create_app(service: Service, clock: Callable[[], float] = time.time, ingestion: Ingestion | None = None) -> FastAPI:
    """The FastAPI application over a running ``Service``; ``clock`` gives the wall time. ``ingestion``: the
    live sources' queue and consumer (``detector serve`` passes its own; without one, the app makes one
    whose consumer starts on the first ``POST /v1/ingest``)."""
    app = FastAPI(title="detector", version=service.version or "0",
                  description="Anomaly detection for long-poll API endpoints: verdicts and decisions for gateways "
                              "(forward auth) and CrowdSec-compatible bouncers.")
    ingestion = ingestion if ingestion is not None else Ingestion(service, clock)
    metrics = Metrics(service, clock, ingestion)
    app.state.service = service
    app.state.metrics = metrics
    app.state.ingestion = ingestion
    errors.install(app)
    app.include_router(gateway_router(service, clock))
    app.include_router(lapi_router(service, clock))
    app.include_router(admin_router(service, clock))
    app.include_router(ops_router(service, metrics))
    if service.settings.ingest.http:
        app.include_router(ingest_router(ingestion, metrics))
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
