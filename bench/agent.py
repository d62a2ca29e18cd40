"""Agent request overhead beside a bare streaming endpoint, and AgentCore calls per 100 chats of a consented person.

The agent (uvicorn, one worker) runs on core 0. The AgentCore, Bedrock and API stand-ins run in
their own processes on core 1 and answer at once, so what is measured is the agent's own cost per
request: two Converse calls, one tool call with its outbound token, and the SSE stream (plus the
stand-ins' own processing, which makes the figure an upper bound).

The reference is `bench.bare_app`'s `POST /bare/chat`, measured in the same run, on the same core, at the
same concurrency, its batches interleaved with the agent's: the same request in (a JSON body parsed into a
model), the same four server-sent events out, byte for byte, and nothing between. It is the least any
streaming chat endpoint on this stack costs (uvicorn, HTTP parsing, FastAPI, a chunked stream), so the ratio
agent / bare is what the agent adds, in units of this machine's speed at the same kind of work. The
stand-ins' own round trip (the agent's calls made straight from the load generator) was the other candidate
and was not taken: the load generator runs on the helper core, so it would time that core's load rather than
the service core's speed; it would have to follow every change in what the agent calls; and the agent's
largest cost, botocore's CPU per call (serialising, signing), would sit in the reference too, so a dearer
call would cancel out of the ratio instead of showing.

    python -m bench.agent [--requests 100] [--runs 3] [--concurrency 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
from botocore.config import Config

from bench.loadgen import LoadResult, run_load
from bench.procs import HOST, cores, free_port, running_on, spread as procs_spread, standin, uvicorn
from local.alb.keys import AlbSigningKey, KeyServer
from local.dynamodb import CONNECTIONS_TABLE, LocalDynamoDB, create_table
from services.common.flow import read_flow_token
from services.common.signed import Keyring

ALB_ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/bench/0123456789abcdef"
ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Bench"
CLIENT_ID = "benchclient"
SIGNING_KEYS = json.dumps({"kid": "k1", "key": "a" * 64})
LOCAL_AWS = {
    "AWS_ACCESS_KEY_ID": "AKIDBENCH",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
}


CONNECTIONS = "bench-connections"
WORKLOAD_OP = "GetWorkloadAccessTokenForUserId"
OUTBOUND_OP = "GetResourceOauth2Token"


def service_env(keys_url: str, agentcore: str, bedrock: str, resource: str, dynamodb: str) -> dict[str, str]:
    """The agent's settings for the local stand-ins."""
    return {
        **LOCAL_AWS,
        "APP_PROFILE": "local",
        "AWS_REGION": "eu-west-1",
        "PUBLIC_BASE_URL": f"http://{HOST}",
        "ALB_ARN": ALB_ARN,
        "OIDC_ISSUER": ISSUER,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "ALB_KEYS_BASE_URL": keys_url,
        "FLOW_SIGNING_KEYS": SIGNING_KEYS,
        "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE": agentcore,
        # The connections registry, read and written once per tool call: dynalite itself (single-item calls).
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb,
        "CONNECTIONS_TABLE": CONNECTIONS,
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": bedrock,
        "BEDROCK_MODEL_ID": "us.anthropic.claude-haiku-4-5-20251001-v1:0",
        "WORKLOAD_IDENTITY_NAME": "bench-agent",
        "PROVIDERS": json.dumps(
            [
                {
                    "name": "notes",
                    "kind": "demo",
                    "display_name": "Demo Notes",
                    "credential_provider": "bench-demo",
                    "scopes": {"demo-api/profile.read": "See your profile", "demo-api/notes.read": "Read your notes"},
                    "api_url": resource,
                }
            ]
        ),
        "SESSION_BINDING_URL": f"http://{HOST}/oauth2/session-binding",
        "SIGN_OUT_URL": f"http://{HOST}/logout",
        "LOG_LEVEL": "INFO",
    }


def chat_request(port: int, token: str, sub: str, path: str = "/api/chat") -> bytes:
    body = json.dumps({"message": "Who am I?", "history": []}).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {HOST}:{port}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        f"x-amzn-oidc-data: {token}\r\nx-amzn-oidc-identity: {sub}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def agentcore_calls(endpoint: str) -> dict[str, int]:
    """Calls the AgentCore stand-in has answered so far, by operation."""
    with urllib.request.urlopen(f"{endpoint}/_emulator/stats", timeout=5) as response:  # noqa: S310 - loopback stand-in
        counts: dict[str, int] = json.load(response)["counts"]
        return counts


def calls_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """The calls made between two `agentcore_calls` readings, by operation (operations not called left out)."""
    return {op: n - before.get(op, 0) for op, n in sorted(after.items()) if n - before.get(op, 0)}


def consent(port: int, token: str, sub: str, keyring: Keyring, agentcore_endpoint: str) -> None:
    """First request prompts; complete that session at the stand-in, as the binding service would."""
    request = urllib.request.Request(
        f"http://{HOST}:{port}/api/chat",
        data=json.dumps({"message": "Who am I?"}).encode(),
        headers={"content-type": "application/json", "x-amzn-oidc-data": token, "x-amzn-oidc-identity": sub},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    prompt = next(json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ") and "start_url" in line)
    flow = read_flow_token(keyring, unquote(parse_qs(urlsplit(prompt["start_url"]).query)["flow"][0]), now=int(time.time()))
    client = boto3.session.Session(aws_access_key_id="AKIDBENCH", aws_secret_access_key="bench").client(  # noqa: S106 - a loopback stand-in
        "bedrock-agentcore", region_name="eu-west-1", endpoint_url=agentcore_endpoint, config=Config(retries={"mode": "standard"})
    )
    client.complete_resource_token_auth(sessionUri=flow.session_uri, userIdentifier={"userId": sub})


@dataclass(frozen=True)
class Stack:
    """The stand-ins an agent task needs, running; `env` is the agent's settings for them."""

    alb_key: AlbSigningKey
    keyring: Keyring
    agentcore: str
    env: dict[str, str]
    service_core: set[int] | None

    def person(self) -> tuple[str, str]:
        """A new signed-in person: (sub, ALB token valid for an hour)."""
        sub = str(uuid.uuid4())
        return sub, self.alb_key.mint(sub=sub, signer=ALB_ARN, issuer=ISSUER, client_id=CLIENT_ID, lifetime_s=3600)


@contextmanager
def stack() -> Iterator[Stack]:
    """Key server, AgentCore, Bedrock and API stand-ins and the connections table, on the helper core (and this
    process with them, as the load generator), for the block."""
    service_core, helper_core = cores()
    alb_key = AlbSigningKey()
    with (
        running_on(helper_core),
        KeyServer([alb_key]) as keys,
        standin("agentcore", helper_core) as agentcore,
        standin("bedrock", helper_core) as bedrock,
        standin("resource", helper_core) as resource,
        LocalDynamoDB() as store,
    ):
        if helper_core:
            os.sched_setaffinity(store.backend_pid, helper_core)
        create_table(store.client(), CONNECTIONS, CONNECTIONS_TABLE)
        env = service_env(keys.base_url, agentcore, bedrock, resource, store.backend_endpoint)
        yield Stack(alb_key, Keyring.from_json(SIGNING_KEYS), agentcore, env, service_core)


@dataclass
class _Runs:
    agent: list[LoadResult] = field(default_factory=list)
    bare: list[LoadResult] = field(default_factory=list)
    workload_per_100: list[float] = field(default_factory=list)
    outbound_per_100: list[float] = field(default_factory=list)
    workload_total: int = 0


def _measure_runs(requests: int, runs: int, concurrency: int) -> _Runs:
    measured = _Runs()
    with stack() as s:
        sub, token = s.person()
        port, bare_port = free_port(), free_port()
        with (
            uvicorn("services.agent.main:app", port, s.env, s.service_core),
            uvicorn("bench.bare_app:app", bare_port, {}, s.service_core, health="/bare"),
        ):
            consent(port, token, sub, s.keyring, s.agentcore)
            chat, bare = chat_request(port, token, sub), chat_request(bare_port, token, sub, "/bare/chat")
            asyncio.run(run_load(HOST, port, [chat] * 50, concurrency=concurrency))  # warm-up, both
            asyncio.run(run_load(HOST, bare_port, [bare] * 50, concurrency=concurrency))
            for _ in range(runs):  # interleaved, so both see the same machine noise
                before = agentcore_calls(s.agentcore)
                measured.agent.append(asyncio.run(run_load(HOST, port, [chat] * requests, concurrency=concurrency)))
                calls = calls_between(before, agentcore_calls(s.agentcore))
                measured.bare.append(asyncio.run(run_load(HOST, bare_port, [bare] * requests, concurrency=concurrency)))
                measured.workload_per_100.append(calls.get(WORKLOAD_OP, 0) * 100 / requests)
                measured.outbound_per_100.append(calls.get(OUTBOUND_OP, 0) * 100 / requests)
            # The very first requests, consent included: how many workload-token calls did the person cost in all?
            measured.workload_total = agentcore_calls(s.agentcore).get(WORKLOAD_OP, 0)
    return measured


def measure(requests: int, runs: int, concurrency: int) -> dict[str, Any]:
    measured = _measure_runs(requests, runs, concurrency)

    def spread(values: list[float]) -> dict[str, float]:
        return procs_spread(values, 3)

    clients = f"{concurrency} client{'s' if concurrency > 1 else ''}"
    return {
        "pinned": cores()[0] is not None,
        "requests_per_run": requests,
        "runs": runs,
        "concurrency": concurrency,
        "errors": sum(sum(n for status, n in r.statuses.items() if status != 200) for r in measured.agent + measured.bare),
        "overhead_p50_ms": spread([r.percentile_ms(0.50) for r in measured.agent]),
        "overhead_p99_ms": spread([r.percentile_ms(0.99) for r in measured.agent]),
        "requests_per_s": spread([r.per_s() for r in measured.agent]),
        "bare_p50_ms": spread([r.percentile_ms(0.50) for r in measured.bare]),
        "bare_p99_ms": spread([r.percentile_ms(0.99) for r in measured.bare]),
        "workload_token_calls_per_100": spread(measured.workload_per_100),
        "outbound_token_calls_per_100": spread(measured.outbound_per_100),
        "workload_token_calls_total": measured.workload_total,
        "latencies": {
            f"agent chat, {clients}": [x * 1000 for x in measured.agent[-1].latencies_s],
            f"bare FastAPI chat stream, {clients}": [x * 1000 for x in measured.bare[-1].latencies_s],
        },
        "total_requests": 1 + 50 + requests * runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(measure(args.requests, args.runs, args.concurrency), indent=2))


if __name__ == "__main__":
    main()
