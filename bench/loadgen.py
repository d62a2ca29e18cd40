"""A small closed-loop HTTP/1.1 load generator: N keep-alive connections, precomputed requests.

Written for loopback benchmarks where the generator must cost far less than the server it measures:
no HTTP library, one asyncio stream per connection, requests prepared before the clock starts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    latencies_s: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    bodies: list[bytes] = field(default_factory=list)  # only with `keep_bodies`

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    def per_s(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s else 0.0

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def get_request(path: str, host: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"host: {host}", *(f"{k}: {v}" for k, v in (headers or {}).items()), "", ""]
    return "\r\n".join(lines).encode("latin-1")


async def _read_response(reader: asyncio.StreamReader, sink: bytearray | None = None) -> int:
    """Read one response; its status. The body is read in full, and kept in `sink` if one is given."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:  # streamed responses (server-sent events): read every chunk up to the last, empty one
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if sink is not None:
                sink += chunk[:size]
            if size == 0:
                break
    elif length:
        body = await reader.readexactly(length)
        if sink is not None:
            sink += body
    return status


async def run_load(host: str, port: int, requests: Sequence[bytes], *, concurrency: int, keep_bodies: bool = False) -> LoadResult:
    """Send every request once over `concurrency` connections; report latency and status counts (and, with
    `keep_bodies`, every response body, in the order the responses completed)."""
    result = LoadResult()
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while next_index < len(requests):
                request = requests[next_index]
                next_index += 1
                body = bytearray() if keep_bodies else None
                started = time.perf_counter()
                writer.write(request)
                status = await _read_response(reader, body)
                result.latencies_s.append(time.perf_counter() - started)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if body is not None:
                    result.bodies.append(bytes(body))
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed_s = time.perf_counter() - started
    return result
