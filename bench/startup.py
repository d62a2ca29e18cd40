"""Start-up: process start to the first healthy `/health` for each service, and the import time of
the Mangum handler module (a proxy for a Lambda cold start's init phase)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from typing import Any

from bench import agent, binding
from bench.procs import HOST, ROOT, cores, free_port, pinned, spread, uvicorn_command

IMPORT_PROBE = "import time; t = time.perf_counter(); import services.session_binding.main; print((time.perf_counter() - t) * 1000)"


def _healthy_ms(app: str, env: dict[str, str], core: set[int] | None) -> float:
    port = free_port()
    started = time.perf_counter()
    child = subprocess.Popen(  # noqa: S603 - fixed argv
        pinned(uvicorn_command(app, port), core),
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = started + 30
        while time.perf_counter() < deadline:
            try:
                with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=1) as response:
                    if response.status == 200:
                        return (time.perf_counter() - started) * 1000
            except OSError:
                time.sleep(0.005)
        raise RuntimeError(f"{app} did not become healthy in 30 s")
    finally:
        child.terminate()
        child.wait(timeout=10)


def _import_ms(core: set[int] | None) -> float:
    result = subprocess.run(  # noqa: S603 - fixed argv
        pinned([sys.executable, "-c", IMPORT_PROBE], core),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout.strip())


def measure(runs: int = 5) -> dict[str, Any]:
    core, _ = cores()
    # /health needs no stand-in; the settings only have to be valid (nothing is called at start).
    binding_env = binding.service_env("http://127.0.0.1:9", "http://127.0.0.1:9", "http://127.0.0.1:9")
    agent_env = agent.service_env(*["http://127.0.0.1:9"] * 5)
    return {
        "handler_import_ms": spread([_import_ms(core) for _ in range(runs)], 1),
        "binding_healthy_ms": spread([_healthy_ms("services.session_binding.main:app", binding_env, core) for _ in range(runs)], 1),
        "agent_healthy_ms": spread([_healthy_ms("services.agent.main:app", agent_env, core) for _ in range(runs)], 1),
    }


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
