"""bench/quotas.py and the counting in bench/quota_run.py: calls per unit, what one account sustains, what binds."""

from __future__ import annotations

import json

import pytest

from bench.quota_run import tool_calls
from bench.quotas import QUOTAS, QUOTAS_SOURCE, UNITS, Quota, calls_per_unit, quota_table, sustained

CONSENT = {"GetWorkloadAccessTokenForUserId": 20, "GetResourceOauth2Token": 20, "CompleteResourceTokenAuth": 20}


def test_the_documented_quotas_are_in_one_place_with_their_source() -> None:
    assert {q.name: q.per_s for q in QUOTAS} == {
        "GetWorkloadAccessToken*": 200.0,
        "GetResourceOauth2Token": 200.0,
        "CompleteResourceTokenAuth": 100.0,
    }
    assert QUOTAS_SOURCE.startswith("https://docs.aws.amazon.com/bedrock-agentcore/")
    workload = next(q for q in QUOTAS if q.name == "GetWorkloadAccessToken*")
    assert set(workload.operations) == {"GetWorkloadAccessToken", "GetWorkloadAccessTokenForJWT", "GetWorkloadAccessTokenForUserId"}


def test_calls_per_unit_sum_the_operations_that_share_a_quota() -> None:
    calls = {
        "GetWorkloadAccessTokenForUserId": 30,
        "GetWorkloadAccessTokenForJWT": 10,
        "GetResourceOauth2Token": 5,
        "ListWorkloadIdentities": 7,
    }
    assert calls_per_unit(calls, 20) == {"GetWorkloadAccessToken*": 2.0, "GetResourceOauth2Token": 0.25, "CompleteResourceTokenAuth": 0.0}
    with pytest.raises(ValueError, match="no units"):
        calls_per_unit(calls, 0)


def test_the_quota_reached_first_binds() -> None:
    # A consent: one call under each quota; CompleteResourceTokenAuth's 100/s is reached first.
    assert sustained(calls_per_unit(CONSENT, 20)) == (100.0, ["CompleteResourceTokenAuth"])
    # Two workload-token calls per unit: 100/s under its 200/s, a tie with CompleteResourceTokenAuth's one call.
    both = {"GetWorkloadAccessToken*": 2.0, "GetResourceOauth2Token": 0.5, "CompleteResourceTokenAuth": 1.0}
    assert sustained(both) == (100.0, ["GetWorkloadAccessToken*", "CompleteResourceTokenAuth"])
    assert sustained({"GetResourceOauth2Token": 0.1}) == (2000.0, ["GetResourceOauth2Token"])


def test_a_unit_without_calls_is_not_limited_by_these_quotas() -> None:
    assert sustained({"GetWorkloadAccessToken*": 0.0, "GetResourceOauth2Token": 0.0, "CompleteResourceTokenAuth": 0.0}) == (None, [])
    assert sustained({}) == (None, [])


def test_other_quotas_can_be_given() -> None:
    raised = (
        Quota("CompleteResourceTokenAuth", ("CompleteResourceTokenAuth",), 500.0),
        Quota("GetResourceOauth2Token", ("GetResourceOauth2Token",), 200.0),
    )
    assert sustained(calls_per_unit(CONSENT, 20, raised), raised) == (200.0, ["GetResourceOauth2Token"])


def test_quota_table_has_a_row_per_measured_unit_in_a_fixed_order() -> None:
    measured = {
        "tool_call": {"count": 200, "calls": {"GetWorkloadAccessTokenForUserId": 20, "GetResourceOauth2Token": 20}},
        "consent": {"count": 20, "calls": CONSENT},
        "chat_next": {"count": 180, "calls": {}},
        "chat_first": {"count": 0, "calls": {}},  # none measured: no row, not a division by zero
    }
    table = quota_table(measured)

    assert table["source"] == QUOTAS_SOURCE
    assert table["quotas"] == {"GetWorkloadAccessToken*": 200.0, "GetResourceOauth2Token": 200.0, "CompleteResourceTokenAuth": 100.0}
    assert [row["unit"] for row in table["rows"]] == ["chat_next", "tool_call", "consent"]
    chat_next, tool_call, consent = table["rows"]
    assert (chat_next["max_per_s"], chat_next["bound_by"]) == (None, [])
    assert tool_call["calls_per_unit"] == {"GetWorkloadAccessToken*": 0.1, "GetResourceOauth2Token": 0.1, "CompleteResourceTokenAuth": 0.0}
    assert (tool_call["max_per_s"], tool_call["bound_by"]) == (2000.0, ["GetWorkloadAccessToken*", "GetResourceOauth2Token"])
    assert (consent["count"], consent["max_per_s"], consent["bound_by"]) == (20, 100.0, ["CompleteResourceTokenAuth"])
    assert consent["label"] == next(u.label for u in UNITS if u.key == "consent")
    json.dumps(table)  # it goes into results.json as it is


def sse(*events: tuple[str, dict[str, object]]) -> bytes:
    return b"".join(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode() for kind, data in events)


def test_tool_calls_count_the_tool_results_that_succeeded() -> None:
    one = sse(("tool_call", {"id": "t1"}), ("tool_result", {"id": "t1", "ok": True}), ("message", {"text": "ok: true"}), ("done", {}))
    assert tool_calls(one) == 1
    two = sse(("tool_result", {"ok": True}), ("tool_result", {"ok": False}), ("tool_result", {"ok": True}))
    assert tool_calls(two) == 2


def test_a_chat_that_asked_for_consent_or_failed_made_no_tool_call() -> None:
    assert tool_calls(sse(("authorization_required", {"start_url": "/oauth2/start"}), ("done", {}))) == 0
    assert tool_calls(b"event: tool_result\ndata: {not json\n\n") == 0
    assert tool_calls(b": waiting\n\n") == 0
    assert tool_calls(b"") == 0
