"""Sign-out: the load balancer's session ends in this browser, then the sign-in provider's own session.

As AWS documents for ALB authentication ("Authenticate users using an Application Load Balancer",
section Logout): the application sets the expiry of the authentication session cookie to -1 and
redirects the client to the identity provider's logout endpoint. The ALB splits a large session cookie
into shards (`AWSELBAuthSessionCookie-0`, `-1`, …); every shard is expired. Cognito's logout endpoint
(`/logout?client_id=…&logout_uri=…`, "Logout endpoint" in the Cognito developer guide) ends its own
session and returns the browser to `logout_uri`, which must be one of the app client's logout URLs: our
`/signed-out` page, which needs no session.

What this cannot do: the ALB's cookie is self-contained, so a copy taken before sign-out stays valid
until it expires (the listener's session timeout, `cdk_app/routes.py`); only the browser's copy ends here.
"""

from __future__ import annotations

from starlette.responses import Response

SIGNED_OUT_PATH = "/signed-out"  # the listener rule for it is `SignedOut` in cdk_app/routes.py (a test keeps them equal)
ALB_SESSION_COOKIE_SHARDS = tuple(f"AWSELBAuthSessionCookie-{shard}" for shard in range(4))


def expire_alb_session(response: Response) -> None:
    """Every shard of the ALB's session cookie expires now (Max-Age=0), with the attributes the ALB sets."""
    for name in ALB_SESSION_COOKIE_SHARDS:
        response.delete_cookie(name, path="/", secure=True, httponly=True, samesite="none")
