"""`python -m local.demo` (what `make demo` runs): the whole 3-legged flow on this machine until Ctrl-C.

Environment:
  DEMO_PORT         first of eleven consecutive ports; the agent is at http://127.0.0.1:$DEMO_PORT (default 8000)
  DEMO_LOG_DIR      where the service logs go (default .demo/logs)
  DEMO_VERIFY_ARGS  where `make verify` finds this stack's arguments (default .demo/verify.args)
  BEDROCK_MODEL_ID  a real Bedrock model or inference profile; AWS credentials come from the usual places.
                    Unset: the local model stand-in (local/bedrock), which understands a few plain requests.
  DEMO_AGENTCORE_QUOTAS  request-rate quotas for the AgentCore Identity emulator, space-separated OP=TPS[:BURST]
                    (e.g. "GetResourceOauth2Token=1 CompleteResourceTokenAuth=0.5"): calls above them are throttled

While it runs, `.demo/verify.args` holds what `make verify URL=<its URL>` needs besides the URL (the
emulator's endpoint and administrator keys, a demo user); it is removed at the end.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from local.agentcore_identity.quotas import build_quotas
from local.demo.stack import ROOT, DemoError, DemoStack, Ports
from local.iam.templates import CACHE, fingerprint
from local.idp import DEMO_USERS

HOST = "127.0.0.1"
VERIFY_ARGS = ".demo/verify.args"  # relative to the repository; DEMO_VERIFY_ARGS overrides it


def banner(stack: DemoStack, model_id: str | None) -> str:
    alice = DEMO_USERS[0]
    others = ", ".join(f"{user.username} / {user.password}" for user in DEMO_USERS[1:])
    model = f"Bedrock model {model_id} in {stack.region}" if model_id else "the local model stand-in (try: show my notes)"
    iam = (
        "each service signs with its own keys; AgentCore and DynamoDB calls are checked against its role in the synthesized templates"
        if stack.principals
        else "off (a real Bedrock model: the services hold your AWS credentials)"
    )
    return (
        f"\nOpen {stack.public_url} and sign in as {alice.username} / {alice.password}\n"
        f"  (also: {others}; the agent uses {model})\n"
        f"  sign-in issuer     {stack.sign_in_issuer}   (stands in for Amazon Cognito)\n"
        f"  notes API issuer   {stack.consent_issuer}   (the external authorization server)\n"
        f"  AgentCore Identity {stack.emulator.base_url}   (emulator; vault at /_emulator/vault)\n"
        f"  IAM                {iam}\n"
        f"  check it           make verify URL={stack.public_url}   (from another terminal)\n"
        "Press Ctrl-C to stop."
    )


def synth_needed() -> bool:
    """Whether the start synthesizes the CDK app for the IAM check: a new clone, or the stacks changed
    (`local.iam.templates.synthesized` keeps the templates under CACHE by this fingerprint)."""
    return not (CACHE / fingerprint() / "Services.template.json").is_file()


def main() -> int:
    try:
        base = int(os.environ.get("DEMO_PORT") or "8000")
    except ValueError:
        print(f"DEMO_PORT must be a port number, got {os.environ['DEMO_PORT']!r}", file=sys.stderr)
        return 2
    log_dir = Path(os.environ.get("DEMO_LOG_DIR") or ROOT / ".demo" / "logs")
    model_id = os.environ.get("BEDROCK_MODEL_ID") or None
    verify_args = Path(os.environ.get("DEMO_VERIFY_ARGS") or ROOT / VERIFY_ARGS)
    try:
        quotas = build_quotas((os.environ.get("DEMO_AGENTCORE_QUOTAS") or "").split())
    except ValueError as exc:
        print(f"DEMO_AGENTCORE_QUOTAS: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # during start-up: DemoStack.start() stops what it started

    # Handlers, not a blocked signal mask: child processes inherit a mask and would ignore SIGTERM.
    signal.signal(signal.SIGTERM, interrupted)
    try:
        ports = Ports.from_base(base)
        print(f"Starting the local stack on {HOST}:{ports.alb}-{ports.dynalite} (logs in {log_dir}): about 5 s ...", flush=True)
        if model_id is None and synth_needed():
            print("  and synthesizes the CDK app for the IAM check (new clone or changed stacks): about 20 s in all", flush=True)
        stack = DemoStack(ports=ports, host=HOST, log_dir=log_dir, model_id=model_id, quotas=quotas).start()
    except DemoError as exc:
        print(f"make demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Stopped while starting.", file=sys.stderr)
        return 130
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, frame: stop.set())
    stack.write_verify_arguments(verify_args)
    print(banner(stack, model_id), flush=True)
    code = 0
    try:
        while not stop.wait(0.5):
            if crashed := stack.exited():
                print(f"\nmake demo: the {', '.join(crashed)} service stopped by itself; its log is in {log_dir}", file=sys.stderr)
                code = 1
                break
    finally:
        print("\nStopping ...", flush=True)
        verify_args.unlink(missing_ok=True)
        try:
            stack.stop()
        except DemoError as exc:
            print(f"make demo: {exc}", file=sys.stderr)
            code = 1
    print("Stopped.", flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
