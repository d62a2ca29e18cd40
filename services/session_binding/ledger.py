"""At most one CompleteResourceTokenAuth per session in this process.

A double click, a reload during the call, or a replay while the first call is in flight all wait
for the one call in progress instead of sending another. Completed sessions are remembered until
they would have expired anyway, so a later replay is answered without calling AgentCore.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

from services.common.flow import FLOW_TTL_MAX_S
from services.common.signed import digest


class Completion(Enum):
    CALLED = "called"  # this request made the call and it succeeded
    ALREADY_DONE = "already_done"  # the same user completed it earlier (or concurrently): no call


class CompletionInterrupted(Exception):
    """The request making the call went away mid-call: the outcome is unknown to those waiting on it."""


class OtherUsersSession(Exception):
    """The session was completed, or is being completed, for a different user."""


@dataclass(slots=True)
class _Entry:
    user: str
    expires_at: float


class CompletionLedger:
    def __init__(self, *, max_entries: int = 10_000, ttl_s: float = FLOW_TTL_MAX_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._done: OrderedDict[str, _Entry] = OrderedDict()
        self._inflight: dict[str, tuple[str, asyncio.Future[None]]] = {}
        self._max_entries = max_entries
        self._ttl_s = ttl_s
        self._clock = clock

    def __len__(self) -> int:
        return len(self._done)

    async def complete(self, session_uri: str, user_key: str, call: Callable[[], Awaitable[None]]) -> Completion:
        session, user = digest(session_uri, 32), digest(user_key, 32)
        entry = self._done.get(session)
        if entry is not None and entry.expires_at > self._clock():
            if entry.user != user:
                raise OtherUsersSession
            return Completion.ALREADY_DONE
        inflight = self._inflight.get(session)
        if inflight is not None:
            owner, future = inflight
            if owner != user:
                raise OtherUsersSession
            await asyncio.shield(future)  # re-raises the first call's failure: same answer, no second call
            return Completion.ALREADY_DONE
        future = asyncio.get_running_loop().create_future()
        self._inflight[session] = (user, future)
        try:
            await call()
        except asyncio.CancelledError:
            # Waiting duplicates get an answer of their own rather than a cancellation they did not ask for.
            future.set_exception(CompletionInterrupted())
            future.exception()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiting duplicates are optional
            raise
        else:
            self._remember(session, user)
            future.set_result(None)
        finally:
            self._inflight.pop(session, None)
        return Completion.CALLED

    def _remember(self, session: str, user: str) -> None:
        self._done[session] = _Entry(user=user, expires_at=self._clock() + self._ttl_s)
        self._done.move_to_end(session)
        now = self._clock()
        while self._done and (len(self._done) > self._max_entries or next(iter(self._done.values())).expires_at <= now):
            self._done.popitem(last=False)
