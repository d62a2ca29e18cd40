"""Run one loopback stand-in alone, for benchmarks: `python -m tests.support.serve agentcore|bedrock|resource`.

Prints its base URL on the first line of stdout, then serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
from typing import Any

from tests.support.agentcore_standin import AgentCoreStandIn
from tests.support.bedrock_standin import BedrockStandIn
from tests.support.resource_standin import ResourceStandIn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["agentcore", "bedrock", "resource"])
    args = parser.parse_args()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})  # before threads start: sigwait gets them
    standin: Any
    if args.kind == "agentcore":
        standin = AgentCoreStandIn()
        standin.record = False  # count only: the benchmark sends thousands of calls
        url = None
    elif args.kind == "bedrock":
        standin = BedrockStandIn()
        standin.record = False
    else:
        standin = ResourceStandIn()
        standin.record = False
    standin.start()
    url = getattr(standin, "endpoint", None) or standin.base_url
    print(url, flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    standin.stop()


if __name__ == "__main__":
    main()
