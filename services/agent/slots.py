"""Chats in flight: bounded per process and per person, and the event stream that gives its slot back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import StreamingResponse

from services.common.errors import ApiError


class ChatSlots:
    """Chats in flight, per process and per person: past the bounds, a clear 503 or 429 instead of a queue."""

    def __init__(self, *, total: int, per_user: int) -> None:
        self._total, self._per_user = total, per_user
        self._by_user: dict[str, int] = {}
        self.in_flight = 0

    def take(self, user: str) -> Callable[[], None]:
        if self.in_flight >= self._total:
            raise ApiError(503, "busy", "The agent is busy right now. Please try again in a few seconds.", headers={"retry-after": "5"})
        if self._by_user.get(user, 0) >= self._per_user:
            raise ApiError(
                429, "too_many_chats", "You already have several requests running. Wait for one to finish.", headers={"retry-after": "5"}
            )
        self.in_flight += 1
        self._by_user[user] = self._by_user.get(user, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self.in_flight -= 1
            remaining = self._by_user[user] - 1
            if remaining:
                self._by_user[user] = remaining
            else:
                del self._by_user[user]

        return release


class ChatStream(StreamingResponse):
    """The turn's event stream; releases the person's chat slot however the response ends."""

    def __init__(self, content: AsyncIterator[bytes], release: Callable[[], None]) -> None:
        super().__init__(content, media_type="text/event-stream", headers={"x-accel-buffering": "no"})
        self._release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()
