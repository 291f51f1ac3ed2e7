"""Error answers at the HTTP edge, in CrowdSec's ``{"message": ...}`` shape."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from detector.api.schemas import MessageOut


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Forbidden(ApiError):
    """No key, an unknown key, or a key whose role may not do this."""

    def __init__(self) -> None:
        super().__init__(403, "access forbidden")


def error_responses(*codes: int) -> dict:
    """OpenAPI ``responses`` for these error statuses."""
    text = {400: "bad input", 403: "missing or wrong X-Api-Key", 404: "not found", 409: "conflict"}
    return {c: {"model": MessageOut, "description": text.get(c, "error")} for c in codes}


def install(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return JSONResponse({"message": exc.message}, status_code=exc.status)

    async def http_error(request: Request, exc: Exception):
        """A body that is not JSON answers 400 in the documented ``{"message": ...}`` shape; 405 names
        every method of the path in ``Allow`` (each method is its own route here)."""
        assert isinstance(exc, HTTPException)
        if exc.status_code == 400:
            return JSONResponse({"message": str(exc.detail)}, status_code=400)
        if exc.status_code != 405:
            return await http_exception_handler(request, exc)
        path = request.url.path
        allowed = sorted({m for r in request.app.routes if isinstance(r, APIRoute) and r.path_regex.match(path)
                          for m in r.methods})
        return JSONResponse({"detail": "Method Not Allowed"}, status_code=405, headers={"Allow": ", ".join(allowed)})

    app.add_exception_handler(ApiError, handle)
    app.add_exception_handler(HTTPException, http_error)
