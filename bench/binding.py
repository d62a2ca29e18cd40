"""Session binding throughput and latency, beside a bare FastAPI endpoint, in one run.

Layout on a 2-core machine: the service under test (uvicorn, one worker) is pinned to core 0; the
AgentCore stand-in (a separate process) and this load generator share core 1. Every request is a
distinct, valid completion: its own sessionUri, its own signed binding cookie, a real ALB-format
ES256 token, and one real boto3 `CompleteResourceTokenAuth` call to the stand-in.

    python -m bench.binding [--concurrency 16 64] [--runs 3] [--requests 6000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench.loadgen import LoadResult, get_request, run_load
from bench.procs import HOST, cores, free_port, spread as procs_spread, standin, uvicorn
from local.alb.keys import AlbSigningKey, KeyServer
from services.common.alb_identity import AlbIdentity
from services.common.flow import binding_cookie_name, issue_binding_cookie, issue_flow_token, read_flow_token
from services.common.signed import Keyring

ALB_ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/bench/0123456789abcdef"
ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Bench"
CLIENT_ID = "benchclient"
SIGNING_KEYS = json.dumps({"kid": "k1", "key": "b" * 64})


def service_env(keys_url: str, agentcore_endpoint: str) -> dict[str, str]:
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
        "AWS_ACCESS_KEY_ID": "AKIDBENCH",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        "LOG_LEVEL": "INFO",
    }


def binding_requests(count: int, alb_key: AlbSigningKey, keyring: Keyring, port: int) -> list[bytes]:
    """`count` distinct, valid completions for one signed-in user (the ALB token is re-used, as within its lifetime)."""
    user = AlbIdentity(sub=str(uuid.uuid4()), issuer=ISSUER)
    token = alb_key.mint(sub=user.sub, signer=ALB_ARN, issuer=ISSUER, client_id=CLIENT_ID, lifetime_s=3600)
    now = int(time.time())
    requests = []
    for _ in range(count):
        session = f"urn:ietf:params:oauth:request_uri:{uuid.uuid4()}"
        flow = read_flow_token(
            keyring,
            issue_flow_token(
                keyring,
                identity=user,
                session_uri=session,
                authorization_url="https://idp.example.org/authorize",
                provider="bench",
                scopes=("s",),
                flow_id="f",
                now=now,
            ),
            now=now,
        )
        cookie = f"{binding_cookie_name(session)}={issue_binding_cookie(keyring, flow=flow)}"
        headers = {"x-amzn-oidc-data": token, "x-amzn-oidc-identity": user.sub, "cookie": cookie}
        requests.append(get_request(f"/oauth2/session-binding?session_id={quote(session, safe='')}", f"{HOST}:{port}", headers))
    return requests


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
    if helper_core:
        os.sched_setaffinity(0, helper_core)
    alb_key = AlbSigningKey()
    keyring = Keyring.from_json(SIGNING_KEYS)
    figures: dict[str, Any] = {"pinned": service_core is not None, "requests_per_run": count, "runs": runs, "latencies": {}}
    with KeyServer([alb_key]) as keys, standin("agentcore", helper_core) as endpoint:
        env = service_env(keys.base_url, endpoint)
        binding_port, bare_port = free_port(), free_port()
        with (
            uvicorn("services.session_binding.main:app", binding_port, env, service_core),
            uvicorn("bench.bare_app:app", bare_port, {}, service_core, health="/bare"),
        ):
            for concurrency in concurrencies:
                binding_runs, bare_runs = [], []
                asyncio.run(
                    run_load(HOST, binding_port, binding_requests(500, alb_key, keyring, binding_port), concurrency=concurrency)
                )  # warm-up
                bare_request = get_request("/bare", f"{HOST}:{bare_port}")
                asyncio.run(run_load(HOST, bare_port, [bare_request] * 500, concurrency=concurrency))
                for _ in range(runs):  # interleaved, so both see the same machine noise
                    requests = binding_requests(count, alb_key, keyring, binding_port)
                    binding_runs.append(asyncio.run(run_load(HOST, binding_port, requests, concurrency=concurrency)))
                    bare_runs.append(asyncio.run(run_load(HOST, bare_port, [bare_request] * count, concurrency=concurrency)))
                binding, bare = summarize(binding_runs), summarize(bare_runs)
                figures["latencies"][f"session-binding, {concurrency} clients"] = [x * 1000 for x in binding_runs[-1].latencies_s]
                figures["latencies"][f"bare FastAPI, {concurrency} clients"] = [x * 1000 for x in bare_runs[-1].latencies_s]
                figures[f"c{concurrency}"] = {
                    "binding": binding,
                    "bare": bare,
                    "ratio_to_bare": round(binding["per_s"]["median"] / bare["per_s"]["median"], 3),
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
