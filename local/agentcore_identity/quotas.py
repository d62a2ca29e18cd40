"""Request-rate quotas for the AgentCore Identity stand-ins: a token bucket per quota, as AWS meters TPS quotas.

AgentCore Identity meters its data plane per account and Region in requests per second (see
`DOCUMENTED_TPS`; source: "Quotas for Amazon Bedrock AgentCore", AgentCore Identity section, in the
AgentCore developer guide). The emulator can do the same: `Quotas.set("GetResourceOauth2Token", 20)` lets
20 calls a second through (after a full bucket of `burst` calls), and answers every other call with
`ThrottlingException` (HTTP 429, the AWS JSON error shape) before the operation runs, so a throttled call
changes nothing. Operations without a quota are never throttled here.

Assumption: AWS lists one quota for `GetWorkloadAccessToken*`; the emulator reads it as one bucket shared
by GetWorkloadAccessToken, GetWorkloadAccessTokenForUserId and GetWorkloadAccessTokenForJWT, so setting
any of the three names (or `GetWorkloadAccessToken*`) sets that shared bucket.

Counts per operation (calls metered, calls throttled) are kept for tests and `GET /_emulator/stats`.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

WORKLOAD_ACCESS_QUOTA = "GetWorkloadAccessToken*"
WORKLOAD_TOKEN_OPERATIONS = ("GetWorkloadAccessToken", "GetWorkloadAccessTokenForUserId", "GetWorkloadAccessTokenForJWT")
# The default quotas AWS documents, in requests per second per account and Region (adjustable there).
DOCUMENTED_TPS = {"GetResourceOauth2Token": 200.0, "CompleteResourceTokenAuth": 100.0, WORKLOAD_ACCESS_QUOTA: 200.0}


def quota_name(operation: str) -> str:
    """The quota an operation is metered under: the shared workload-token quota, else its own name."""
    return WORKLOAD_ACCESS_QUOTA if operation in WORKLOAD_TOKEN_OPERATIONS else operation


class TokenBucket:
    """`rate` tokens a second, at most `burst` held; starts full. Not thread-safe (`Quotas` holds a lock)."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if not (math.isfinite(rate) and math.isfinite(burst)) or rate < 0 or burst < 0:
            raise ValueError(f"rate and burst must be finite numbers >= 0, got {rate} and {burst}")
        if rate > 0 and burst < 1:
            raise ValueError(f"a burst below 1 would never let a call through, got {burst}")
        self.rate, self.burst = rate, burst
        self._tokens = burst
        self._updated = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one; refill first for the time since the last call."""
        if now > self._updated:  # a clock that steps back refills nothing
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def available(self, now: float) -> float:
        """Tokens there would be at `now` (without spending any)."""
        return min(self.burst, self._tokens + max(0.0, now - self._updated) * self.rate)


@dataclass(frozen=True)
class Quota:
    tps: float
    burst: float


class Quotas:
    """Thread-safe quotas by quota name; `admit(operation)` is asked once per API call that reaches the front."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()
        self.metered: Counter[str] = Counter()  # calls of a metered operation, by operation
        self.throttled: Counter[str] = Counter()  # of those, the ones answered ThrottlingException

    def set(self, operation: str, tps: float, *, burst: float | None = None) -> None:
        """Meter `operation` (or its quota, see `quota_name`) at `tps` calls a second, holding at most
        `burst` (default: one second's worth, at least 1). `tps=0` throttles every call. The bucket
        starts full."""
        if tps < 0:
            raise ValueError(f"tps must be >= 0, got {tps}")
        size = (max(1.0, tps) if tps > 0 else 0.0) if burst is None else burst
        with self._lock:
            self._buckets[quota_name(operation)] = TokenBucket(tps, size, self._clock())

    def set_documented(self, scale: float = 1.0) -> None:
        """AWS's documented default quotas (`DOCUMENTED_TPS`), multiplied by `scale` (e.g. 0.1)."""
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        for name, tps in DOCUMENTED_TPS.items():
            self.set(name, tps * scale)

    def remove(self, operation: str) -> None:
        """No quota for `operation` (or its quota) any more; the counts stay."""
        with self._lock:
            self._buckets.pop(quota_name(operation), None)

    def clear(self) -> None:
        """No quota at all, and the counts start again from zero."""
        with self._lock:
            self._buckets.clear()
            self.metered.clear()
            self.throttled.clear()

    def admit(self, operation: str) -> bool:
        """True when the call may proceed; False when its quota's bucket is empty (answer ThrottlingException)."""
        with self._lock:
            bucket = self._buckets.get(quota_name(operation))
            if bucket is None:
                return True
            self.metered[operation] += 1
            if bucket.take(self._clock()):
                return True
            self.throttled[operation] += 1
            return False

    def quota(self, operation: str) -> Quota | None:
        with self._lock:
            bucket = self._buckets.get(quota_name(operation))
            return Quota(bucket.rate, bucket.burst) if bucket else None

    def message(self, operation: str) -> str:
        """The throttled call's message: AWS's "Rate exceeded", and which local quota said so."""
        quota = self.quota(operation)
        rate = f"{quota.tps:g} per second" if quota else "no quota"
        return f"Rate exceeded (local emulator quota {quota_name(operation)}: {rate})"

    def stats(self) -> dict[str, object]:
        """What `GET /_emulator/stats` shows: each quota, and the calls metered and throttled per operation."""
        with self._lock:
            return {
                "quotas": {name: {"tps": b.rate, "burst": b.burst} for name, b in sorted(self._buckets.items())},
                "metered": dict(self.metered),
                "throttled": dict(self.throttled),
            }


def parse_quota(text: str) -> tuple[str, float, float | None]:
    """`OP=TPS` or `OP=TPS:BURST`, as given to `--quota` (OP may be `GetWorkloadAccessToken*`)."""
    operation, sep, value = text.partition("=")
    if not sep or not operation.strip():
        raise ValueError(f"expected OPERATION=TPS[:BURST], got {text!r}")
    tps, _, burst = value.partition(":")
    try:
        return operation.strip(), float(tps), float(burst) if burst else None
    except ValueError:
        raise ValueError(f"expected numbers in OPERATION=TPS[:BURST], got {text!r}") from None


def build_quotas(assignments: Iterable[str] = (), documented_scale: float | None = None) -> Quotas:
    """Quotas from command-line or environment text: the documented ones times `documented_scale` if
    given, then each `OP=TPS[:BURST]` (which overrides the documented value for its quota)."""
    quotas = Quotas()
    if documented_scale is not None:
        quotas.set_documented(documented_scale)
    known = known_operations()
    for text in assignments:
        operation, tps, burst = parse_quota(text)
        if operation not in known:  # a misspelt name would otherwise throttle nothing, silently
            raise ValueError(f"unknown operation {operation!r} in {text!r}; one of {', '.join(sorted(known))}")
        quotas.set(operation, tps, burst=burst)
    return quotas


def known_operations() -> frozenset[str]:
    """The operations the emulator serves, and the shared workload-token quota's name."""
    from local.agentcore_identity.server import ROUTES  # noqa: PLC0415 - the server imports this module

    return frozenset(ROUTES.values()) | {WORKLOAD_ACCESS_QUOTA}
