"""Errors in OpenAI's JSON shape: ``{"error": {"message", "type", "param", "code"}}``.

Status codes: 400 malformed JSON, 401 missing or wrong API key, 404 unknown model or route,
413 a request over the server's limits, 422 invalid values (empty input, non-strings, bad
``dimensions``, an unreadable image, an input longer than the model's window), 503 overloaded
(with ``Retry-After``) or shutting down, 500 a failure inside the server.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

_TYPES = {401: "authentication_error", 404: "not_found_error", 503: "server_overloaded",
          500: "server_error"}


class APIError(Exception):
    """An error answered to the caller as JSON with ``status``."""

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.headers = headers


def error_body(status: int, message: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": _TYPES.get(status, "invalid_request_error"),
                      "param": param, "code": code}}


def error_response(status: int, message: str, *, code: str | None = None, param: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, code, param), status_code=status, headers=headers)


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out


def _validation_message(exc: RequestValidationError) -> tuple[int, str, str | None]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return 400, "the request body is not valid JSON", None
    messages, param = [], None
    for e in errors[:5]:
        where = _location(tuple(e.get("loc", ())))
        param = param or where or None
        msg = str(e.get("msg", "invalid value")).removeprefix("Value error, ")
        if e.get("type") == "extra_forbidden":
            msg = "unknown field"
        elif e.get("type") == "missing":
            msg = "required field is missing"
        # Messages that already name their field (input[3] ...) need no prefix.
        messages.append(msg if where and msg.startswith(where) else f"{where or 'body'}: {msg}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return 422, "; ".join(messages) + more, param


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status, exc.message, code=exc.code, param=exc.param, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        content_type = request.headers.get("content-type", "")
        if request.method == "POST" and "json" not in content_type.lower():
            # e.g. `curl -d '{...}'`, which sends form encoding: the body was never read as JSON.
            return error_response(415, f"the request body must be JSON sent with the header "
                                       f"'Content-Type: application/json' (got "
                                       f"{content_type or 'no Content-Type'})", code="unsupported_media_type")
        status, message, param = _validation_message(exc)
        return error_response(status, message, code="invalid_value" if status == 422 else "invalid_json",
                              param=param)

    @app.exception_handler(Exception)
    async def _failure(_: Request, exc: Exception) -> JSONResponse:  # logged by the server too
        return error_response(500, f"the server failed on this request ({type(exc).__name__}); "
                                   "see its log", code="internal_error")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}; see GET /v1/models and the README"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))
