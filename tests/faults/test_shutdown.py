"""SIGTERM (an ECS deploy or scale-in) while a binding is in flight: it finishes, then the process exits.

ECS sends SIGTERM, waits the container's stop timeout, then SIGKILL. uvicorn stops accepting
connections, waits up to `--timeout-graceful-shutdown` (20 s, here and in the Dockerfiles) for the
requests in progress, runs the lifespan shutdown and logs "Finished server process".

The exit status depends on the process's place, not on the service: uvicorn (>= 0.29) re-raises the
signal it handled once it has shut down. As PID 1 of its container (the Dockerfiles' exec-form CMD,
no init process) the kernel ignores that default-action signal and the process exits 0; as an
ordinary child (the local stack, or ECS with `initProcessEnabled`) it ends by SIGTERM (status 143).
The second test runs the service as PID 1 of a new PID namespace to check the container's case.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from local.demo.stack import GRACEFUL_SHUTDOWN_S, ROOT, DemoStack, stop_service
from tests.faults.conftest import COMPLETE, DONE, FaultSite, OpenStack

LATENCY_S = 2.0
FINISHED = "Finished server process"


def test_sigterm_during_a_binding_lets_it_finish_then_the_process_ends_by_itself(open_stack: OpenStack) -> None:
    site = open_stack(own=True)  # it stops the session binding service
    process = site.stack.services["session_binding"].process
    exited_after_s = _sigterm_during_binding(site, process.pid, process)
    assert process.returncode == -signal.SIGTERM  # a child: uvicorn re-raised the SIGTERM after its shutdown
    assert exited_after_s < GRACEFUL_SHUTDOWN_S
    assert FINISHED in site.stack.services["session_binding"].log.read_text()


def test_as_pid_1_of_its_container_the_process_exits_0_after_finishing_the_binding(open_stack: OpenStack) -> None:
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "--pid", "--fork", "true"], capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot create a PID namespace here (unshare --pid needs Linux and CAP_SYS_ADMIN)")
    site = open_stack(own=True)  # it stops the session binding service
    wrapper, service_pid = _respawn_as_pid_1(site.stack, unshare)
    try:
        exited_after_s = _sigterm_during_binding(site, service_pid, wrapper)
    finally:
        stop_service(wrapper)
    assert wrapper.returncode == 0  # unshare exits with its child's status: PID 1 exited 0
    assert exited_after_s < GRACEFUL_SHUTDOWN_S
    log = site.stack.services["session_binding"].log.read_text()
    assert f"{FINISHED} [1]" in log


def _sigterm_during_binding(site: FaultSite, service_pid: int, waited: subprocess.Popen[bytes]) -> float:
    """Alice's binding request in flight at AgentCore (2 s), SIGTERM to the service; returns seconds to exit."""
    alice = site.person(site.alice)
    binding = site.consent_up_to_binding(alice)
    site.stack.emulator.faults.set(COMPLETE, latency_s=LATENCY_S)
    answer: list[httpx.Response | BaseException] = []

    def finish() -> None:
        try:
            answer.append(alice.follow(binding))
        except BaseException as exc:  # reported by the assertion below
            answer.append(exc)

    worker = threading.Thread(target=finish, name="binding-request", daemon=True)
    worker.start()
    deadline = time.monotonic() + 5
    while site.calls(COMPLETE) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert site.calls(COMPLETE) == 1, "the binding request did not reach AgentCore"
    assert site.vault() == {}  # in flight: AgentCore is still answering

    signalled = time.monotonic()
    os.kill(service_pid, signal.SIGTERM)
    worker.join(timeout=GRACEFUL_SHUTDOWN_S)
    assert not worker.is_alive()
    (page,) = answer
    assert isinstance(page, httpx.Response), page
    assert page.status_code == 200 and DONE in page.text
    assert site.completions() == 1 and len(site.vault()) == 1
    assert site.metric("session_binding", "BindingsCompleted") == 1
    waited.wait(timeout=GRACEFUL_SHUTDOWN_S)
    return time.monotonic() - signalled


def _respawn_as_pid_1(stack: DemoStack, unshare: str) -> tuple[subprocess.Popen[bytes], int]:
    """Replace the stack's session binding process by the same command and environment, run as PID 1
    of a new PID namespace (as in its container). Returns the `unshare` process and the service's pid."""
    service = stack.services["session_binding"]
    proc = Path(f"/proc/{service.process.pid}")
    argv = [arg.decode() for arg in proc.joinpath("cmdline").read_bytes().split(b"\0") if arg]
    env = dict(item.decode().split("=", 1) for item in proc.joinpath("environ").read_bytes().split(b"\0") if b"=" in item)
    stop_service(service.process)
    with service.log.open("ab") as out:
        wrapper = subprocess.Popen([unshare, "--pid", "--fork", *argv], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        child = _child_of(wrapper.pid)
        if child is not None and _healthy(stack.service_url("session_binding")):
            return wrapper, child
        if wrapper.poll() is not None:
            break
        time.sleep(0.05)
    stop_service(wrapper)
    raise AssertionError(f"the session binding service did not start as PID 1:\n{service.log.read_text()[-2000:]}")


def _child_of(parent: int) -> int | None:
    """The pid (in our namespace) of `parent`'s child, from /proc/<pid>/stat (field 4 is the parent pid)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == parent:
            return int(stat.parent.name)
    return None


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=1, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False
