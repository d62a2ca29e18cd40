"""How the agent answers an error: JSON `{"error", "message"}`, one handler per error family.

Paths the agent does not serve keep FastAPI's own 404 and 405 answers.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import JSONResponse

from services.agent.chat_request import readable
from services.common.errors import add_api_error_handler, json_error
from services.common.identity import SignInError, SignInUnchecked


async def _sign_in_refused(_: Request, exc: SignInError) -> JSONResponse:
    if isinstance(exc, SignInUnchecked):
        return json_error(
            503, "sign_in_unchecked", "Your sign-in could not be checked right now. Try again in a few seconds.", {"retry-after": "5"}
        )
    return json_error(401, "not_signed_in", "You are not signed in. Reload the page to sign in.", {})


async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    return json_error(400, "invalid_request", readable(exc.errors()), None)


def add_error_handlers(app: FastAPI) -> None:
    add_api_error_handler(app)
    app.add_exception_handler(SignInError, _sign_in_refused)  # type: ignore[arg-type]  # Starlette types handlers loosely
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
