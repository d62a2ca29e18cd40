"""ALB identity verification cost per request: warm key cache, and cold (the key fetched first).

Warm: `verify()` of a valid ALB-format ES256 token whose key is cached (parse, pinned header checks,
ECDSA P-256 verification, payload checks). Cold: each token has a kid not seen before, so the key is
fetched from the loopback key endpoint (HTTP round trip, PEM parse) before the same checks.
Runs in this process, pinned to one core when there are two.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from bench.procs import cores, spread
from local.alb.keys import AlbSigningKey, KeyServer
from services.common.alb_identity import AlbIdentityVerifier, AlbKeyStore

ALB_ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/bench/0123456789abcdef"
ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Bench"
CLIENT_ID = "benchclient"


def _verifier(server: KeyServer) -> AlbIdentityVerifier:
    keys = AlbKeyStore(server.base_url, timeout_s=2, max_keys=10_000)
    return AlbIdentityVerifier(alb_arn=ALB_ARN, issuer=ISSUER, client_id=CLIENT_ID, keys=keys)


def _mint(key: AlbSigningKey) -> str:
    return key.mint(sub="bench-user", signer=ALB_ARN, issuer=ISSUER, client_id=CLIENT_ID, lifetime_s=3600)


def measure(runs: int = 5, warm_count: int = 5000, cold_count: int = 200) -> dict[str, Any]:
    service_core, _ = cores()
    previous = os.sched_getaffinity(0)
    if service_core:
        os.sched_setaffinity(0, service_core)
    try:
        warm_us: list[float] = []
        cold_us: list[float] = []
        for _ in range(runs):
            key = AlbSigningKey()
            with KeyServer([key]) as server:
                verifier = _verifier(server)
                token = _mint(key)
                verifier.verify([token])  # the one fetch
                started = time.perf_counter()
                for _ in range(warm_count):
                    verifier.verify([token])
                warm_us.append((time.perf_counter() - started) / warm_count * 1e6)

                strangers = [AlbSigningKey() for _ in range(cold_count)]  # key generation is not the cost measured
                for stranger in strangers:
                    server.add(stranger)
                tokens = [_mint(stranger) for stranger in strangers]
                started = time.perf_counter()
                for cold in tokens:
                    verifier.verify([cold])
                cold_us.append((time.perf_counter() - started) / cold_count * 1e6)
                verifier.keys.close()
    finally:
        os.sched_setaffinity(0, previous)
    return {
        "verify_warm_us": spread(warm_us, 1),
        "verify_cold_us": spread(cold_us, 1),
        "warm_per_run": warm_count,
        "cold_per_run": cold_count,
        "pinned": service_core is not None,
    }


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
