"""``POST /v1/ingest?format=…``: log lines from shippers (Vector, Fluent Bit HTTP outputs) into the pipeline.

The body is NDJSON (one log line per line, as the gateway wrote it), optionally ``Content-Encoding:
gzip``. It is read as it streams in and refused with **413** as soon as it (or what it decompresses to)
passes ``ingest.http_max_bytes``. Its lines are parsed and offered to the ingest queue: when the queue is
full the answer is **503** with ``Retry-After`` (nothing of the body was taken; send it again). Otherwise
the request waits until the pipeline has processed the batch and answers **200** with the counts, so a
shipper that gets no answer (detector crashed) sends again: at-least-once. A key with the admin role is
needed unless ``ingest.http_require_key`` is off (forged log lines could get anyone blocked).
"""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from detector.api.auth import HEADER
from detector.api.metrics import Metrics
from detector.api.schemas import MessageOut
from detector.feeds import Ingestion
from detector.ingest.body import BadBody, BodyReader, TooLarge
from detector.ingest.queue import Item

SOURCE = "http"
WAIT = 120.0  # seconds a request waits for its batch to be processed before answering 202
FormatName = Literal["auto", "nginx-json", "nginx-combined", "envoy-json", "jsonl"]


class IngestOut(BaseModel):
    accepted: int = Field(description="lines parsed into events and processed")
    malformed: int = Field(description="lines skipped as malformed")
    reasons: dict[str, int] = Field(default_factory=dict, description="malformed lines by reason")
    skipped: int = Field(0, description="records of no request's start or end (Envoy's periodic records), passed over")
    processed: bool = Field(True, description="false: still queued when the answer was sent (202)")


def _message(status: int, text: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"message": text}, status_code=status, headers=headers)


def ingest_router(ingestion: Ingestion, metrics: Metrics) -> APIRouter:
    service = ingestion.service
    settings = service.settings.ingest
    limit = settings.http_max_bytes
    retry_after = str(settings.retry_after)
    router = APIRouter(tags=["ingest"])
    counted = metrics.ingest_requests

    responses: dict = {
        202: {"model": IngestOut, "description": "queued, not yet processed (the pipeline is slow)"},
        400: {"model": MessageOut, "description": "the body cannot be decoded"},
        403: {"model": MessageOut, "description": "no admin X-Api-Key (with ingest.http_require_key)"},
        413: {"model": MessageOut,
              "description": f"body larger than ingest.http_max_bytes ({limit} bytes), as sent or decompressed"},
        415: {"model": MessageOut, "description": "Content-Encoding other than identity or gzip"},
        500: {"model": MessageOut, "description": "the pipeline failed on this batch (a bug; logged)"},
        503: {"model": MessageOut, "description": "the ingest queue is full: retry after Retry-After seconds",
              "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}},
    }

    @router.post("/v1/ingest", response_model=IngestOut, responses=responses,
                 summary="log lines (NDJSON, optionally gzip) into the pipeline",
                 description="NDJSON: one log line per line, as the gateway wrote it (any Content-Type, e.g. "
                             "application/x-ndjson); `Content-Encoding: gzip` is read too.",
                 openapi_extra={"requestBody": {"required": True, "content": {
                     "text/plain": {"schema": {"type": "string"}}}}})
    async def ingest(request: Request, fmt: FormatName | None = Query(
            None, alias="format", description="log format (default: ingest.format)")):
        if settings.http_require_key:
            key = service.store.authenticate(request.headers.get(HEADER))
            if key is None or not key.can("admin"):
                counted.labels("forbidden").inc()
                return _message(403, "access forbidden")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            counted.labels("too_large").inc()
            return _message(413, f"body larger than {limit} bytes")
        try:
            reader = BodyReader(limit, request.headers.get("content-encoding"))
            async for piece in request.stream():
                reader.feed(piece)
            lines = reader.finish()
        except TooLarge as exc:
            counted.labels("too_large").inc()
            return _message(413, str(exc))
        except BadBody as exc:
            counted.labels("unsupported_encoding" if exc.unsupported else "bad_body").inc()
            return _message(415 if exc.unsupported else 400, str(exc))
        batch = await run_in_threadpool(ingestion.parser(fmt), lines)
        stats = batch.stats
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()

        def finished(failed: bool) -> None:
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(failed))

        ingestion.start()
        if not ingestion.queue.offer(Item(SOURCE, batch, [finished])):
            counted.labels("queue_full").inc()
            return _message(503, "the ingest queue is full; send again later", {"Retry-After": retry_after})
        counted.labels("accepted").inc()
        out = IngestOut(accepted=stats.parsed, malformed=stats.rejected, reasons=dict(stats.malformed),
                        skipped=stats.passed)
        try:
            if await asyncio.wait_for(asyncio.shield(done), WAIT):
                return _message(500, "the pipeline failed on this batch (logged); it was not processed")
        except TimeoutError:
            return JSONResponse(out.model_copy(update={"processed": False}).model_dump(), status_code=202)
        return out

    return router
