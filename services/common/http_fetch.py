"""One bounded GET for key material: a deadline for the whole exchange (httpx's timeouts apply per
read, so a slow drip could hold a fetch for ever) and a size cap."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx


class FetchFailed(Exception):
    """`reason`: `too_large`, `timeout` or `failed` (connection or protocol)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def fetch_capped(
    client: httpx.Client,
    url: str,
    *,
    deadline_s: float,
    max_bytes: int,
    headers: dict[str, str] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[int, bytes]:
    deadline = clock() + deadline_s
    try:
        with client.stream("GET", url, headers=headers) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise FetchFailed("too_large")
                if clock() > deadline:
                    raise FetchFailed("timeout")
            return response.status_code, bytes(body)
    except httpx.TimeoutException as exc:
        raise FetchFailed("timeout") from exc
    except httpx.HTTPError as exc:
        raise FetchFailed("failed") from exc
