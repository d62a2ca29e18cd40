"""The reference: a bare FastAPI endpoint returning a page of the same size, no checks, no calls."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
_PAGE = "<!doctype html><title>ok</title>" + "x" * 1200


@app.get("/bare")
async def bare() -> HTMLResponse:
    return HTMLResponse(_PAGE)
