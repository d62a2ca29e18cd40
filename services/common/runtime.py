"""Per-process state of a service, built once from its settings: eagerly at start-up under uvicorn
(a bad setting stops the process, naming the variable), lazily at the first request under Mangum
(whose lifespan is off, and where import time is cold-start time)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class LazyRuntime(Generic[T]):
    def __init__(self, build: Callable[[], T], *, on_shutdown: Callable[[T], Awaitable[None]] | None = None) -> None:
        self._build = build
        self._on_shutdown = on_shutdown
        self._runtime: T | None = None

    def __call__(self) -> T:
        if self._runtime is None:
            self._runtime = self._build()
        return self._runtime

    @asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        runtime = self()  # fail at start, naming the variable, rather than on the first person's request
        yield
        if self._on_shutdown is not None:
            await self._on_shutdown(runtime)
