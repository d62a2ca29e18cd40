"""`python -m local.agentcore_identity --host 127.0.0.1 --port 8090`: serve the emulator until SIGTERM/SIGINT.

A local stand-in for AgentCore Identity (see the package docstring). Fault injection flags take
`OPERATION=VALUE` or just `VALUE` (every operation), and may repeat (`--script` takes any AWS error
code, or HTML503, CLOSE, SLOW_SUCCESS):

    --throttle-rate GetResourceOauth2Token=0.2   --internal-error-rate 0.05
    --latency CompleteResourceTokenAuth=0.5       --script GetWorkloadAccessTokenForUserId=ThrottlingException:2

Request-rate quotas, as AWS meters them (`quotas.py`): `--quota OP=TPS[:BURST]` (repeatable; the three
GetWorkloadAccessToken operations share `GetWorkloadAccessToken*`), and `--documented-quotas SCALE` for
AWS's documented AgentCore Identity defaults times SCALE (1: as in an account; 0.1: a tenth):

    --documented-quotas 0.1   --quota CompleteResourceTokenAuth=2:4
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from local.agentcore_identity.faults import ANY, FaultRule, Faults, parse_assignment
from local.agentcore_identity.providers import secretsmanager_reader
from local.agentcore_identity.quotas import build_quotas
from local.agentcore_identity.server import Emulator


def build_faults(args: argparse.Namespace) -> Faults:
    faults = Faults(seed=args.seed)
    rules: dict[str, FaultRule] = {}
    for attr, field_name in (
        ("throttle_rate", "throttle_probability"),
        ("internal_error_rate", "internal_error_probability"),
        ("latency", "latency_s"),
    ):
        for text in getattr(args, attr) or []:
            operation, value = parse_assignment(text)
            setattr(rules.setdefault(operation, FaultRule()), field_name, float(value))
    if ANY in rules:  # an operation's own rule inherits the all-operations settings it does not override
        base = rules[ANY]
        for operation, rule in rules.items():
            for name in ("throttle_probability", "internal_error_probability", "latency_s"):
                if getattr(rule, name) == 0.0 and operation != ANY:
                    setattr(rule, name, getattr(base, name))
    for operation, rule in rules.items():
        faults.set(
            operation,
            throttle_probability=rule.throttle_probability,
            internal_error_probability=rule.internal_error_probability,
            latency_s=rule.latency_s,
        )
    for text in args.script or []:
        operation, value = parse_assignment(text)
        error, _, count = value.partition(":")
        faults.script(operation, error, int(count or 1))
    return faults


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.agentcore_identity", description="AgentCore Identity emulator (local stand-in, not AWS)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--public-url", help="base URL browsers use to reach the callback, if not http://host:port")
    parser.add_argument("--session-ttl", type=float, default=600.0, help="seconds an authorization session is valid (default 600)")
    parser.add_argument("--workload-token-ttl", type=float, default=3600.0)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--account", default="123456789012")
    parser.add_argument("--throttle-rate", action="append", metavar="[OP=]P", help="probability of ThrottlingException")
    parser.add_argument("--internal-error-rate", action="append", metavar="[OP=]P", help="probability of InternalServerException")
    parser.add_argument("--latency", action="append", metavar="[OP=]SECONDS", help="added latency per call")
    parser.add_argument("--script", action="append", metavar="[OP=]ERROR[:COUNT]", help="the next COUNT calls answer ERROR")
    parser.add_argument("--quota", action="append", metavar="OP=TPS[:BURST]", help="throttle OP above TPS calls a second")
    parser.add_argument("--documented-quotas", type=float, metavar="SCALE", help="AWS's documented Identity quotas times SCALE")
    parser.add_argument("--seed", type=int, default=None, help="seed for probabilistic faults")
    parser.add_argument("--secretsmanager-endpoint", help="Secrets Manager to read EXTERNAL client secrets from (e.g. moto's server)")
    args = parser.parse_args(argv)
    try:
        faults = build_faults(args)
        quotas = build_quotas(args.quota or [], args.documented_quotas)
    except ValueError as exc:
        parser.error(str(exc))

    emulator = Emulator(
        args.host,
        args.port,
        session_ttl_s=args.session_ttl,
        workload_token_ttl_s=args.workload_token_ttl,
        region=args.region,
        account=args.account,
        public_url=args.public_url,
        faults=faults,
        quotas=quotas,
        secret_reader=secretsmanager_reader(args.secretsmanager_endpoint, args.region) if args.secretsmanager_endpoint else None,
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=emulator.shutdown, daemon=True).start()  # shutdown() blocks: not on the serving thread

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"AgentCore Identity emulator (local stand-in) listening on {emulator.base_url}", flush=True)
    emulator.serve_forever()
    print("AgentCore Identity emulator stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
