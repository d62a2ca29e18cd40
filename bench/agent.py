"""Agent request overhead and AgentCore calls per 100 chat requests, for one user who already consented.

The agent (uvicorn, one worker) runs alone on core 0. The AgentCore, Bedrock and API stand-ins run in
their own processes on core 1 and answer at once, so what is measured is the agent's own cost per
request: two Converse calls, one tool call with its outbound token, and the SSE stream (plus the
stand-ins' own processing, which makes the figure an upper bound).

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
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
from botocore.config import Config

from bench.loadgen import LoadResult, run_load
from bench.procs import HOST, cores, free_port, spread as procs_spread, standin, uvicorn
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


def chat_request(port: int, token: str, sub: str) -> bytes:
    body = json.dumps({"message": "Who am I?", "history": []}).encode()
    head = (
        f"POST /api/chat HTTP/1.1\r\nhost: {HOST}:{port}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        f"x-amzn-oidc-data: {token}\r\nx-amzn-oidc-identity: {sub}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _stats(endpoint: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{endpoint}/_emulator/stats", timeout=5) as response:  # noqa: S310 - loopback stand-in
        counts: dict[str, int] = json.load(response)["counts"]
        return counts


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


def measure(requests: int, runs: int, concurrency: int) -> dict[str, Any]:
    service_core, helper_core = cores()
    if helper_core:
        os.sched_setaffinity(0, helper_core)
    alb_key = AlbSigningKey()
    keyring = Keyring.from_json(SIGNING_KEYS)
    sub = str(uuid.uuid4())
    token = alb_key.mint(sub=sub, signer=ALB_ARN, issuer=ISSUER, client_id=CLIENT_ID, lifetime_s=3600)
    results: list[LoadResult] = []
    per_100: list[float] = []
    outbound_per_100: list[float] = []
    with (
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
        port = free_port()
        with uvicorn("services.agent.main:app", port, env, service_core):
            consent(port, token, sub, keyring, agentcore)
            warm = [chat_request(port, token, sub)] * 50
            asyncio.run(run_load(HOST, port, warm, concurrency=concurrency))
            for _ in range(runs):
                before = _stats(agentcore)
                batch = [chat_request(port, token, sub)] * requests
                result = asyncio.run(run_load(HOST, port, batch, concurrency=concurrency))
                after = _stats(agentcore)
                results.append(result)
                latencies = [x * 1000 for x in result.latencies_s]
                workload = after.get("GetWorkloadAccessTokenForUserId", 0) - before.get("GetWorkloadAccessTokenForUserId", 0)
                outbound = after.get("GetResourceOauth2Token", 0) - before.get("GetResourceOauth2Token", 0)
                per_100.append(workload * 100 / requests)
                outbound_per_100.append(outbound * 100 / requests)
            # The very first requests, consent included: how many workload-token calls did the user cost in all?
            total_workload = _stats(agentcore).get("GetWorkloadAccessTokenForUserId", 0)

    def spread(values: list[float]) -> dict[str, float]:
        return procs_spread(values, 3)

    return {
        "pinned": service_core is not None,
        "requests_per_run": requests,
        "runs": runs,
        "concurrency": concurrency,
        "errors": sum(sum(n for status, n in r.statuses.items() if status != 200) for r in results),
        "overhead_p50_ms": spread([r.percentile_ms(0.50) for r in results]),
        "overhead_p99_ms": spread([r.percentile_ms(0.99) for r in results]),
        "requests_per_s": spread([r.per_s() for r in results]),
        "workload_token_calls_per_100": spread(per_100),
        "outbound_token_calls_per_100": spread(outbound_per_100),
        "workload_token_calls_total": total_workload,
        "latencies": {f"agent chat, {concurrency} client{'s' if concurrency > 1 else ''}": latencies},
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
