"""JSON error answers, `{"error": <code>, "message": <text>}`: `ApiError` and its one handler, for the JSON apps."""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.responses import JSONResponse


class ApiError(Exception):
    """An error answer: status, stable code, a sentence for people, extra headers."""

    def __init__(self, status: int, error: str, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers or {}


def json_error(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status, headers=headers)


async def api_error_response(_: Request, exc: ApiError) -> JSONResponse:
    return json_error(exc.status, exc.error, exc.message, exc.headers)


def add_api_error_handler(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, api_error_response)  # type: ignore[arg-type]  # Starlette types handlers loosely
