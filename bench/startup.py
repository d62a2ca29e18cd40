"""Start-up: process start to the first healthy answer for each service, and the import time of the Mangum
handler module (a proxy for a Lambda cold start's init phase), each beside a reference from the same run.

* Import: the reference is `import fastapi` alone, timed the same way in a fresh interpreter. Both are the
  same kind of work (finding modules, reading cached bytecode, running module bodies), so their ratio does
  not depend on the disk or the CPU; a bare interpreter start was not taken, as it is mostly `exec` and
  dynamic linking, which scale differently from imports.
* Healthy: the reference is `bench.bare_app` under the same uvicorn command, polled the same way: what
  uvicorn and FastAPI cost before any of the services' own code runs.

Each run measures every figure once, in turn, so all of them see the same machine noise; the process
under test is pinned to the service core when there are two.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from bench import agent, binding
from bench.procs import HOST, ROOT, cores, free_port, pinned, spread, uvicorn_command

IMPORT_PROBE = "import time; t = time.perf_counter(); import {module}; print((time.perf_counter() - t) * 1000)"
HANDLER_MODULE = "services.session_binding.main"


def _healthy_ms(app: str, env: dict[str, str], core: set[int] | None, path: str = "/health") -> float:
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
                with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=1) as response:
                    if response.status == 200:
                        return (time.perf_counter() - started) * 1000
            except OSError:
                time.sleep(0.005)
        raise RuntimeError(f"{app} did not become healthy in 30 s")
    finally:
        child.terminate()
        child.wait(timeout=10)


def _import_ms(module: str, core: set[int] | None) -> float:
    result = subprocess.run(  # noqa: S603 - fixed argv
        pinned([sys.executable, "-c", IMPORT_PROBE.format(module=module)], core),
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
    probes: dict[str, Callable[[], float]] = {
        "handler_import_ms": lambda: _import_ms(HANDLER_MODULE, core),
        "fastapi_import_ms": lambda: _import_ms("fastapi", core),
        "binding_healthy_ms": lambda: _healthy_ms("services.session_binding.main:app", binding_env, core),
        "agent_healthy_ms": lambda: _healthy_ms("services.agent.main:app", agent_env, core),
        "bare_healthy_ms": lambda: _healthy_ms("bench.bare_app:app", {}, core, "/bare"),
    }
    samples: dict[str, list[float]] = {name: [] for name in probes}
    for _ in range(runs):  # interleaved: each run measures every figure once
        for name, probe in probes.items():
            samples[name].append(probe())
    return {name: spread(values, 1) for name, values in samples.items()}


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
