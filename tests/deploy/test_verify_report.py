"""`make verify`'s report and exit code, and where its inputs come from when nothing answers (no stack,
no AgentCore): a check that cannot run is skipped with its reason, a check that fails fails the run."""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from cdk_app.config import load_config
from deploy.cdk_args import PROJECT_DIR
from deploy.verify.__main__ import main, with_demo_arguments
from deploy.verify.agentcore_checks import _caller_problem
from deploy.verify.checks import ALL_CHECKS
from deploy.verify.report import Status, exit_code, failed, github_annotations, passed, render, skipped
from deploy.verify.sources import Explicit, from_arguments
from tests.support.moto_aws import REGION, MotoAws, moto_aws

POOL_ID = f"{REGION}_AbCdEf123"


def closed_port_url() -> str:
    """A loopback URL nothing listens on (the port was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def run(argv: list[str], **kwargs: object) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = main(argv, out=out, **kwargs)  # type: ignore[arg-type]
    return code, out.getvalue().splitlines()


def test_the_report_has_one_line_per_check_and_the_counts() -> None:
    results = [passed("health", "200"), skipped("sign_in", "no user given"), failed("state_echo_and_chat", "no 'state'")]
    lines = render("http://127.0.0.1:8000", results)
    assert lines[0] == "Verified http://127.0.0.1:8000:"
    assert [line.split()[:2] for line in lines[1:4]] == [["pass", "health"], ["skip", "sign_in"], ["FAIL", "state_echo_and_chat"]]
    assert lines[1].endswith(" 200") and lines[3].endswith("no 'state'")
    assert lines[-1] == "1 passed, 1 failed, 1 skipped"


@pytest.mark.parametrize(
    ("statuses", "code"),
    [((), 0), ((Status.PASSED,), 0), ((Status.PASSED, Status.SKIPPED), 0), ((Status.PASSED, Status.FAILED, Status.SKIPPED), 1)],
)
def test_the_exit_code_is_zero_only_when_nothing_failed(statuses: tuple[Status, ...], code: int) -> None:
    makers = {Status.PASSED: passed, Status.FAILED: failed, Status.SKIPPED: skipped}
    assert exit_code([makers[s](f"check{i}", "why") for i, s in enumerate(statuses)]) == code


def test_an_unreachable_url_fails_the_health_check_in_one_line() -> None:
    code, lines = run(["--url", closed_port_url(), "--check", "health"])
    assert code == 1
    assert lines[1].startswith("FAIL  health") and "got no answer" in lines[1]
    assert lines[-1] == "0 passed, 1 failed, 0 skipped"


def test_checks_without_their_inputs_are_skipped_with_the_reason_and_do_not_fail_the_run() -> None:
    agentcore = [name for name in ALL_CHECKS if name.startswith("agentcore_")]
    browser = ["sign_in", "forged_headers_signed_in", "state_echo_and_chat"]
    argv = ["--url", closed_port_url(), "--agentcore-endpoint", closed_port_url()]  # no keys for it, no user
    code, lines = run([*argv, *(f"--check={name}" for name in [*agentcore, "callback_url_registered", *browser])])
    assert code == 0
    by_name = {line.split()[1]: line for line in lines[1:-2]}
    assert set(by_name) == {*agentcore, "callback_url_registered", *browser}
    assert all(line.startswith("skip") for line in by_name.values())
    assert "--agentcore-endpoint needs --agentcore-access-key-id" in by_name["agentcore_unknown_workload"]
    assert "give --client-id, --callback-url and --consent-issuer" in by_name["callback_url_registered"]
    assert "give --user and --password" in by_name["sign_in"]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MotoAws:
    monkeypatch.setenv("HOME", str(tmp_path))
    return moto_aws()


def test_without_a_url_the_stack_outputs_name_the_agent_and_the_account(aws: MotoAws) -> None:
    url = closed_port_url()
    aws.create_stack("agentcore-ecs-sandbox-services", {"AgentUrl": url + "/", "SignInUserPoolId": POOL_ID})
    callbacks = {"CallbackUrlNotes": "https://callback.example/n", "CallbackUrlTasks": "https://callback.example/t"}
    aws.create_stack("agentcore-ecs-sandbox-agent-identity", callbacks)
    code, lines = run(["--check", "health", "--check", "callback_url_registered"], clients=aws.clients())
    assert code == 1  # nothing listens at the AgentUrl
    assert lines[0] == f"Verified account 123456789012 in {REGION}, {url}/:"
    assert lines[1].startswith("FAIL  health")
    # The first configured provider's credential provider, unless --provider-name names another.
    assert (
        lines[2].startswith("skip  callback_url_registered")
        and "GetOauth2CredentialProvider agentcore-ecs-sandbox-notes failed" in lines[2]
    )


def test_the_callback_check_asks_for_the_providers_own_scopes() -> None:
    """A demo client may ask for its provider's scopes only: the check's authorization request carries them."""
    config = load_config(json.loads((PROJECT_DIR / "cdk.json").read_text())["context"])
    given = Explicit(
        url="http://127.0.0.1:1", client_id="c", callback_url="https://callback.example/t", consent_issuer="https://idp.example"
    )
    target = from_arguments(given, config, None)
    assert target.consent is not None and target.consent.scope == "demo-api/profile.read demo-api/notes.read demo-api/notes.write"
    tasks = from_arguments(Explicit(**{**given.__dict__, "provider_name": "agentcore-ecs-sandbox-tasks"}), config, None)
    assert tasks.provider_name == "agentcore-ecs-sandbox-tasks"
    assert tasks.consent is not None and tasks.consent.scope == "demo-api/tasks.read demo-api/tasks.write"
    explicit = from_arguments(Explicit(**{**given.__dict__, "scope": "openid"}), config, None)
    assert explicit.consent is not None and explicit.consent.scope == "openid"


def test_without_a_url_or_a_deployed_stack_the_run_stops_with_what_to_do(aws: MotoAws, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run([], clients=aws.clients())
    assert code == 2 and lines == []
    assert "not found" in capsys.readouterr().err


def test_strict_fails_on_a_skip_and_github_gets_an_annotation_per_problem() -> None:
    results = [passed("health", "200"), skipped("sign_in", "no user given"), failed("state_echo_and_chat", "no 'state'")]
    assert exit_code(results[:2]) == 0 and exit_code(results[:2], strict=True) == 1
    assert github_annotations(results) == [
        "::warning title=make verify sign_in::no user given",
        "::error title=make verify state_echo_and_chat::no 'state'",
    ]


def test_a_local_url_never_asks_the_environments_aws_account(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without the demo's endpoint, AgentCore checks of a loopback URL are skipped, not sent to AWS."""
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("DEMO_VERIFY_ARGS", str(tmp_path / "absent.args"))
    code, lines = run(["--url", closed_port_url(), "--check", "agentcore_unknown_workload"])
    assert code == 0
    assert lines[1].startswith("skip  agentcore_unknown_workload") and ".demo/verify.args" in lines[1]


def test_the_demo_arguments_apply_only_to_the_demo_url(tmp_path: Path) -> None:
    saved = tmp_path / "verify.args"
    saved.write_text("--url=http://127.0.0.1:8000\n--user=alice\n")
    environ = {"DEMO_VERIFY_ARGS": str(saved)}
    assert with_demo_arguments(["--url", "http://127.0.0.1:8000/"], environ) == [
        "--url=http://127.0.0.1:8000",
        "--user=alice",
        "--url",
        "http://127.0.0.1:8000/",
    ]
    assert with_demo_arguments(["--url", "http://127.0.0.1:9000"], environ) == ["--url", "http://127.0.0.1:9000"]
    assert with_demo_arguments(["--check", "health"], environ) == ["--check", "health"]


def _denied(message: str) -> ClientError:
    return ClientError({"Error": {"Code": "AccessDeniedException", "Message": message}}, "GetResourceOauth2Token")


def test_only_iams_refusal_of_the_caller_is_a_skip() -> None:
    """AgentCore answering AccessDenied about a made-up token is a finding (the agent expects Unauthorized)."""
    iam = _denied("User: arn:aws:sts::111122223333:assumed-role/R/s is not authorized to perform: bedrock-agentcore:GetResourceOauth2Token")
    assert _caller_problem("agentcore_bad_workload_token", iam) == skipped(
        "agentcore_bad_workload_token", "the caller may not make this call (IAM AccessDeniedException): run with credentials that may"
    )
    assert _caller_problem("agentcore_bad_workload_token", _denied("Access denied")) is None
