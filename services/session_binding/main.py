"""Session binding service entry point: uvicorn `services.session_binding.main:app` on Fargate,
and the same `app` under Mangum (`handler`) on Lambda.

Foundation stage: only `/health`. `/oauth2/start` and `/oauth2/session-binding` are the
"Session binding service" issue.
"""

from __future__ import annotations

from fastapi import FastAPI
from mangum import Mangum

from services.common.health import router as health_router

app = FastAPI(title="session-binding", docs_url=None, redoc_url=None, openapi_url=None)
app.include_router(health_router)

handler = Mangum(app, lifespan="off")
