"""Single use across tasks and restarts: the sessions ledger on a real DynamoDB-compatible server.

Two binding processes (real uvicorn processes, as two Fargate tasks) share one table; the same
landing reaching both at once makes one `CompleteResourceTokenAuth` call. A completed or cancelled
session stays so for a new process. A claim left by a crashed task is taken over once its lease ends.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.procs import HOST, free_port, uvicorn
from local.agentcore_identity import AgentCoreStandIn
from local.alb.keys import KeyServer
from local.dynamodb import LocalDynamoDB
from services.common.signed import digest
from services.session_binding import pages
from tests.services.conftest import (
    ALB_ARN,
    ALICE,
    BOB,
    CLIENT_ID,
    ISSUER,
    ORIGIN,
    REGION,
    SIGNING_KEYS,
    BindingHarness,
    connections_table_of,
    new_session_uri,
)
from tests.services.session_binding.test_session_binding import assert_page

ROOT = Path(__file__).resolve().parents[3]


@contextlib.contextmanager
def binding_process(env: dict[str, str]) -> Iterator[str]:
    """The binding service as its Dockerfile runs it (uvicorn, one worker), on loopback: its base URL."""
    port = free_port()
    with uvicorn("services.session_binding.main:app", port, env, core=None):
        yield f"http://{HOST}:{port}"


def process_env(key_server: KeyServer, agentcore: AgentCoreStandIn, dynamodb: LocalDynamoDB, table: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "NO_PROXY": "127.0.0.1,localhost",
        "APP_PROFILE": "local",
        "AWS_REGION": REGION,
        "PUBLIC_BASE_URL": ORIGIN,
        "ALB_ARN": ALB_ARN,
        "OIDC_ISSUER": ISSUER,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "ALB_KEYS_BASE_URL": key_server.base_url,
        "FLOW_SIGNING_KEYS": json.dumps(SIGNING_KEYS),
        "BINDING_TABLE": table,
        "CONNECTIONS_TABLE": connections_table_of(table),
        "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE": agentcore.endpoint,
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb.endpoint,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def claim_as(dynamodb: LocalDynamoDB, table: str, session: str, *, task: str, lease_left_s: int) -> None:
    """Another task's claim on the session, as `SessionLedger` writes it, with its lease ending in `lease_left_s`."""
    dynamodb.client().update_item(
        TableName=table,
        Key={"session": {"S": digest(session, 32)}},
        UpdateExpression="SET #st = :claimed, #c = :c, #cu = :until",
        ExpressionAttributeNames={"#st": "status", "#c": "claim", "#cu": "claim_until"},
        ExpressionAttributeValues={":claimed": {"S": "claimed"}, ":c": {"S": task}, ":until": {"N": str(int(time.time()) + lease_left_s)}},
    )


def test_two_processes_make_one_call_for_the_same_landing(
    harness: BindingHarness, local_dynamodb: LocalDynamoDB, binding_table: str
) -> None:
    harness.agentcore.delay_s = 0.5  # both landings arrive while the first call is in flight
    env = process_env(harness.key_server, harness.agentcore, local_dynamodb, binding_table)
    alice = harness.browser(ALICE)
    session = new_session_uri()
    assert alice.start(harness.flow(ALICE, session)).status_code == 302  # recorded in the shared table
    cookies = dict(alice.client.cookies)
    params = {"session_id": session, "state": harness.custom_states[session]}

    with binding_process(env) as task_a, binding_process(env) as task_b:

        def land(base: str) -> httpx.Response:
            with httpx.Client(base_url=base, cookies=cookies, timeout=30) as client:
                return client.get("/oauth2/session-binding", params=params, headers=alice.headers())

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(land, [task_a, task_b]))

    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert all(pages.SUCCESS.title in a.text for a in answers)
    assert len(harness.agentcore.completions()) == 1


def test_two_runtimes_racing_on_one_session_make_one_call(make_harness: Any) -> None:
    first, second = make_harness(), make_harness()  # two tasks: separate processes' state, one table
    first.agentcore.delay_s = 0.5
    alice = first.browser(ALICE)
    session = new_session_uri()
    alice.start(first.flow(ALICE, session))
    cookies = dict(alice.client.cookies)
    params = {"session_id": session, "state": first.custom_states[session]}

    def land(app: Any) -> httpx.Response:
        import asyncio

        async def go() -> httpx.Response:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ORIGIN, cookies=cookies) as client:
                return await client.get("/oauth2/session-binding", params=params, headers=alice.headers())

        return asyncio.run(go())

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(land, [first.app, second.app]))
    assert [a.status_code for a in answers] == [200, 200]
    assert len(first.agentcore.completions()) == 1


def test_completed_and_cancelled_sessions_stay_so_after_a_restart(make_harness: Any) -> None:
    before = make_harness()
    alice, bob = before.browser(ALICE), before.browser(BOB)
    done, burned = new_session_uri(), new_session_uri()
    alice.start(before.flow(ALICE, done))
    assert alice.bind(done).status_code == 200
    alice.start(before.flow(ALICE, burned))
    assert_page(bob.bind(burned), 403, pages.CANCELLED_NOT_YOURS)

    after = make_harness()  # a new process: no memory of the above but the table
    assert_page(after.browser(ALICE).bind(burned, state=before.custom_states[burned]), 410, pages.CANCELLED_ELSEWHERE)
    assert_page(after.browser(ALICE).bind(done, state=before.custom_states[done]), 410, pages.ALREADY_COMPLETE)
    assert_page(after.browser(BOB).bind(done, state=before.custom_states[done]), 403, pages.OTHER_USER)
    assert len(before.agentcore.completions()) == 1


def test_a_start_link_used_again_after_completion_shows_our_page(harness: BindingHarness) -> None:
    alice = harness.browser(ALICE)
    session = new_session_uri()
    link = harness.flow(ALICE, session)
    alice.start(link)
    assert alice.bind(session).status_code == 200
    again = alice.start(link)
    assert_page(again, 410, pages.ALREADY_COMPLETE)
    assert "location" not in again.headers  # not sent on to the provider's (or AgentCore's) bare error


def test_a_start_link_for_a_cancelled_session_says_so(harness: BindingHarness) -> None:
    alice = harness.browser(ALICE)
    session = new_session_uri()
    link = harness.flow(ALICE, session)
    alice.start(link)
    harness.browser(BOB).bind(session)
    assert_page(alice.start(link), 410, pages.CANCELLED_ELSEWHERE)


@pytest.mark.parametrize(
    "outcome",
    [
        ([], 200, pages.SUCCESS),
        # The dead task may have completed at AgentCore before it died: AgentCore's "used" is then no reason
        # to tell the person "cancelled, nothing shared".
        (["ValidationException"], 410, pages.EXPIRED),
    ],
    ids=["completes", "used-means-possibly-completed"],
)
def test_a_crashed_tasks_claim_is_taken_over_after_its_lease(
    harness: BindingHarness, local_dynamodb: LocalDynamoDB, binding_table: str, outcome: tuple[list[str], int, pages.Page]
) -> None:
    failures, status, page = outcome
    alice = harness.browser(ALICE)
    session = new_session_uri()
    alice.start(harness.flow(ALICE, session))
    # A task claimed the session and died: its lease ended a second ago.
    claim_as(local_dynamodb, binding_table, session, task="dead-task", lease_left_s=-1)
    harness.agentcore.failures = list(failures)
    assert_page(alice.bind(session), status, page)
    assert len(harness.agentcore.completions()) == 1


def test_a_live_claim_by_another_task_is_waited_for_then_reported(
    make_harness: Any, local_dynamodb: LocalDynamoDB, binding_table: str
) -> None:
    harness = make_harness(  # a lease of 6.9 s: 0.4 s for AgentCore, 1.5 s for DynamoDB and 5 s for a worker thread
        agentcore_connect_timeout_s=0.2,
        agentcore_read_timeout_s=0.2,
        agentcore_max_attempts=1,
        dynamodb_connect_timeout_s=0.5,
        dynamodb_read_timeout_s=1.0,
        dynamodb_max_attempts=1,
    )
    assert harness.app.state.runtime().settings.ledger_lease_s == pytest.approx(6.9)
    alice = harness.browser(ALICE)
    session = new_session_uri()
    alice.start(harness.flow(ALICE, session))
    claim_as(local_dynamodb, binding_table, session, task="busy-task", lease_left_s=60)
    response = alice.bind(session)
    assert_page(response, 503, pages.UNCERTAIN)
    assert response.headers["retry-after"] == "5"
    assert harness.agentcore.calls == []


def test_store_unavailable_is_a_503_that_loses_nothing(make_harness: Any, local_dynamodb: LocalDynamoDB) -> None:
    harness = make_harness(binding_table="no-such-table")
    alice = harness.browser(ALICE)
    session = new_session_uri()
    response = alice.start(harness.flow(ALICE, session))
    assert_page(response, 503, pages.BUSY)
    assert response.headers["retry-after"] == "5"
    assert "location" not in response.headers
    assert harness.agentcore.calls == []


def _lost_answer(make_harness: Any) -> tuple[BindingHarness, Any, str, str]:
    """Alice's completion went through at AgentCore, but its answer was lost: the session is `uncertain`."""
    harness = make_harness(agentcore_read_timeout_s=0.3, agentcore_max_attempts=1)
    harness.agentcore.slow_s = 0.6
    harness.agentcore.failures = ["SLOW_SUCCESS"]
    alice = harness.browser(ALICE)
    session = new_session_uri()
    link = harness.flow(ALICE, session)
    alice.start(link)
    assert_page(alice.bind(session), 503, pages.UNCERTAIN)
    assert harness.agentcore.completed == {session}
    return harness, alice, session, link


def test_a_possibly_completed_session_is_never_cancelled(make_harness: Any) -> None:
    # Someone else lands with it: they are refused, but the session is not burned with "nothing was shared".
    harness, alice, session, _ = _lost_answer(make_harness)
    assert_page(harness.browser(BOB).bind(session), 403, pages.OTHER_USER)
    assert_page(alice.bind(session), 410, pages.EXPIRED)  # AgentCore: used (by the lost answer's call)


def test_opening_the_start_link_again_keeps_the_uncertainty(make_harness: Any) -> None:
    _, alice, session, link = _lost_answer(make_harness)
    assert alice.start(link).status_code == 302
    assert_page(alice.bind(session), 410, pages.EXPIRED)  # not "cannot be completed ... nothing was shared"


def test_a_session_burned_before_it_was_started_is_nobodys(harness: BindingHarness) -> None:
    # Mallory knows Alice's sessionUri (it is in Alice's flow token) and lands with it before Alice starts.
    session = new_session_uri()
    link = harness.flow(ALICE, session)
    mallory = harness.browser(BOB)
    assert_page(mallory.bind(session, state="x"), 410, pages.EXPIRED)
    assert_page(mallory.bind(session, state="x"), 410, pages.EXPIRED)  # the same page on every look
    assert_page(harness.browser(ALICE).start(link), 410, pages.EXPIRED)  # not "someone else started it"
    assert harness.agentcore.calls == []
