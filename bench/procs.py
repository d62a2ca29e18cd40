"""Processes for benchmarks: pinning to cores, loopback stand-ins and services in their own processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
SERVICE_CORE, HELPER_CORE = 0, 1


def cores() -> tuple[set[int] | None, set[int] | None]:
    available = os.sched_getaffinity(0)
    if {SERVICE_CORE, HELPER_CORE} <= available:
        return {SERVICE_CORE}, {HELPER_CORE}
    return None, None  # one core: nothing to pin, figures are then pessimistic


@contextmanager
def running_on(core: set[int] | None) -> Iterator[None]:
    """This process pinned to `core` for the block (unchanged without one), then back where it was: the next
    benchmark's `cores()` must see every core again, or it would run unpinned."""
    previous = os.sched_getaffinity(0)
    if core:
        os.sched_setaffinity(0, core)
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback URL built here
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not become healthy in {timeout_s} s")


def pinned(command: list[str], core: set[int] | None) -> list[str]:
    return ["taskset", "-c", ",".join(map(str, sorted(core))), *command] if core else command


@contextmanager
def process(command: list[str], env: dict[str, str], *, stdout: int | None = subprocess.DEVNULL) -> Iterator[subprocess.Popen[str]]:
    """A child process, stopped on exit; its stderr is shown if the block fails (e.g. it never became healthy)."""
    with tempfile.TemporaryFile(mode="w+") as errors:
        child = subprocess.Popen(command, env=env, cwd=ROOT, stdout=stdout, stderr=errors, text=True)  # noqa: S603 - fixed argv
        try:
            yield child
        except Exception:
            errors.seek(0)
            sys.stderr.write(f"--- stderr of {' '.join(command[-6:])}:\n{errors.read()[-4000:]}\n")
            raise
        finally:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


@contextmanager
def standin(kind: str, core: set[int] | None) -> Iterator[str]:
    """A stand-in from local/ in its own process (`local/standins/serve.py`); yields its base URL."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with process(pinned([sys.executable, "-m", "local.standins.serve", kind], core), env, stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()


def uvicorn_command(app: str, port: int) -> list[str]:
    """The service as its Dockerfile starts it (one worker), on loopback."""
    return [sys.executable, "-m", "uvicorn", app, "--host", HOST, "--port", str(port), "--no-access-log", "--lifespan", "on"]


@contextmanager
def uvicorn(app: str, port: int, env: dict[str, str], core: set[int] | None, *, health: str = "/health") -> Iterator[subprocess.Popen[str]]:
    with process(pinned(uvicorn_command(app, port), core), {**os.environ, "PYTHONPATH": str(ROOT), **env}) as child:
        wait_healthy(f"http://{HOST}:{port}{health}")
        yield child


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident set size of a process, from /proc, in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def spread(values: list[float], digits: int = 2) -> dict[str, float]:
    """Median with min and max: how every figure is reported (these machines are noisy)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return {"median": round(median, digits), "min": round(ordered[0], digits), "max": round(ordered[-1], digits), "runs": len(values)}
