"""Fault injection for the AgentCore Identity stand-ins: AWS errors, broken answers and latency, per operation.

Faults are set per operation name (e.g. `GetResourceOauth2Token`) or for every operation with `"*"`.
A scripted fault (`script`) is consumed, in order, before any probabilistic one, so reliability
tests can say "the next two calls are throttled" and get exactly that.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from local.agentcore_identity.service import ERROR_STATUS

THROTTLING = "ThrottlingException"
INTERNAL = "InternalServerException"
# Answers that are not an AWS error: a 503 with an HTML body (a proxy in front), a connection dropped
# unanswered, and the work done but the answer sent late (the caller's read timeout fires first).
HTML_503, CLOSE, SLOW_SUCCESS = "HTML503", "CLOSE", "SLOW_SUCCESS"
INJECTABLE = frozenset(ERROR_STATUS) | {HTML_503, CLOSE, SLOW_SUCCESS}
ANY = "*"


@dataclass
class FaultRule:
    throttle_probability: float = 0.0
    internal_error_probability: float = 0.0
    latency_s: float = 0.0


@dataclass(frozen=True)
class Fault:
    """What to do for one call: sleep `latency_s`, then answer `error` (an AWS error code) if set."""

    latency_s: float = 0.0
    error: str | None = None


class Faults:
    """Thread-safe fault configuration; `decide(operation)` is asked once per API call."""

    def __init__(self, seed: int | None = None) -> None:
        self._rules: dict[str, FaultRule] = {}
        self._scripts: dict[str, list[str]] = {}
        self._random = random.Random(seed)  # noqa: S311 - fault injection, not cryptography
        self._lock = threading.Lock()

    def set(
        self,
        operation: str = ANY,
        *,
        throttle_probability: float = 0.0,
        internal_error_probability: float = 0.0,
        latency_s: float = 0.0,
    ) -> None:
        """Probabilistic faults and added latency for `operation` (or every operation with "*")."""
        for p in (throttle_probability, internal_error_probability):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"probability out of range: {p}")
        if latency_s < 0:
            raise ValueError(f"latency must be >= 0: {latency_s}")
        with self._lock:
            self._rules[operation] = FaultRule(throttle_probability, internal_error_probability, latency_s)

    def script(self, operation: str, error: str, count: int = 1) -> None:
        """The next `count` calls of `operation` (or "*": of any operation) answer `error`."""
        if error not in INJECTABLE:
            raise ValueError(f"cannot inject {error!r}; one of {sorted(INJECTABLE)}")
        with self._lock:
            self._scripts.setdefault(operation, []).extend([error] * count)

    def scripted(self, operation: str = ANY) -> list[str]:
        """The faults still queued for `operation` (or "*"), oldest first."""
        with self._lock:
            return list(self._scripts.get(operation, []))

    def replace_script(self, operation: str, errors: list[str]) -> None:
        """Queue exactly `errors` for `operation` (or "*"), dropping what was queued."""
        if unknown := set(errors) - INJECTABLE:
            raise ValueError(f"cannot inject {sorted(unknown)}; one of {sorted(INJECTABLE)}")
        with self._lock:
            self._scripts[operation] = list(errors)

    def latency(self, operation: str = ANY) -> float:
        with self._lock:
            rule = self._rules.get(operation)
            return rule.latency_s if rule else 0.0

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._scripts.clear()

    def decide(self, operation: str) -> Fault:
        with self._lock:
            rule = self._rules.get(operation) or self._rules.get(ANY) or FaultRule()
            for key in (operation, ANY):
                queue = self._scripts.get(key)
                if queue:
                    return Fault(rule.latency_s, queue.pop(0))
            draw = self._random.random()
        if draw < rule.throttle_probability:
            return Fault(rule.latency_s, THROTTLING)
        if draw < rule.throttle_probability + rule.internal_error_probability:
            return Fault(rule.latency_s, INTERNAL)
        return Fault(rule.latency_s, None)


def parse_assignment(text: str) -> tuple[str, str]:
    """`OP=VALUE` or just `VALUE` (meaning every operation), as given on the command line."""
    if "=" in text:
        operation, value = text.split("=", 1)
        return operation.strip() or ANY, value.strip()
    return ANY, text.strip()
