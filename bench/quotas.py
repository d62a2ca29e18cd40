"""AgentCore Identity's per-account quotas, and what one account sustains under them.

From the calls per unit of work counted in a load run (`bench/quota_run.py`: chats, tool calls,
consents), the most units per second an account sustains is, over the quotas the unit draws on, the
smallest `quota / calls per unit`; the quota that reaches it first binds. A unit that makes no
AgentCore Identity call is not limited by these quotas at all (its row says so; other limits, such as
Bedrock's or the tasks' own capacity, then come first).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from local.agentcore_identity.quotas import DOCUMENTED_TPS, WORKLOAD_ACCESS_QUOTA, WORKLOAD_TOKEN_OPERATIONS

# The default quotas of the AgentCore Identity data plane, per account and Region, adjustable through
# Service Quotas: AWS documentation, "Quotas for Amazon Bedrock AgentCore", AgentCore Identity section.
QUOTAS_SOURCE = "https://docs.aws.amazon.com/bedrock-agentcore/latest/devguide/bedrock-agentcore-limits.html#identity-service-limits"


@dataclass(frozen=True)
class Quota:
    name: str
    operations: tuple[str, ...]
    per_s: float


# The figures and the shared workload-token quota come from the emulator's `DOCUMENTED_TPS`, one place for both.
QUOTAS: tuple[Quota, ...] = (
    # The three workload-token operations are read as sharing one quota: the cautious reading (the agent
    # only calls GetWorkloadAccessTokenForUserId, so the table is the same if each has its own).
    Quota(WORKLOAD_ACCESS_QUOTA, WORKLOAD_TOKEN_OPERATIONS, DOCUMENTED_TPS[WORKLOAD_ACCESS_QUOTA]),
    Quota("GetResourceOauth2Token", ("GetResourceOauth2Token",), DOCUMENTED_TPS["GetResourceOauth2Token"]),
    Quota("CompleteResourceTokenAuth", ("CompleteResourceTokenAuth",), DOCUMENTED_TPS["CompleteResourceTokenAuth"]),
)


@dataclass(frozen=True)
class Unit:
    key: str
    label: str


UNITS: tuple[Unit, ...] = (
    Unit("chat_first", "chat, a person's first in a task (no token of theirs cached there yet)"),
    Unit("chat_next", "chat, a person's next ones in that task (tokens reused)"),
    Unit("tool_call", "tool call, over every chat of the load run"),
    Unit("consent", "consent: the chat that asks, and the completion"),
)


def calls_per_unit(calls: Mapping[str, int], units: int, quotas: Sequence[Quota] = QUOTAS) -> dict[str, float]:
    """Calls per unit against each quota (the operations under one quota summed)."""
    if units <= 0:
        raise ValueError("no units measured")
    return {q.name: sum(calls.get(op, 0) for op in q.operations) / units for q in quotas}


def sustained(per_unit: Mapping[str, float], quotas: Sequence[Quota] = QUOTAS) -> tuple[float | None, list[str]]:
    """The most units per second the quotas allow, and the quotas that bind at that rate (several on a tie);
    (None, []) when the unit makes no call under any quota."""
    limits = {q.name: q.per_s / per_unit[q.name] for q in quotas if per_unit.get(q.name, 0) > 0}
    if not limits:
        return None, []
    best = min(limits.values())
    return best, [name for name, limit in limits.items() if math.isclose(limit, best, rel_tol=1e-9)]


def quota_table(measured: Mapping[str, Mapping[str, Any]], quotas: Sequence[Quota] = QUOTAS) -> dict[str, Any]:
    """The table results.json keeps: `measured` maps a unit key to {"count": units, "calls": {operation: calls}};
    a unit missing there, or counted zero times, is left out."""
    rows = []
    for unit in UNITS:
        counted = measured.get(unit.key)
        if not counted or int(counted.get("count", 0)) <= 0:
            continue
        per_unit = calls_per_unit(counted.get("calls", {}), int(counted["count"]), quotas)
        best, binding = sustained(per_unit, quotas)
        rows.append(
            {
                "unit": unit.key,
                "label": unit.label,
                "count": int(counted["count"]),
                "calls_per_unit": {name: round(value, 4) for name, value in per_unit.items()},
                "max_per_s": None if best is None else round(best, 1),
                "bound_by": binding,
            }
        )
    return {"source": QUOTAS_SOURCE, "quotas": {q.name: q.per_s for q in quotas}, "rows": rows}
