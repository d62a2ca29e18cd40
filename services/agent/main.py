"""Agent service entry point (uvicorn `services.agent.main:app`).

Foundation stage: only `/health`. The chat UI, chat API and token lifecycle are the
"Agent service" issue.
"""

from __future__ import annotations

from fastapi import FastAPI

from services.common.health import router as health_router

app = FastAPI(title="agent", docs_url=None, redoc_url=None, openapi_url=None)
app.include_router(health_router)
