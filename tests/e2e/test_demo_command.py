"""`make demo`'s program (`python -m local.demo`) as a person runs it: start, the printed line, Ctrl-C."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from local.demo.stack import ROOT, DemoStack, Ports
from local.idp import OIDC_PROVIDER_DIR

PORTS = len(Ports.__dataclass_fields__)


def _free_block() -> int:
    """A base port with the next PORTS-1 ports free too."""
    for _ in range(50):
        base = random.randrange(20_000, 60_000)  # noqa: S311 - not security relevant
        try:
            Ports.from_base(base).check_free("127.0.0.1")
        except Exception:  # noqa: S112 - a taken port: try another block
            continue
        return base
    raise RuntimeError("no block of free ports")


def _run(env: dict[str, str], tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "local.demo"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "DEMO_LOG_DIR": str(tmp_path / "logs"), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(autouse=True)
def _needs_node_idp() -> None:
    if not OIDC_PROVIDER_DIR.is_dir():
        if os.environ.get("REQUIRE_NODE_IDP"):
            pytest.fail("node_modules/oidc-provider is missing (make install runs npm ci)")
        pytest.skip("node_modules/oidc-provider is missing (npm ci)")


def test_demo_prints_where_to_go_serves_the_flow_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    base = _free_block()
    demo = _run({"DEMO_PORT": str(base)}, tmp_path)
    try:
        assert demo.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            assert line, f"the demo exited early: {demo.wait()} {demo.stderr.read() if demo.stderr else ''}"
            lines.append(line)
            if line.startswith("Open "):
                break
        assert lines[-1].strip() == f"Open http://127.0.0.1:{base} and sign in as alice / alice-demo-pass"
        page = httpx.get(f"http://127.0.0.1:{base}/")
        assert page.status_code == 302 and page.headers["location"].startswith(f"http://127.0.0.1:{base + 1}/oauth2/authorize?")
        assert httpx.get(f"http://127.0.0.1:{base}/health").json() == {"status": "ok"}
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            code = demo.wait(timeout=30)
        finally:
            if demo.poll() is None:
                demo.kill()
    assert code == 0
    Ports.from_base(base).check_free("127.0.0.1")  # every port released: nothing left running
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["agent.log", "demo_api.log", "session_binding.log"]


def test_a_port_in_use_is_named(tmp_path: Path) -> None:
    base = _free_block()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + 3))
        taken.listen()
        demo = _run({"DEMO_PORT": str(base)}, tmp_path)
        _, err = demo.communicate(timeout=30)
    assert demo.returncode == 1
    assert f"port {base + 3} (agentcore) on 127.0.0.1 is in use" in err and "DEMO_PORT" in err


@pytest.mark.parametrize("value", ["eighty", "80", "70000"])
def test_a_bad_demo_port_is_explained(tmp_path: Path, value: str) -> None:
    demo = _run({"DEMO_PORT": value}, tmp_path)
    _, err = demo.communicate(timeout=30)
    assert demo.returncode in (1, 2)
    assert "DEMO_PORT must be a port number" in err


def test_a_real_model_id_sends_only_the_model_calls_to_bedrock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With BEDROCK_MODEL_ID the agent gets that model and no Bedrock endpoint override; AgentCore stays local."""
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    stack = DemoStack(ports=Ports.ephemeral(), log_dir=tmp_path / "logs", model_id="eu.anthropic.example-model-v1:0").start()
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
    demo = _run({"DEMO_PORT": str(base)}, tmp_path)
    assert demo.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not demo.stdout.readline().startswith("Open "):
        assert demo.poll() is None, "the demo exited early"
    demo.kill()
    demo.wait(timeout=10)
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
