"""How the demo API answers an error: JSON `{"error", "message"}` for every one, the paths it does not
serve included, with one handler per error family."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from services.common.errors import add_api_error_handler, json_error

RETRY_AFTER_S = 5  # what a 503 asks the caller to wait
_HTTP_ERRORS = {404: ("not_found", "There is nothing at this path."), 405: ("method_not_allowed", "This path does not take this method.")}


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    # Routes read their bodies themselves; this covers anything FastAPI validates (422 is not used here).
    return json_error(400, "invalid_request", "The request is malformed.")


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    error, message = _HTTP_ERRORS.get(exc.status_code, ("http_error", "The request could not be served."))
    return json_error(exc.status_code, error, message, dict(exc.headers or {}))


def add_error_handlers(app: FastAPI) -> None:
    add_api_error_handler(app)
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]  # Starlette types handlers loosely
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
