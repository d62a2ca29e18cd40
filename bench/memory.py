"""Memory: resident set size of each service after 10,000 requests, and its growth after warm-up.

Bounded caches (ALB keys, completion ledger, workload tokens) should make memory flat once warm:
`growth_mb` is RSS after all requests minus RSS after the first 1,000. Its reference is the same process's
peak RSS in the same run (`bench/targets.py` holds growth / peak): what a service weighs depends on the
platform's allocator and word size, not on the machine's speed, so a fraction of it means the same on any
machine. A bare app's growth was not taken as the reference: it is about zero, and a ratio to zero is noise.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from bench import agent, binding
from bench.loadgen import run_load
from bench.procs import HOST, cores, free_port, rss_mb, running_on, spread, standin, uvicorn
from local.alb.keys import AlbSigningKey, KeyServer
from services.common.signed import Keyring

WARM_UP = 1000


def _binding_run(total: int) -> tuple[float, float, float]:
    service_core, helper_core = cores()
    alb_key = AlbSigningKey()
    keyring = Keyring.from_json(binding.SIGNING_KEYS)
    with (
        running_on(helper_core),
        KeyServer([alb_key]) as keys,
        standin("agentcore", helper_core) as endpoint,
        binding.sessions_table(helper_core) as (store, table),
    ):
        port = free_port()
        env = binding.service_env(keys.base_url, endpoint, store)
        with uvicorn("services.session_binding.main:app", port, env, service_core) as child:
            asyncio.run(run_load(HOST, port, binding.binding_requests(WARM_UP, alb_key, keyring, port, table), concurrency=16))
            warm, _ = rss_mb(child.pid)
            for _ in range((total - WARM_UP) // 3000):
                asyncio.run(run_load(HOST, port, binding.binding_requests(3000, alb_key, keyring, port, table), concurrency=16))
            end, peak = rss_mb(child.pid)
    return peak, end - warm, end


def _agent_run(total: int) -> tuple[float, float, float]:
    with agent.stack() as stack:
        port = free_port()
        with uvicorn("services.agent.main:app", port, {**stack.env, "MAX_CHATS_PER_USER": "8"}, stack.service_core) as child:
            # Many people, as in a real task: each consents once, then chats; the workload-token cache fills.
            people = [stack.person() for _ in range(50)]
            for sub, token in people:
                agent.consent(port, token, sub, stack.keyring, stack.agentcore)
            requests = [agent.chat_request(port, people[i % len(people)][1], people[i % len(people)][0]) for i in range(total)]
            asyncio.run(run_load(HOST, port, requests[:WARM_UP], concurrency=4))
            warm, _ = rss_mb(child.pid)
            asyncio.run(run_load(HOST, port, requests[WARM_UP:], concurrency=4))
            end, peak = rss_mb(child.pid)
    return peak, end - warm, end


def measure(runs: int = 3, total: int = 10_000) -> dict[str, Any]:
    binding_runs = [_binding_run(total) for _ in range(runs)]
    agent_runs = [_agent_run(total) for _ in range(runs)]
    return {
        "requests": total,
        "binding_peak_rss_mb": spread([r[0] for r in binding_runs], 1),
        "binding_growth_mb": spread([r[1] for r in binding_runs], 1),
        "agent_peak_rss_mb": spread([r[0] for r in agent_runs], 1),
        "agent_growth_mb": spread([r[1] for r in agent_runs], 1),
    }


if __name__ == "__main__":
    print(json.dumps(measure(runs=1), indent=2))
