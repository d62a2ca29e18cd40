"""Agent service: the chat UI and API. Acts for the signed-in person with per-user tokens.

* `GET /`: the chat UI (static files in `static/`, no third-party resource).
* `POST /api/chat`: `{"message", "history"}` in, server-sent events out: `message`, `tool_call`,
  `tool_result`, `authorization_required`, `error`, `done`. The user is the ALB-verified `sub`;
  nothing in the body names a user.
* `GET /api/session`: who is signed in, as an opaque digest.
* `GET /health`: constant.

Served by uvicorn (`services.agent.main:app`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import FastAPI

from services.agent.assets import static_file
from services.agent.connections import router as connections_router
from services.agent.errors import add_error_handlers
from services.agent.routes import router
from services.agent.runtime import Runtime, close_http
from services.agent.settings import AgentSettings
from services.common.health import router as health_router
from services.common.logs import configure_logging
from services.common.middleware import AccessLogMiddleware, CorrelationIdMiddleware, SecurityHeadersMiddleware
from services.common.runtime import LazyRuntime
from services.common.settings import load_settings

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def create_app(
    load: Callable[[], AgentSettings] = lambda: load_settings(AgentSettings), *, clock: Callable[[], float] = time.time
) -> FastAPI:
    """The service as an ASGI app. Settings load at start-up, under uvicorn's lifespan."""

    def build() -> Runtime:
        settings = load()
        configure_logging(settings.log_level)
        return Runtime.build(settings, clock)

    get_runtime = LazyRuntime(build, on_shutdown=close_http)

    # redirect_slashes off: Starlette's slash redirect builds an absolute Location from the Host header.
    app = FastAPI(title="agent", docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False, lifespan=get_runtime.lifespan)
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, content_security_policy=CONTENT_SECURITY_POLICY)
    app.add_middleware(CorrelationIdMiddleware)  # outermost: every line of the request carries its id
    add_error_handlers(app)
    app.include_router(health_router)
    app.add_route("/static/{name}", static_file, methods=["GET", "HEAD"], include_in_schema=False)
    app.include_router(router)
    app.include_router(connections_router)
    app.state.runtime = get_runtime
    return app


app = create_app()
