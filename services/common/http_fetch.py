"""The services' outbound HTTP: one TLS context per process, and one bounded GET for key material (a
deadline for the whole exchange: httpx's timeouts apply per read, so a slow drip could hold a fetch for
ever; and a size cap)."""

from __future__ import annotations

import functools
import ssl
import time
from collections.abc import Callable

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS client context every httpx client of this process shares: what httpx builds for `verify=True`
    without the environment (`trust_env=False`): certifi's CA bundle, hostnames checked. Built once: each
    client would otherwise parse the whole bundle again (about 25 ms of CPU per client here). httpcore sets the
    ALPN protocols on the context at each connection: every client sharing it must speak HTTP/1.1 only (no
    `http2=True`), as all of ours do."""
    return httpx.create_ssl_context(trust_env=False)


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
