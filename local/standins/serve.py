"""Run one loopback stand-in alone, for benchmarks: `python -m local.standins.serve agentcore|bedrock|resource`.

Prints its base URL on the first line of stdout, then serves until SIGTERM or SIGINT. Nothing is
recorded (the benchmarks send thousands of calls); the AgentCore stand-in's counts are at `/_emulator/stats`.
"""

from __future__ import annotations

import argparse
import signal

from local.agentcore_identity import AgentCoreStandIn
from local.bedrock import BedrockStandIn
from local.standins.resource_api import ResourceStandIn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["agentcore", "bedrock", "resource"])
    args = parser.parse_args()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})  # before threads start: sigwait gets them
    standin: AgentCoreStandIn | BedrockStandIn | ResourceStandIn
    if args.kind == "agentcore":
        standin = AgentCoreStandIn()
    elif args.kind == "bedrock":
        standin = BedrockStandIn()
    else:
        standin = ResourceStandIn()
    standin.record = False
    standin.start()
    print(standin.base_url if isinstance(standin, ResourceStandIn) else standin.endpoint, flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    standin.stop()


if __name__ == "__main__":
    main()
