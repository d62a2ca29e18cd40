"""Memory: resident set size of each service after 10,000 requests, and its growth after warm-up.

Bounded caches (ALB keys, completion ledger, workload tokens) should make memory flat once warm:
`growth_mb` is RSS after all requests minus RSS after the first 1,000.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from typing import Any

from bench import agent, binding
from bench.loadgen import run_load
from bench.procs import HOST, cores, free_port, rss_mb, spread, standin, uvicorn
from local.alb.keys import AlbSigningKey, KeyServer
from local.dynamodb import CONNECTIONS_TABLE, LocalDynamoDB, create_table
from services.common.signed import Keyring

WARM_UP = 1000


def _binding_run(total: int, service_core: set[int] | None, helper_core: set[int] | None) -> tuple[float, float, float]:
    alb_key = AlbSigningKey()
    keyring = Keyring.from_json(binding.SIGNING_KEYS)
    with KeyServer([alb_key]) as keys, standin("agentcore", helper_core) as endpoint, binding.sessions_table(helper_core) as (store, table):
        port = free_port()
        env = binding.service_env(keys.base_url, endpoint, store)
        with uvicorn("services.session_binding.main:app", port, env, service_core) as child:
            asyncio.run(run_load(HOST, port, binding.binding_requests(WARM_UP, alb_key, keyring, port, table), concurrency=16))
            warm, _ = rss_mb(child.pid)
            for _ in range((total - WARM_UP) // 3000):
                asyncio.run(run_load(HOST, port, binding.binding_requests(3000, alb_key, keyring, port, table), concurrency=16))
            end, peak = rss_mb(child.pid)
    return peak, end - warm, end


def _agent_run(total: int, service_core: set[int] | None, helper_core: set[int] | None) -> tuple[float, float, float]:
    alb_key = AlbSigningKey()
    keyring = Keyring.from_json(agent.SIGNING_KEYS)
    with (
        KeyServer([alb_key]) as keys,
        standin("agentcore", helper_core) as agentcore,
        standin("bedrock", helper_core) as bedrock,
        standin("resource", helper_core) as resource,
        LocalDynamoDB() as store,
    ):
        create_table(store.client(), agent.CONNECTIONS, CONNECTIONS_TABLE)
        port = free_port()
        env = {**agent.service_env(keys.base_url, agentcore, bedrock, resource, store.backend_endpoint), "MAX_CHATS_PER_USER": "8"}
        with uvicorn("services.agent.main:app", port, env, service_core) as child:
            # Many people, as in a real task: each consents once, then chats; the workload-token cache fills.
            users = [str(uuid.uuid4()) for _ in range(50)]
            tokens = {
                sub: alb_key.mint(sub=sub, signer=agent.ALB_ARN, issuer=agent.ISSUER, client_id=agent.CLIENT_ID, lifetime_s=3600)
                for sub in users
            }
            for sub in users:
                agent.consent(port, tokens[sub], sub, keyring, agentcore)
            requests = [agent.chat_request(port, tokens[users[i % len(users)]], users[i % len(users)]) for i in range(total)]
            asyncio.run(run_load(HOST, port, requests[:WARM_UP], concurrency=4))
            warm, _ = rss_mb(child.pid)
            asyncio.run(run_load(HOST, port, requests[WARM_UP:], concurrency=4))
            end, peak = rss_mb(child.pid)
    return peak, end - warm, end


def measure(runs: int = 3, total: int = 10_000) -> dict[str, Any]:
    service_core, helper_core = cores()
    previous = os.sched_getaffinity(0)
    if helper_core:
        os.sched_setaffinity(0, helper_core)
    try:
        binding_runs = [_binding_run(total, service_core, helper_core) for _ in range(runs)]
        agent_runs = [_agent_run(total, service_core, helper_core) for _ in range(runs)]
    finally:
        os.sched_setaffinity(0, previous)
    return {
        "requests": total,
        "binding_peak_rss_mb": spread([r[0] for r in binding_runs], 1),
        "binding_growth_mb": spread([r[1] for r in binding_runs], 1),
        "agent_peak_rss_mb": spread([r[0] for r in agent_runs], 1),
        "agent_growth_mb": spread([r[1] for r in agent_runs], 1),
    }


if __name__ == "__main__":
    print(json.dumps(measure(runs=1), indent=2))
