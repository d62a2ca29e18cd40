"""Who is signed in: `CurrentUser`, the one FastAPI dependency for the ALB-verified person of a request.

It raises one error family, `SignInError`; each app registers one handler that answers it in its own
terms (the agent in JSON, the session binding service with a page and a security event).
"""

from __future__ import annotations

from typing import Annotated, Protocol

from fastapi import Depends, Request

from services.common.alb_identity import AlbIdentity, AlbIdentityVerifier, KeyUnavailable, NotAuthenticated, verify_alb_identity


class SignInError(Exception):
    """The request's sign-in was not accepted. `reason` is the verifier's stable code, for logs."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotSignedIn(SignInError):
    """No valid sign-in from this ALB: a missing, foreign, expired or tampered token (401)."""


class SignInUnchecked(SignInError):
    """The ALB's signing key could not be fetched: fail closed, the person may try again shortly (503)."""


class _VerifyingRuntime(Protocol):
    @property
    def verifier(self) -> AlbIdentityVerifier: ...


async def current_user(request: Request) -> AlbIdentity:
    """The person the ALB signed in, verified with the app's runtime verifier (`app.state.runtime()`)."""
    runtime: _VerifyingRuntime = request.app.state.runtime()
    try:
        return await verify_alb_identity(request.headers, runtime.verifier)
    except KeyUnavailable as exc:
        raise SignInUnchecked(exc.reason) from None
    except NotAuthenticated as exc:
        raise NotSignedIn(exc.reason) from None


CurrentUser = Annotated[AlbIdentity, Depends(current_user)]
