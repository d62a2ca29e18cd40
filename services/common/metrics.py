"""CloudWatch metrics as embedded metric format (EMF) lines on stdout.

No SDK and no network call: each metric is one JSON line that CloudWatch Logs turns into a metric
when it ingests the line (the awslogs driver on ECS, the Lambda runtime on Lambda). Dimensions are
few and bounded: the service, and a reason or error code from a fixed vocabulary. Never a user id,
a session id or anything a caller chose.

Every metric is published twice: with its dimensions (e.g. by `Reason`) and with `Service` alone,
so that an alarm can watch the total without knowing every reason.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Callable

from services.common.logs import correlation_id

# Metric names (docs/operations.md explains each).
BINDINGS_COMPLETED = "BindingsCompleted"
BINDINGS_REFUSED = "BindingsRefused"
# A landing with a valid binding cookie but no customState echo: AgentCore did not send the echo where
# we expect it (every consent fails) or someone typed the URL. Alarmed on: see docs/operations.md.
STATE_ECHO_MISSING = "StateEchoMissing"
SESSIONS_CANCELLED = "SessionsCancelled"  # burned for everyone, by Reason
AUTHORIZATION_PROMPTS = "AuthorizationPrompts"
AGENTCORE_ERRORS = "AgentCoreErrors"
WORKLOAD_TOKEN_CACHE_HITS = "WorkloadTokenCacheHits"  # noqa: S105 - a metric name
WORKLOAD_TOKEN_CACHE_MISSES = "WorkloadTokenCacheMisses"  # noqa: S105 - a metric name

SERVICE_DIMENSION = "Service"
MAX_DIMENSION_VALUE_CHARS = 64
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")


def dimension_value(value: str) -> str:
    """A dimension value kept to a safe alphabet and length (CloudWatch allows 1024; cardinality is the cost)."""
    cleaned = _UNSAFE.sub("_", value)[:MAX_DIMENSION_VALUE_CHARS]
    return cleaned or "unknown"


def _stdout(line: str) -> None:
    sys.stdout.write(line)  # looked up at each call: the process's stdout, or a test's capture
    sys.stdout.flush()


class Metrics:
    """Writes EMF lines for one service, under one namespace. Thread-safe (one write per line)."""

    def __init__(
        self,
        *,
        namespace: str,
        service: str,
        write: Callable[[str], None] = _stdout,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.namespace = namespace
        self.service = service
        self._write = write
        self._clock = clock
        self._lock = threading.Lock()

    def count(self, name: str, value: int = 1, **dimensions: str) -> None:
        """Add `value` to the metric `name` (unit Count), by `dimensions` and by service alone."""
        values = {SERVICE_DIMENSION: self.service, **{key: dimension_value(v) for key, v in dimensions.items()}}
        dimension_sets = [list(values)] + ([[SERVICE_DIMENSION]] if dimensions else [])
        document: dict[str, object] = {
            "_aws": {
                "Timestamp": int(self._clock() * 1000),
                "CloudWatchMetrics": [
                    {"Namespace": self.namespace, "Dimensions": dimension_sets, "Metrics": [{"Name": name, "Unit": "Count"}]}
                ],
            },
            **values,
            name: value,
        }
        current = correlation_id.get()
        if current is not None:
            document["correlation_id"] = current  # a property, not a dimension: finds the request's log lines
        line = json.dumps(document, separators=(",", ":")) + "\n"
        with self._lock:
            self._write(line)


def _discard(_line: str) -> None:
    return None


def no_metrics() -> Metrics:
    """For code paths built without a service around them (unit tests of a part)."""
    return Metrics(namespace="none", service="none", write=_discard)
