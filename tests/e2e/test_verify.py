"""`make verify` against `make demo`'s stack: every check passes, and a check fails when what it checks
is broken (a redirect URI the provider does not list, a return without the customState echo).

One stack per module (`demo`), and one more for the stack whose session binding service expects the
echo in another parameter than the one the emulator sends. `deploy.verify` runs in process, with the
local stack's differences from AWS passed as arguments, as a person would pass them.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.verify.__main__ import main
from deploy.verify.checks import ALL_CHECKS
from local.demo.stack import DemoStack
from local.idp import OIDC_PROVIDER_DIR
from services.common import environment as names
from tests.support.browsing import CHROMIUM


def _require_tools() -> None:
    for missing, message, flag in (
        (not OIDC_PROVIDER_DIR.is_dir(), "node_modules/oidc-provider is missing (make install runs npm ci)", "REQUIRE_NODE_IDP"),
        (not CHROMIUM.is_file(), f"no Chromium at {CHROMIUM} (make browser)", "REQUIRE_CHROMIUM"),
    ):
        if missing and os.environ.get(flag):
            pytest.fail(message)
        if missing:
            pytest.skip(message)


def _stack(log_dir: Path, service_env: dict[str, dict[str, str]] | None = None) -> Iterator[DemoStack]:
    _require_tools()
    demo = DemoStack.on_free_ports(log_dir=log_dir, service_env=service_env)
    try:
        yield demo
    finally:
        demo.stop()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    yield from _stack(tmp_path_factory.mktemp("verify") / "logs")


def verify_args(stack: DemoStack) -> list[str]:
    """What differs from an account, given explicitly: issuers, AgentCore's endpoint and keys, a demo user."""
    return stack.verify_arguments()


def run(argv: list[str], *, secrets: tuple[str, ...] = ()) -> tuple[int, dict[str, str]]:
    """The exit code, and each check's report line by check name; none of `secrets` may appear in the report."""
    out = io.StringIO()
    code = main(argv, out=out)
    text = out.getvalue()
    assert not [s for s in secrets if s in text], "the report shows a secret"
    lines = text.splitlines()
    return code, {line.split()[1]: line for line in lines[1:] if line[:4] in ("pass", "FAIL", "skip")}


def test_every_check_passes_against_the_local_stack(demo: DemoStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command a person types, `make verify URL=<the demo's URL>`: the rest comes from the file the demo writes."""
    demo.write_verify_arguments(tmp_path / "verify.args")
    monkeypatch.setenv("DEMO_VERIFY_ARGS", str(tmp_path / "verify.args"))
    secrets = (demo.admin_credentials["aws_secret_access_key"], demo.users[0].password)
    code, lines = run(["--url", demo.public_url], secrets=secrets)
    assert list(lines) == list(ALL_CHECKS), "the report lists every check, in order"
    assert code == 0, "\n".join(lines.values())
    assert all(line.startswith("pass") for line in lines.values())
    assert "session_id, state ('state' is the echo)" in lines["state_echo_and_chat"]
    assert "reason FieldValidationFailed" in lines["agentcore_validation_shape"]
    assert demo.emulator.count("CompleteResourceTokenAuth") >= 1, "the consent really completed at AgentCore"


def test_a_redirect_uri_the_provider_does_not_list_fails_the_callback_check(demo: DemoStack) -> None:
    wrong = f"{demo.public_url}/oauth2/session-binding"  # the mistake docs/deploy.md warns about
    code, lines = run([*verify_args(demo), "--check", "callback_url_registered", "--callback-url", wrong])
    assert code == 1
    assert lines["callback_url_registered"].startswith("FAIL")
    assert "redirect_uri" in lines["callback_url_registered"] and wrong in lines["callback_url_registered"]


@pytest.fixture
def echo_elsewhere(tmp_path: Path) -> Iterator[DemoStack]:
    """A session binding service that expects the echo in `custom_state`; the emulator sends `state`."""
    yield from _stack(tmp_path / "logs", service_env={"session_binding": {names.CUSTOM_STATE_PARAM: "custom_state"}})


def test_a_return_without_the_echo_fails_the_echo_check_and_names_what_arrived(echo_elsewhere: DemoStack) -> None:
    secrets = (echo_elsewhere.admin_credentials["aws_secret_access_key"], echo_elsewhere.users[0].password)
    code, lines = run([*verify_args(echo_elsewhere), "--state-param", "custom_state", "--check", "state_echo_and_chat"], secrets=secrets)
    assert code == 1
    assert lines["sign_in"].startswith("pass") and lines["forged_headers_signed_in"].startswith("pass")
    assert lines["state_echo_and_chat"].startswith("FAIL")
    assert "carried session_id, state but not 'custom_state'" in lines["state_echo_and_chat"]
    assert echo_elsewhere.emulator.count("CompleteResourceTokenAuth") == 0, "without the echo, nothing completes"
