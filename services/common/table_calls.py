"""One DynamoDB table's calls from async code, as the session ledger and the connections registry make them.

Each call is a blocking boto3 call run in a worker thread, a few at a time per process (`concurrency`): like
AgentCore's calls, a few threads keep the table busy and more only fight the event loop for the GIL and stretch
tail latency. What can go wrong comes back in two shapes only: a failed condition is re-raised as botocore's
`ClientError` (the caller decides what it means), and everything else, throttling, a server error, a timeout, no
connection, credentials not there yet, becomes the caller's "unavailable" exception carrying the error's code or
class name alone, chained to nothing: botocore's messages may quote keys, and a key here is a digest of a session
or a person's identifier that a traceback in the logs must not show.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread

CONDITION_FAILED = "ConditionalCheckFailedException"


class TableCalls:
    """`await calls("update_item", Key=..., ...)`: the operation on `table` with the client `client()` returns
    (called in the worker thread, so a client is made off the event loop)."""

    def __init__(self, table: str, client: Callable[[], Any], *, concurrency: int, unavailable: Callable[[str], Exception]) -> None:
        self._table = table
        self._client = client
        self._concurrency = concurrency
        self._unavailable = unavailable
        self._limiter: anyio.CapacityLimiter | None = None  # made in the event loop, on first use

    async def __call__(self, operation: str, **request: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415 - botocore loads with the first call

        def run() -> Any:
            return getattr(self._client(), operation)(TableName=self._table, **request)

        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._concurrency)
        try:
            return await anyio.to_thread.run_sync(run, limiter=self._limiter)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == CONDITION_FAILED:
                raise
            raise self._unavailable(code if code.isidentifier() else "ClientError") from None
        except BotoCoreError as exc:
            raise self._unavailable(type(exc).__name__) from None
