"""`make demo`'s program (`python -m local.demo`) as a person runs it: start, the printed line, Ctrl-C."""

from __future__ import annotations

import dataclasses
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import httpx
import pytest

from local.demo.stack import ROOT, DemoError, DemoStack, Ports
from local.idp import OIDC_PROVIDER_DIR

PORTS = len(Ports.__dataclass_fields__)


def _below_ephemeral_ports() -> int:
    """The first port the kernel hands out by itself (for outgoing connections and port 0)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def _free_block() -> int:
    """A base port with the next PORTS-1 ports free too, below the kernel's ephemeral range: tests running
    beside this one (other xdist workers) take ports there, and could take one of this block between the
    demo releasing it and the test checking that it did."""
    for _ in range(50):
        base = random.randrange(10_000, _below_ephemeral_ports() - PORTS)  # noqa: S311 - not security relevant
        try:
            Ports.from_base(base).check_free("127.0.0.1")
        except Exception:  # noqa: S112 - a taken port: try another block
            continue
        return base
    raise RuntimeError("no block of free ports")


class Demo:
    """`python -m local.demo` in a child process; its output read by threads, so no wait can hang."""

    def __init__(self, env: dict[str, str], tmp_path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "local.demo"],
            cwd=ROOT,
            env={
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "DEMO_LOG_DIR": str(tmp_path / "logs"),
                "DEMO_VERIFY_ARGS": str(tmp_path / "verify.args"),
                **env,
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, sink in ((self.process.stdout, self.out), (self.process.stderr, self.err)):
            threading.Thread(target=self._read, args=(stream, sink), daemon=True).start()

    def _read(self, stream: IO[str] | None, sink: list[str]) -> None:
        assert stream is not None
        for line in stream:
            sink.append(line)
            if sink is self.out:
                self.lines.put(line)
        if sink is self.out:
            self.lines.put(None)

    def wait_for(self, prefix: str, timeout_s: float = 60) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line starting {prefix!r} within {timeout_s} s: {''.join(self.out)}") from None
            if line is None:
                raise AssertionError(f"the demo ended first ({self.process.wait()}): {''.join(self.err)[-2000:]}")
            if line.startswith(prefix):
                return line.rstrip("\n")

    def finish(self, timeout_s: float = 30) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()


def _cmdline(proc: Path) -> str:
    try:
        args = (proc / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    except OSError:
        return ""
    # Up to the port: the flags after it are not part of the match.
    text = " ".join(a.decode(errors="replace") for a in args)
    return text.split(" --no-access-log")[0]


@pytest.fixture(autouse=True)
def _needs_node_idp() -> None:
    if not OIDC_PROVIDER_DIR.is_dir():
        if os.environ.get("REQUIRE_NODE_IDP"):
            pytest.fail("node_modules/oidc-provider is missing (make install runs npm ci)")
        pytest.skip("node_modules/oidc-provider is missing (npm ci)")


def test_demo_prints_where_to_go_serves_the_flow_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    base = _free_block()
    demo = Demo({"DEMO_PORT": str(base)}, tmp_path)
    try:
        assert demo.wait_for("Open ") == f"Open http://127.0.0.1:{base} and sign in as alice / alice-demo-pass"
        page = httpx.get(f"http://127.0.0.1:{base}/")
        assert page.status_code == 302 and page.headers["location"].startswith(f"http://127.0.0.1:{base + 1}/oauth2/authorize?")
        assert httpx.get(f"http://127.0.0.1:{base}/health").json() == {"status": "ok"}
    finally:
        demo.process.send_signal(signal.SIGINT)
        code = demo.finish()
    assert code == 0 and "Stopped.\n" in demo.out
    Ports.from_base(base).check_free("127.0.0.1")  # every port released: nothing left running
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["agent.log", "demo_api.log", "session_binding.log"]


def test_a_service_that_dies_stops_the_demo_with_a_message(tmp_path: Path) -> None:
    base = _free_block()
    demo = Demo({"DEMO_PORT": str(base)}, tmp_path)
    try:
        demo.wait_for("Open ")
        agent_port = Ports.from_base(base).agent
        [pid] = [
            int(proc.name)
            for proc in Path("/proc").iterdir()
            if proc.name.isdigit() and _cmdline(proc).endswith(f"services.agent.main:app --host 127.0.0.1 --port {agent_port}")
        ]
        os.kill(pid, signal.SIGKILL)
        code = demo.finish(timeout_s=30)
    finally:
        if demo.process.poll() is None:
            demo.process.send_signal(signal.SIGINT)
            demo.finish()
    assert code == 1
    assert "the agent (exit -9) service stopped by itself" in "".join(demo.err)
    Ports.from_base(base).check_free("127.0.0.1")


def test_a_port_in_use_is_named(tmp_path: Path) -> None:
    base = _free_block()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + 3))
        taken.listen()
        demo = Demo({"DEMO_PORT": str(base)}, tmp_path)
        code = demo.finish()
    assert code == 1
    err = "".join(demo.err)
    assert f"port {base + 3} (agentcore) on 127.0.0.1 is in use" in err and "DEMO_PORT" in err


@pytest.mark.parametrize("value", ["eighty", "80", "70000"])
def test_a_bad_demo_port_is_explained(tmp_path: Path, value: str) -> None:
    demo = Demo({"DEMO_PORT": value}, tmp_path)
    assert demo.finish() in (1, 2)
    assert "DEMO_PORT must be a port number" in "".join(demo.err)


def test_a_real_model_id_sends_only_the_model_calls_to_bedrock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With BEDROCK_MODEL_ID the agent gets that model and no Bedrock endpoint override; AgentCore stays local."""
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    stack = DemoStack.on_free_ports(log_dir=tmp_path / "logs", model_id="eu.anthropic.example-model-v1:0")
    try:
        environ = Path(f"/proc/{stack.services['agent'].process.pid}/environ").read_bytes().split(b"\0")
        env = dict(item.decode().split("=", 1) for item in environ if b"=" in item)
    finally:
        stack.stop()
    assert stack.model is None
    assert env["BEDROCK_MODEL_ID"] == "eu.anthropic.example-model-v1:0" and env["AWS_REGION"] == "eu-west-1"
    assert "AWS_ENDPOINT_URL_BEDROCK_RUNTIME" not in env
    assert env["AWS_ENDPOINT_URL_BEDROCK_AGENTCORE"] == stack.emulator.base_url
    assert "AWS_ACCESS_KEY_ID" not in env or env["AWS_ACCESS_KEY_ID"] != "local", "the person's own credentials, not the dummy ones"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
def test_a_killed_demo_leaves_nothing_running(tmp_path: Path) -> None:
    """SIGKILL gives the runner no chance to clean up: the services and the IdP go by themselves."""
    base = _free_block()
    demo = Demo({"DEMO_PORT": str(base)}, tmp_path)
    demo.wait_for("Open ")
    demo.process.kill()
    demo.finish(timeout_s=10)
    ports = Ports.from_base(base)
    deadline = time.monotonic() + 15
    while True:
        try:
            ports.check_free("127.0.0.1")
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_a_start_that_meets_a_taken_port_is_tried_again_on_fresh_ports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first set of ports includes one another process holds; the stack starts on the next set."""
    picked: list[Ports] = []
    real = Ports.ephemeral

    def first_one_taken(host: str = "127.0.0.1") -> Ports:
        ports = real(host)
        picked.append(ports)
        return ports

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        blocked = int(holder.getsockname()[1])
        calls = iter([True])

        def ephemeral(host: str = "127.0.0.1") -> Ports:
            ports = first_one_taken(host)
            return dataclasses.replace(ports, agentcore=blocked) if next(calls, False) else ports

        monkeypatch.setattr(Ports, "ephemeral", staticmethod(ephemeral))
        stack = DemoStack.on_free_ports(log_dir=tmp_path / "logs")
        try:
            assert len(picked) == 2 and stack.ports == picked[1]
            assert httpx.get(stack.public_url + "/health").status_code == 200
        finally:
            stack.stop()


def test_the_albs_port_taken_during_the_start_is_tried_again_on_fresh_ports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ALB is bound last, seconds after its port was chosen: another process (here a listening socket with
    SO_REUSEADDR, as servers set it) takes the port just before, and the stack starts again on fresh ports."""
    real = DemoStack._start_alb
    holders: list[socket.socket] = []

    def taken_first(self: DemoStack) -> None:
        if not holders:
            holder = socket.socket()
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            holder.bind((self.host, self.ports.alb))
            holder.listen()
            holders.append(holder)
        real(self)

    monkeypatch.setattr(DemoStack, "_start_alb", taken_first)
    try:
        stack = DemoStack.on_free_ports(log_dir=tmp_path / "logs")
        try:
            assert stack.ports.alb != holders[0].getsockname()[1]
            assert httpx.get(stack.public_url + "/health").status_code == 200
        finally:
            stack.stop()
    finally:
        for holder in holders:
            holder.close()


def _first_starts_out_of_time(monkeypatch: pytest.MonkeyPatch, late: int) -> list[Path]:
    """The first `late` starts get 10 ms (the IdP is never ready that soon), later ones the default; returns the
    log folder of each start."""
    real = DemoStack.start
    log_dirs: list[Path] = []

    def start(self: DemoStack, timeout_s: float = 60.0) -> DemoStack:
        log_dirs.append(self.log_dir)
        return real(self, timeout_s=0.01 if len(log_dirs) <= late else timeout_s)

    monkeypatch.setattr(DemoStack, "start", start)
    return log_dirs


def test_a_start_that_runs_out_of_time_is_tried_once_more_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log_dirs = _first_starts_out_of_time(monkeypatch, late=1)
    with (
        pytest.warns(UserWarning, match=r"issuers not ready after 0\.005 s .*; launching it again"),  # the IdP's own second launch
        pytest.warns(UserWarning, match=r"did not start in time, starting another: local IdP did not start: issuers not ready"),
    ):
        stack = DemoStack.on_free_ports(log_dir=tmp_path / "logs")
    try:
        assert log_dirs == [tmp_path / "logs", tmp_path / "logs-late-1"]  # the first start's logs stay apart
        assert httpx.get(stack.public_url + "/health").status_code == 200
    finally:
        stack.stop()


def test_a_second_start_out_of_time_is_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log_dirs = _first_starts_out_of_time(monkeypatch, late=2)
    with pytest.warns(UserWarning), pytest.raises(DemoError, match=r"issuers not ready after 0\.005 s"):
        DemoStack.on_free_ports(log_dir=tmp_path / "logs")
    assert len(log_dirs) == 2
