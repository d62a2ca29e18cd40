"""Every route an app serves, read from its route table, so that a route added later is tested too."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

_PARAM = re.compile(r"\{[^}]+\}")


def concrete_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path) for every endpoint; path parameters filled in, a mount by one file it serves."""
    found: list[tuple[str, str]] = []
    _walk(app.routes, "", found)
    return sorted(set(found))


def _walk(routes: list[BaseRoute], prefix: str, found: list[tuple[str, str]]) -> None:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's include_router wrapper
        if included is not None:
            context = getattr(route, "include_context", None)
            _walk(included.routes, prefix + str(getattr(context, "prefix", "") or ""), found)
        elif isinstance(route, Mount):
            found.append(("GET", prefix + route.path + "/" + _a_file_of(route)))
        elif isinstance(route, Route):
            path = _PARAM.sub("x", prefix + route.path)
            for method in sorted(route.methods or {"GET"}):
                if method != "HEAD":
                    found.append((method, path))
        else:  # a route kind this helper does not know: make the caller's completeness check fail
            found.append(("UNKNOWN", f"{prefix}{type(route).__name__}"))


def _a_file_of(mount: Mount) -> str:
    if isinstance(mount.app, StaticFiles) and mount.app.directory is not None:
        files = sorted(p for p in Path(mount.app.directory).rglob("*") if p.is_file())
        if files:
            return files[0].relative_to(mount.app.directory).as_posix()
    return "x"
