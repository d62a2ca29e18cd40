"""Demo resource API: per-user notes, tasks and a profile, for the agent to call on a signed-in person's behalf.

* `GET /profile` (scope `demo-api/profile.read`): `{"sub", "username"}` from the access token.
* `GET /notes` (scope `demo-api/notes.read`): `{"notes": [{"id", "text", "created_at"}]}`, the caller's
  only, oldest first.
* `POST /notes` (scope `demo-api/notes.write`): `{"text"}` (1-1000 characters, nothing else) → 201 with
  the note; at most 100 notes per user (409 beyond).
* `GET /tasks` (scope `demo-api/tasks.read`): `{"tasks": [{"id", "text", "done", "created_at"}]}`, the
  caller's only, newest first.
* `POST /tasks` (scope `demo-api/tasks.write`): `{"text"}` (1-200 characters, nothing else) → 201 with
  the open task; at most 100 tasks per user, done ones included (409 beyond).
* `POST /tasks/{id}/done` (scope `demo-api/tasks.write`): → 200 with the task, marked done; 404 when the
  caller has no task with that id (another person's included).
* `GET /health`: constant, no token. Served locally and in tests only: API Gateway has no route to it.

Tokens of any app client listed in `DEMO_CLIENT_IDS` are accepted: the agent reaches this API through
several credential providers (accounts) of the same authorization server. The user is always the
verified token's `sub`; no request field names a user. Every error is JSON `{"error": <code>,
"message": <text>}`: 400 malformed request, 401 (with `WWW-Authenticate: Bearer error="invalid_token"`)
no usable token, 403 (`error="insufficient_scope", scope="…"`) token without the route's scope, 404
`task_not_found`, 409 note or task limit, 503 with `Retry-After` when the signing keys or the table
cannot be reached (`temporarily_unavailable`) or the token's key is not loaded yet and the key set may
not be fetched again for a few seconds (`keys_refreshing`). See docs/demo-api.md.

Runs on Lambda behind an API Gateway HTTP API through Mangum (`services.demo_api.main.handler`) and,
the same `app`, under uvicorn locally (`services.demo_api.main:app`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from fastapi import FastAPI
from mangum import Mangum

from services.common.health import router as health_router
from services.common.logs import configure_logging
from services.common.middleware import AccessLogMiddleware, SecurityHeadersMiddleware
from services.common.runtime import LazyRuntime
from services.demo_api.errors import add_error_handlers
from services.demo_api.routes import router
from services.demo_api.runtime import Runtime
from services.demo_api.settings import DemoApiSettings, load_demo_settings

CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'"  # JSON only: nothing to load, nothing to frame


def create_app(load: Callable[[], DemoApiSettings] = load_demo_settings, *, clock: Callable[[], float] = time.time) -> FastAPI:
    """The API as an ASGI app. Settings load at start-up under uvicorn, at the first request under Mangum."""

    def build() -> Runtime:
        settings = load()
        _configure_logging(settings.log_level)
        return Runtime.build(settings, clock)

    get_runtime = LazyRuntime(build)

    # redirect_slashes off: Starlette's slash redirect builds an absolute Location from the Host header.
    app = FastAPI(title="demo-api", docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False, lifespan=get_runtime.lifespan)
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, content_security_policy=CONTENT_SECURITY_POLICY)
    add_error_handlers(app)
    app.include_router(health_router)
    app.include_router(router)
    app.state.runtime = get_runtime
    return app


def _configure_logging(level: str) -> None:
    """The project's JSON logs on stdout, and only those.

    The Lambda runtime installs its own root handler; left in place it would print every line a second
    time, in plain text and without the redaction filter of our JSON formatter.
    """
    configure_logging(level)
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not type(h).__name__.startswith("LambdaLoggerHandler")]


app = create_app()
handler = Mangum(app, lifespan="off")
