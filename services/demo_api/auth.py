"""Who may call: `requires(scope)`, the dependency that verifies the bearer token and its scope, and
the `ProfileReader`, `NotesReader`, `NotesWriter`, `TasksReader` and `TasksWriter` tokens the routes take."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, Request

from services.common.errors import ApiError
from services.common.logs import security_event
from services.demo_api.errors import RETRY_AFTER_S
from services.demo_api.runtime import DemoRuntime
from services.demo_api.tokens import (
    AccessToken,
    AccessTokenVerifier,
    InvalidRequest,
    InvalidToken,
    KeysRefreshing,
    KeysUnavailable,
    bearer_token,
)

SCOPE_PROFILE_READ = "demo-api/profile.read"
SCOPE_NOTES_READ = "demo-api/notes.read"
SCOPE_NOTES_WRITE = "demo-api/notes.write"
SCOPE_TASKS_READ = "demo-api/tasks.read"
SCOPE_TASKS_WRITE = "demo-api/tasks.write"
REALM = "demo-api"


def requires(scope: str) -> Any:
    """A dependency: the verified access token of this request, which must carry `scope`."""

    async def verified_token(request: Request, rt: DemoRuntime) -> AccessToken:
        try:
            token = await _verify(rt.verifier, request.headers.getlist("authorization"))
        except InvalidRequest as exc:
            security_event("token_refused", reason=exc.reason, status=400)
            raise ApiError(
                400,
                "invalid_request",
                "Send exactly one Authorization header.",
                headers={"www-authenticate": f'Bearer realm="{REALM}", error="invalid_request"'},
            ) from None
        except KeysRefreshing as exc:
            # Not a 401: a client treats that as a revoked grant, and the key may simply be new.
            security_event("token_unchecked", reason=exc.reason, status=503)
            raise ApiError(
                503,
                "keys_refreshing",
                "The access token is signed with a key this API has not loaded yet. "
                f"Try again in {exc.retry_after_s} second{'' if exc.retry_after_s == 1 else 's'}.",
                headers={"retry-after": str(exc.retry_after_s)},
            ) from None
        except KeysUnavailable as exc:
            security_event("token_unchecked", reason=exc.reason, status=503)
            raise ApiError(
                503,
                "temporarily_unavailable",
                "The access token could not be checked right now. Try again in a few seconds.",
                headers={"retry-after": str(RETRY_AFTER_S)},
            ) from None
        except InvalidToken as exc:
            security_event("token_refused", reason=exc.reason, status=401)
            raise ApiError(
                401,
                "invalid_token",
                _INVALID_TOKEN_MESSAGES.get(exc.reason, "The access token is not valid for this API. Get a new one."),
                headers={"www-authenticate": f'Bearer realm="{REALM}", error="invalid_token"'},
            ) from None
        if scope not in token.scopes:
            security_event("token_refused", reason="insufficient_scope", status=403, user_key=token.sub, scope=scope)
            raise ApiError(
                403,
                "insufficient_scope",
                f"This request needs the scope {scope}, which the access token does not carry.",
                headers={"www-authenticate": f'Bearer realm="{REALM}", error="insufficient_scope", scope="{scope}"'},
            )
        return token

    return Depends(verified_token)


_INVALID_TOKEN_MESSAGES = {
    "missing_token": "Send an access token: 'Authorization: Bearer <token>'.",
    "not_bearer": "Send the access token with the Bearer scheme: 'Authorization: Bearer <token>'.",
    "expired": "The access token has expired. Get a new one.",
}


async def _verify(verifier: AccessTokenVerifier, authorization: list[str]) -> AccessToken:
    parsed = verifier.parse(bearer_token(authorization))
    key = verifier.keys.cached(parsed.kid)
    if key is None:
        key = await anyio.to_thread.run_sync(verifier.keys.get, parsed.kid)
    return verifier.verify_parsed(parsed, key)


ProfileReader = Annotated[AccessToken, requires(SCOPE_PROFILE_READ)]
NotesReader = Annotated[AccessToken, requires(SCOPE_NOTES_READ)]
NotesWriter = Annotated[AccessToken, requires(SCOPE_NOTES_WRITE)]
TasksReader = Annotated[AccessToken, requires(SCOPE_TASKS_READ)]
TasksWriter = Annotated[AccessToken, requires(SCOPE_TASKS_WRITE)]
