"""Session binding throughput and latency, beside a bare FastAPI endpoint, in one run.

Layout on a 2-core machine: the service under test (uvicorn, one worker) is pinned to core 0; the
AgentCore stand-in (a separate process), the sessions table (dynalite, a node process) and this load
generator share core 1. Every request is a distinct, valid completion: its own sessionUri, started
in the sessions table as `/oauth2/start` records it, its own signed binding cookie, AgentCore's
`customState` echo, a real ALB-format ES256 token; the service makes two conditional DynamoDB writes
(claim, completed) and one real boto3 `CompleteResourceTokenAuth` call to the stand-in.

    python -m bench.binding [--concurrency 16 64] [--runs 3] [--requests 6000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench.loadgen import LoadResult, get_request, run_load
from bench.procs import HOST, cores, free_port, running_on, spread as procs_spread, standin, uvicorn
from local.alb.keys import AlbSigningKey, KeyServer
from local.dynamodb import BINDING_TABLE, LocalDynamoDB, create_table
from services.common.alb_identity import AlbIdentity
from services.common.flow import binding_cookie_name, issue_binding_cookie, issue_flow_token, new_custom_state, read_flow_token
from services.common.signed import Keyring, digest
from services.session_binding.ledger import RETAIN_S

ALB_ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/bench/0123456789abcdef"
ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Bench"
CLIENT_ID = "benchclient"
SIGNING_KEYS = json.dumps({"kid": "k1", "key": "b" * 64})
TABLE = "bench-binding-sessions"


def service_env(keys_url: str, agentcore_endpoint: str, dynamodb_endpoint: str) -> dict[str, str]:
    """The binding service's settings for the local stand-ins."""
    return {
        "APP_PROFILE": "local",
        "AWS_REGION": "eu-west-1",
        "PUBLIC_BASE_URL": f"http://{HOST}",
        "ALB_ARN": ALB_ARN,
        "OIDC_ISSUER": ISSUER,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "ALB_KEYS_BASE_URL": keys_url,
        "FLOW_SIGNING_KEYS": SIGNING_KEYS,
        "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE": agentcore_endpoint,
        # dynalite itself: the service's ledger makes single-item conditional writes, which it serves natively.
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
        "BINDING_TABLE": TABLE,
        "CONNECTIONS_TABLE": "bench-connections",  # the bench's flows name no connection: nothing is written there
        "AWS_ACCESS_KEY_ID": "AKIDBENCH",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        "LOG_LEVEL": "INFO",
    }


def binding_requests(count: int, alb_key: AlbSigningKey, keyring: Keyring, port: int, dynamodb: Any) -> list[bytes]:
    """`count` distinct, valid completions for one signed-in user (the ALB token is re-used, as within its
    lifetime), each session recorded as started in the sessions table beforehand, as `/oauth2/start` does."""
    user = AlbIdentity(sub=str(uuid.uuid4()), issuer=ISSUER)
    token = alb_key.mint(sub=user.sub, signer=ALB_ARN, issuer=ISSUER, client_id=CLIENT_ID, lifetime_s=3600)
    now = int(time.time())
    requests, started = [], []
    for _ in range(count):
        session = f"urn:ietf:params:oauth:request_uri:{uuid.uuid4()}"
        custom_state, flow_id = new_custom_state()
        flow = read_flow_token(
            keyring,
            issue_flow_token(
                keyring,
                identity=user,
                session_uri=session,
                authorization_url="https://idp.example.org/authorize",
                provider="bench",
                scopes=("s",),
                flow_id=flow_id,
                now=now,
            ),
            now=now,
        )
        cookie = f"{binding_cookie_name(session)}={issue_binding_cookie(keyring, flow=flow)}"
        headers = {"x-amzn-oidc-data": token, "x-amzn-oidc-identity": user.sub, "cookie": cookie}
        query = f"session_id={quote(session, safe='')}&state={quote(custom_state, safe='')}"
        requests.append(get_request(f"/oauth2/session-binding?{query}", f"{HOST}:{port}", headers))
        started.append(_started_item(session, user.user_key, flow_id, flow.expires_at))
    for first in range(0, len(started), 25):
        batch = {TABLE: [{"PutRequest": {"Item": item}} for item in started[first : first + 25]]}
        while batch:
            batch = dynamodb.batch_write_item(RequestItems=batch).get("UnprocessedItems") or {}
    return requests


@contextmanager
def sessions_table(helper_core: set[int] | None) -> Iterator[tuple[str, Any]]:
    """The sessions table on a local dynalite pinned beside the other helpers: (endpoint, client)."""
    with LocalDynamoDB() as store:
        if helper_core:
            os.sched_setaffinity(store.backend_pid, helper_core)
        client = store.client()
        create_table(client, TABLE, BINDING_TABLE)
        yield store.backend_endpoint, client


def _started_item(session_uri: str, user_key: str, flow_id: str, expires_at: int) -> dict[str, Any]:
    """The item `SessionLedger.start` writes at `/oauth2/start`."""
    return {
        "session": {"S": digest(session_uri, 32)},
        "status": {"S": "started"},
        "user": {"S": digest(user_key, 32)},
        "flow": {"S": flow_id},
        "provider": {"S": "bench"},
        "expires_at": {"N": str(expires_at + RETAIN_S)},
    }


def summarize(results: list[LoadResult]) -> dict[str, Any]:
    def spread(values: list[float]) -> dict[str, float]:
        return procs_spread(values, 2)

    return {
        "per_s": spread([r.per_s() for r in results]),
        "p50_ms": spread([r.percentile_ms(0.50) for r in results]),
        "p99_ms": spread([r.percentile_ms(0.99) for r in results]),
        "errors": sum(sum(n for status, n in r.statuses.items() if status != 200) for r in results),
    }


def measure(concurrencies: list[int], runs: int, count: int) -> dict[str, Any]:
    service_core, helper_core = cores()
    alb_key = AlbSigningKey()
    keyring = Keyring.from_json(SIGNING_KEYS)
    figures: dict[str, Any] = {"pinned": service_core is not None, "requests_per_run": count, "runs": runs, "latencies": {}}
    with (
        running_on(helper_core),
        KeyServer([alb_key]) as keys,
        standin("agentcore", helper_core) as endpoint,
        sessions_table(helper_core) as (store, dynamodb),
    ):
        env = service_env(keys.base_url, endpoint, store)
        binding_port, bare_port = free_port(), free_port()
        with (
            uvicorn("services.session_binding.main:app", binding_port, env, service_core),
            uvicorn("bench.bare_app:app", bare_port, {}, service_core, health="/bare"),
        ):
            for concurrency in concurrencies:
                binding_runs, bare_runs = [], []
                asyncio.run(
                    run_load(HOST, binding_port, binding_requests(500, alb_key, keyring, binding_port, dynamodb), concurrency=concurrency)
                )  # warm-up
                bare_request = get_request("/bare", f"{HOST}:{bare_port}")
                asyncio.run(run_load(HOST, bare_port, [bare_request] * 500, concurrency=concurrency))
                for _ in range(runs):  # interleaved, so both see the same machine noise
                    requests = binding_requests(count, alb_key, keyring, binding_port, dynamodb)
                    binding_runs.append(asyncio.run(run_load(HOST, binding_port, requests, concurrency=concurrency)))
                    bare_runs.append(asyncio.run(run_load(HOST, bare_port, [bare_request] * count, concurrency=concurrency)))
                binding, bare = summarize(binding_runs), summarize(bare_runs)
                figures["latencies"][f"session-binding, {concurrency} clients"] = [x * 1000 for x in binding_runs[-1].latencies_s]
                figures["latencies"][f"bare FastAPI, {concurrency} clients"] = [x * 1000 for x in bare_runs[-1].latencies_s]
                figures[f"c{concurrency}"] = {
                    "binding": binding,
                    "bare": bare,
                    "ratio_to_bare": round(binding["per_s"]["median"] / bare["per_s"]["median"], 4),
                    "p99_to_bare": round(binding["p99_ms"]["median"] / bare["p99_ms"]["median"], 2),
                }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    figures = measure(args.concurrency, args.runs, args.requests)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
