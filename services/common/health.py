"""The `/health` route every service exposes: constant, calls nothing external."""

from __future__ import annotations

from fastapi import APIRouter, Response

router = APIRouter(tags=["health"])


@router.get("/health", include_in_schema=False)
async def health(response: Response) -> dict[str, str]:
    # Load balancer probes and smoke checks only need liveness; nothing here may block or leak.
    # `async`: answered on the event loop, never queued behind busy worker threads (slow model calls).
    response.headers["Cache-Control"] = "no-store"
    return {"status": "ok"}
