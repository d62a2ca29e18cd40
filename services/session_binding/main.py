"""Session binding service: completes AgentCore's 3-legged OAuth only for the same user, in the same browser.

* `GET /oauth2/start?flow=<token>`: the signed-in user must own the signed flow token; a `__Host-`
  cookie binds the flow's sessionUri to this browser; 302 to the authorization URL in the token.
* `GET /oauth2/session-binding?session_id=<sessionUri>`: where AgentCore sends the browser after
  consent. Calls `CompleteResourceTokenAuth` once, for the verified `sub`, only when the cookie
  (in `same-browser` mode) names this session and this user.
* `GET /health`: constant.

Served by uvicorn on Fargate (`services.session_binding.main:app`) and, the same `app` object, by
Mangum on Lambda (`services.session_binding.main.handler`). Every refusal renders a page with the
right status, writes one security event, and never calls AgentCore.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import FastAPI
from mangum import Mangum

from services.common.health import router as health_router
from services.common.logs import configure_logging
from services.common.middleware import AccessLogMiddleware, CorrelationIdMiddleware, SecurityHeadersMiddleware
from services.common.runtime import LazyRuntime
from services.common.settings import load_settings
from services.session_binding import pages
from services.session_binding.refusal import add_refusal_handlers
from services.session_binding.routes import REFUSAL_EVENTS, router
from services.session_binding.runtime import Runtime
from services.session_binding.settings import BindingSettings


def create_app(
    load: Callable[[], BindingSettings] = lambda: load_settings(BindingSettings), *, clock: Callable[[], float] = time.time
) -> FastAPI:
    """The service as an ASGI app. Settings load at start-up under uvicorn, at first request under Mangum."""

    def build() -> Runtime:
        settings = load()
        configure_logging(settings.log_level)
        return Runtime.build(settings, clock)

    get_runtime = LazyRuntime(build)

    # redirect_slashes off: Starlette's slash redirect builds an absolute Location from the Host header.
    app = FastAPI(
        title="session-binding", docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False, lifespan=get_runtime.lifespan
    )
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, content_security_policy=pages.CONTENT_SECURITY_POLICY)
    app.add_middleware(CorrelationIdMiddleware)  # outermost: every line of the request carries its id
    add_refusal_handlers(app, events=REFUSAL_EVENTS)
    app.include_router(health_router)
    app.include_router(router)
    app.state.runtime = get_runtime
    return app


app = create_app()
handler = Mangum(app, lifespan="off")
