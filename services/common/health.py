"""The `/health` route every service exposes: constant, calls nothing external."""

from __future__ import annotations

from fastapi import APIRouter, Response

router = APIRouter(tags=["health"])


@router.get("/health", include_in_schema=False)
def health(response: Response) -> dict[str, str]:
    # Load balancer probes and smoke checks only need liveness; nothing here may block or leak.
    response.headers["Cache-Control"] = "no-store"
    return {"status": "ok"}
