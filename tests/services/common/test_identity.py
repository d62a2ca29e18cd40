"""`CurrentUser` (`services/common/identity.py`): the signed-in person from the app's runtime verifier,
or one error family, `SignInError`, that the app answers in its own terms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI, Request
from starlette.responses import JSONResponse
from starlette.testclient import TestClient

from local.alb.keys import AlbSigningKey, KeyServer
from services.common.alb_identity import AlbIdentityVerifier, AlbKeyStore
from services.common.identity import CurrentUser, NotSignedIn, SignInError, SignInUnchecked
from tests.services.conftest import ALB_ARN, ALICE, CLIENT_ID, ISSUER, OTHER_ALB_ARN


@dataclass
class _Runtime:
    verifier: AlbIdentityVerifier


def app_verifying_with(keys_url: str) -> FastAPI:
    """A minimal app in the services' shape: a runtime on `app.state`, one route taking `CurrentUser`."""
    runtime = _Runtime(AlbIdentityVerifier(alb_arn=ALB_ARN, issuer=ISSUER, client_id=CLIENT_ID, keys=AlbKeyStore(keys_url, timeout_s=5.0)))
    app = FastAPI()
    app.state.runtime = lambda: runtime

    @app.get("/who")
    async def who(identity: CurrentUser) -> dict[str, str | None]:
        return {"sub": identity.sub, "issuer": identity.issuer, "email": identity.email}

    @app.exception_handler(SignInError)
    async def refused(_: Request, exc: SignInError) -> JSONResponse:
        return JSONResponse({"kind": type(exc).__name__, "reason": exc.reason}, status_code=499)

    return app


def headers(key: AlbSigningKey, **overrides: Any) -> dict[str, str]:
    claims: dict[str, Any] = {"sub": ALICE.sub, "signer": ALB_ARN, "issuer": ISSUER, "client_id": CLIENT_ID, "email": ALICE.email}
    claims.update(overrides)
    return {"x-amzn-oidc-data": key.mint(**claims), "x-amzn-oidc-identity": claims["sub"]}


def test_the_signed_in_person_comes_from_the_runtime_verifier(alb_key: AlbSigningKey, key_server: KeyServer) -> None:
    with TestClient(app_verifying_with(key_server.base_url)) as client:
        response = client.get("/who", headers=headers(alb_key))
    assert response.status_code == 200
    assert response.json() == {"sub": ALICE.sub, "issuer": ISSUER, "email": ALICE.email}


@pytest.mark.parametrize(
    ("sent", "reason"),
    [
        ("nothing", "missing_header"),
        ("another ALB", "foreign_signer"),
        ("garbage", "malformed_token"),
    ],
)
def test_no_valid_sign_in_is_not_signed_in(alb_key: AlbSigningKey, key_server: KeyServer, sent: str, reason: str) -> None:
    sent_headers = {
        "nothing": {},
        "another ALB": headers(alb_key, signer=OTHER_ALB_ARN),
        "garbage": {"x-amzn-oidc-data": "a.b.c"},
    }[sent]
    with TestClient(app_verifying_with(key_server.base_url)) as client:
        response = client.get("/who", headers=sent_headers)
    assert (response.status_code, response.json()) == (499, {"kind": "NotSignedIn", "reason": reason})


def test_a_key_that_cannot_be_fetched_is_sign_in_unchecked(alb_key: AlbSigningKey) -> None:
    with TestClient(app_verifying_with("http://127.0.0.1:9")) as client:  # nothing listens: the fetch fails
        response = client.get("/who", headers=headers(alb_key))
    assert response.status_code == 499
    assert response.json()["kind"] == "SignInUnchecked"
    assert response.json()["reason"].startswith("key_fetch_")


def test_the_family_is_one_base_class() -> None:
    assert issubclass(NotSignedIn, SignInError) and issubclass(SignInUnchecked, SignInError)
    assert not issubclass(SignInUnchecked, NotSignedIn)  # a 503 is never answered as a 401
