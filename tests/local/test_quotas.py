"""The emulator's request-rate quotas (`local/agentcore_identity/quotas.py`): the token bucket on an injected
clock (no sleeping), the shared workload-token quota, and the throttled answer real boto3 clients receive."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local.agentcore_identity import Emulator, Quotas
from local.agentcore_identity.__main__ import main as emulator_main
from local.agentcore_identity.quotas import DOCUMENTED_TPS, WORKLOAD_ACCESS_QUOTA, TokenBucket, build_quotas, parse_quota
from local.demo.__main__ import main as demo_main

RETURN_URL = "http://127.0.0.1:8000/oauth2/session-binding"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def takes(bucket: TokenBucket, now: float, count: int) -> list[bool]:
    return [bucket.take(now) for _ in range(count)]


# --- the bucket ---------------------------------------------------------------------------------


def test_a_full_bucket_lets_its_burst_through_then_its_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3.0, now=0.0)
    assert takes(bucket, 0.0, 4) == [True, True, True, False]
    assert takes(bucket, 0.25, 1) == [False]  # half a token so far
    assert takes(bucket, 0.5, 2) == [True, False]  # one token after half a second at 2 per second
    assert takes(bucket, 60.0, 4) == [True, True, True, False]  # a long pause refills up to the burst, no more


def test_a_clock_that_steps_back_refills_nothing() -> None:
    bucket = TokenBucket(rate=10.0, burst=1.0, now=5.0)
    assert takes(bucket, 5.0, 1) == [True]
    assert takes(bucket, 4.0, 1) == [False]
    assert bucket.available(5.05) == pytest.approx(0.5)


def test_zero_tps_throttles_every_call_and_nonsense_is_refused() -> None:
    quotas = Quotas(clock=Clock())
    quotas.set("CompleteResourceTokenAuth", 0)
    assert [quotas.admit("CompleteResourceTokenAuth") for _ in range(3)] == [False] * 3
    for tps, burst in ((-1.0, None), (5.0, 0.5), (5.0, -1.0)):
        with pytest.raises(ValueError):
            quotas.set("GetResourceOauth2Token", tps, burst=burst)


# --- quotas by operation ------------------------------------------------------------------------


def test_each_quota_meters_its_own_operations_and_counts_what_it_throttled() -> None:
    clock = Clock()
    quotas = Quotas(clock=clock)
    quotas.set("GetResourceOauth2Token", 1.0, burst=2.0)
    results = [quotas.admit("GetResourceOauth2Token") for _ in range(5)]
    assert results == [True, True, False, False, False]
    assert all(quotas.admit("CompleteResourceTokenAuth") for _ in range(50))  # no quota set: never throttled
    clock.now += 1.0
    assert quotas.admit("GetResourceOauth2Token")
    assert quotas.metered == Counter({"GetResourceOauth2Token": 6})
    assert quotas.throttled == Counter({"GetResourceOauth2Token": 3})
    assert quotas.stats()["throttled"] == {"GetResourceOauth2Token": 3}


def test_the_three_workload_token_operations_share_one_quota() -> None:
    quotas = Quotas(clock=Clock())
    quotas.set("GetWorkloadAccessTokenForUserId", 1.0, burst=2.0)  # sets GetWorkloadAccessToken*
    assert quotas.admit("GetWorkloadAccessTokenForUserId")
    assert quotas.admit("GetWorkloadAccessTokenForJWT")
    assert not quotas.admit("GetWorkloadAccessToken")
    assert quotas.quota("GetWorkloadAccessToken") == quotas.quota(WORKLOAD_ACCESS_QUOTA)
    assert quotas.throttled == Counter({"GetWorkloadAccessToken": 1})
    quotas.remove(WORKLOAD_ACCESS_QUOTA)
    assert quotas.admit("GetWorkloadAccessToken")


def test_documented_quotas_scale_and_command_line_overrides() -> None:
    quotas = build_quotas(["CompleteResourceTokenAuth=3:6"], documented_scale=0.1)
    assert quotas.stats()["quotas"] == {
        "CompleteResourceTokenAuth": {"tps": 3.0, "burst": 6.0},
        "GetResourceOauth2Token": {"tps": DOCUMENTED_TPS["GetResourceOauth2Token"] * 0.1, "burst": 20.0},
        WORKLOAD_ACCESS_QUOTA: {"tps": 20.0, "burst": 20.0},
    }
    assert parse_quota("GetWorkloadAccessToken*=5") == (WORKLOAD_ACCESS_QUOTA, 5.0, None)
    for text in ("5", "=5", "GetResourceOauth2Token=fast", "GetResourceOauth2Token=5:x"):
        with pytest.raises(ValueError):
            parse_quota(text)


@pytest.mark.parametrize(
    ("argument", "said"),
    [
        ("GetResourceOauth2Token", "expected OPERATION=TPS[:BURST]"),
        ("=5", "expected OPERATION=TPS[:BURST]"),
        ("GetResourceOauth2Token=-1", "tps must be >= 0"),
        ("GetResourceOAuth2Token=0", "unknown operation 'GetResourceOAuth2Token'"),
        ("GetResourceOauth2Token=nan", "must be finite numbers"),
        ("GetResourceOauth2Token=5:inf", "must be finite numbers"),
    ],
)
def test_the_command_line_refuses_a_malformed_quota_before_listening(argument: str, said: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        emulator_main(["--port", "0", "--quota", argument])
    assert exited.value.code == 2 and said in capsys.readouterr().err


def test_make_demo_refuses_malformed_quotas_before_starting(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DEMO_AGENTCORE_QUOTAS", "GetResourceOauth2Token=1 CompleteResourceTokenAuth")
    assert demo_main() == 2
    assert "DEMO_AGENTCORE_QUOTAS: expected OPERATION=TPS[:BURST], got 'CompleteResourceTokenAuth'" in capsys.readouterr().err


# --- through the emulator, with real boto3 clients ----------------------------------------------


@pytest.fixture
def metered() -> Iterator[tuple[Emulator, Clock]]:
    clock = Clock()
    with Emulator(quotas=Quotas(clock=clock)) as emulator:
        emulator.record_calls = True
        yield emulator, clock


def _client(service: str, emulator: Emulator, attempts: int) -> Any:
    config = Config(region_name="us-east-1", retries={"mode": "standard", "total_max_attempts": attempts}, read_timeout=10)
    return boto3.session.Session(**CREDENTIALS).client(service, endpoint_url=emulator.base_url, config=config)


def test_a_call_over_the_quota_is_throttled_like_aws_and_changes_nothing(metered: tuple[Emulator, Clock]) -> None:
    emulator, clock = metered
    _client("bedrock-agentcore-control", emulator, 1).create_workload_identity(name="agent-q", allowedResourceOauth2ReturnUrls=[RETURN_URL])
    emulator.quotas.set("GetWorkloadAccessTokenForUserId", 1.0, burst=1.0)
    data = _client("bedrock-agentcore", emulator, 1)
    assert data.get_workload_access_token_for_user_id(workloadName="agent-q", userId="alice")["workloadAccessToken"]
    issued = len(emulator.service.workload_tokens)

    with pytest.raises(ClientError) as caught:
        data.get_workload_access_token_for_user_id(workloadName="agent-q", userId="alice")
    error = caught.value.response
    assert error["Error"]["Code"] == "ThrottlingException" and error["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert error["Error"]["Message"].startswith("Rate exceeded")
    assert len(emulator.service.workload_tokens) == issued  # throttled before the operation ran

    # The wire shape, as any client sees it: 429, x-amzn-errortype, a JSON body with `message`.
    url = emulator.base_url + "/identities/GetWorkloadAccessTokenForJWT"
    request = urllib.request.Request(url, data=b'{"workloadName": "agent-q", "userToken": "a.b.c"}')  # noqa: S310 - loopback http URL
    with pytest.raises(urllib.error.HTTPError) as raw:
        urllib.request.urlopen(request, timeout=5)  # noqa: S310 - loopback http URL
    assert raw.value.code == 429 and raw.value.headers["x-amzn-errortype"] == "ThrottlingException"
    assert set(json.loads(raw.value.read())) == {"message"}

    clock.now += 1.0  # a second later the bucket holds one token again
    assert data.get_workload_access_token_for_user_id(workloadName="agent-q", userId="alice")["workloadAccessToken"]
    with urllib.request.urlopen(emulator.base_url + "/_emulator/stats", timeout=5) as response:  # noqa: S310 - loopback http URL
        stats = json.loads(response.read())
    assert stats["throttled"] == {"GetWorkloadAccessTokenForUserId": 1, "GetWorkloadAccessTokenForJWT": 1}
    assert stats["quotas"] == {WORKLOAD_ACCESS_QUOTA: {"tps": 1.0, "burst": 1.0}}
    assert stats["counts"]["GetWorkloadAccessTokenForUserId"] == 3


def test_standard_retries_reach_the_emulator_as_attempts_of_one_invocation(metered: tuple[Emulator, Clock]) -> None:
    emulator, _ = metered
    emulator.quotas.set("CompleteResourceTokenAuth", 0)  # AgentCore keeps throttling
    data = _client("bedrock-agentcore", emulator, 2)
    with pytest.raises(ClientError) as caught:
        data.complete_resource_token_auth(sessionUri="urn:ietf:params:oauth:request_uri:abc", userIdentifier={"userId": "alice"})
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    assert caught.value.response["ResponseMetadata"]["RetryAttempts"] == 1
    attempts = [c for c in emulator.calls if c.operation == "CompleteResourceTokenAuth"]
    # botocore names each logical call (amz-sdk-invocation-id) and numbers its attempts (amz-sdk-request).
    assert len({c.headers["amz-sdk-invocation-id"] for c in attempts}) == 1
    numbered = [dict(part.strip().split("=", 1) for part in c.headers["amz-sdk-request"].split(";")) for c in attempts]
    assert [(n["attempt"], n["max"]) for n in numbered] == [("1", "2"), ("2", "2")]
    assert emulator.quotas.throttled["CompleteResourceTokenAuth"] == 2
    assert attempts[1].received_at >= attempts[0].received_at
