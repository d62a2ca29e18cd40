"""The chat UI's files (`static/`): read once when the service starts and answered from memory.

The files in the image never change while a task runs, so reading them for every request buys nothing:
Starlette's `FileResponse` and `StaticFiles` stat, open, read and close the file in worker threads, four
thread hand-offs per page. Only the files found here at start-up are served, by name: there is no
directory to walk out of. No ETag or Last-Modified: every answer of the service carries `Cache-Control:
no-store` (services/common/middleware.py), so a browser keeps no copy to revalidate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

STATIC_DIR = Path(__file__).resolve().parent / "static"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str


def load_assets(folder: Path = STATIC_DIR) -> dict[str, Asset]:
    """Every file of a known type in `folder`, by name; a file of another type is a packaging mistake."""
    assets = {}
    for path in sorted(folder.iterdir()):
        if path.is_dir() or path.name.startswith("."):
            continue
        if path.suffix not in MEDIA_TYPES:
            raise ValueError(f"{path}: no media type for {path.suffix!r} files (services/agent/assets.py MEDIA_TYPES)")
        assets[path.name] = Asset(path.read_bytes(), MEDIA_TYPES[path.suffix])
    return assets


ASSETS = load_assets()


def page(name: str, headers: Mapping[str, str] | None = None) -> Response:
    """An HTML page of the UI (`index.html`, ...), whole."""
    asset = ASSETS[name]
    return Response(asset.body, media_type=asset.media_type, headers=headers)


async def static_file(request: Request) -> Response:
    """`GET|HEAD /static/{name}`: the file, or 404."""
    asset = ASSETS.get(request.path_params["name"])
    if asset is None:
        raise HTTPException(status_code=404)
    headers = {"content-length": str(len(asset.body))}
    return Response(b"" if request.method == "HEAD" else asset.body, media_type=asset.media_type, headers=headers)
