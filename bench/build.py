"""Build times on this machine: `make synth` and `make test`, wall clock, each run from the same state
(venv and node_modules already installed, so install time is not counted)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from typing import Any

from bench.procs import ROOT, spread


def _wall_s(target: str) -> float:
    env = {**os.environ}
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        env.pop(name, None)  # as CI runs it: no credentials
    started = time.perf_counter()
    command = ["make", "--no-print-directory", target]  # make from PATH, as a user runs it
    with tempfile.TemporaryFile(mode="w+") as output:
        done = subprocess.run(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, check=False)  # noqa: S603 - fixed argv
        if done.returncode != 0:
            output.seek(0)
            raise RuntimeError(f"make {target} failed ({done.returncode}); its last lines:\n{output.read()[-4000:]}")
    return time.perf_counter() - started


def measure(synth_runs: int = 3, test_runs: int = 1) -> dict[str, Any]:
    """`make test` runs once by default: it takes minutes, and its spread matters less than the synth's."""
    return {
        "synth_s": spread([_wall_s("synth") for _ in range(synth_runs)], 1),
        "test_s": spread([_wall_s("test") for _ in range(test_runs)], 1),
    }


if __name__ == "__main__":
    print(json.dumps(measure(1, 1), indent=2))
