"""The GitHub Actions workflows, checked offline: schema, least privilege, no script injection, pinned
actions, OIDC only; plus the shell the workflows run (argument checks, the smoke check) executed here."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from ruamel.yaml import YAML

from cdk_app.config import Profile

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))
SMOKE = ROOT / "tools" / "smoke-check.sh"
AWS_CREDENTIALS_ACTION = "aws-actions/configure-aws-credentials"
PINNED = re.compile(r"^\s*(?:-\s+)?uses:\s+(?P<action>[\w.-]+/[\w.-]+(?:/[\w./-]+)?)@(?P<ref>\S+)(?:\s+#\s+(?P<comment>.*))?$")
PROFILE_EXPRESSION = "${{ inputs.profile || 'sandbox' }}"
BASH = shutil.which("bash") or "/bin/bash"  # what a run: step uses on ubuntu-latest


def _load(path: Path) -> dict[str, Any]:
    data = YAML(typ="safe", pure=True).load(path.read_text())  # YAML 1.2: `on` stays a string key
    assert isinstance(data, dict)
    return data


def _workflow(name: str) -> dict[str, Any]:
    return _load(WORKFLOWS / name)


def _jobs() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path in FILES:
        for job_id, job in _load(path)["jobs"].items():
            yield path.name, job_id, job


def _step(workflow: str, name: str) -> dict[str, Any]:
    steps = [s for job in _workflow(workflow)["jobs"].values() for s in job["steps"] if s.get("name") == name]
    assert len(steps) == 1, f"expected one step named {name!r} in {workflow}"
    return dict(steps[0])


def test_the_three_workflows_exist() -> None:
    assert [p.name for p in FILES] == ["ci.yml", "deploy.yml", "destroy.yml"]


# --------------------------------------------------------------------------- schema


def _schema_check(*paths: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with its vendored copy of SchemaStore's github-workflow schema: no network."""
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, paths)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_workflows_match_the_github_workflow_schema() -> None:
    result = _schema_check(*FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    """Control: a job without runs-on and with a misspelt key fails, so a pass above means something."""
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  build:\n    step:\n      - run: echo hi\n")
    result = _schema_check(broken)
    assert result.returncode != 0
    assert "broken.yml" in result.stdout + result.stderr


# --------------------------------------------------------------------------- least privilege


def test_workflow_default_token_is_read_only() -> None:
    for path in FILES:
        assert _load(path)["permissions"] == {"contents": "read"}, path.name


def test_every_job_sets_its_own_permissions() -> None:
    for workflow, job_id, job in _jobs():
        assert isinstance(job.get("permissions"), dict), f"{workflow}: job {job_id} has no explicit permissions"
        assert job["permissions"].get("contents") == "read", f"{workflow}: job {job_id}"
        granted = {k: v for k, v in job["permissions"].items() if v == "write"}
        assert set(granted) <= {"id-token"}, f"{workflow}: job {job_id} grants {granted}"


def test_id_token_only_where_aws_credentials_are_configured() -> None:
    for workflow, job_id, job in _jobs():
        uses_aws = any(str(s.get("uses", "")).startswith(AWS_CREDENTIALS_ACTION + "@") for s in job["steps"])
        assert (job["permissions"].get("id-token") == "write") is uses_aws, f"{workflow}: job {job_id}"


def test_aws_credentials_come_from_oidc_never_from_stored_keys() -> None:
    for workflow in ("deploy.yml", "destroy.yml"):
        step = _step(workflow, "AWS credentials through GitHub OIDC")
        assert step["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
        assert step["with"]["aws-region"] == "${{ vars.AWS_REGION }}"
        assert step["with"]["role-duration-seconds"] == 3600  # the role's maximum session
        assert not {"aws-access-key-id", "aws-secret-access-key", "aws-session-token"} & set(step["with"])
    for path in FILES:
        text = path.read_text()
        assert "secrets." not in text, f"{path.name} reads a secret: the workflows need none"
        assert "AWS_ACCESS_KEY_ID" not in text and "AWS_SECRET_ACCESS_KEY" not in text, path.name


def test_checkout_does_not_keep_the_token() -> None:
    for workflow, job_id, job in _jobs():
        for step in job["steps"]:
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, f"{workflow}: job {job_id}"


# --------------------------------------------------------------------------- script injection


def _run_scripts() -> Iterator[tuple[str, str, str]]:
    for workflow, job_id, job in _jobs():
        for index, step in enumerate(job["steps"]):
            if "run" in step:
                yield f"{workflow}: job {job_id}, step {step.get('name', index)}", step["run"], step.get("shell", "bash")


def test_no_expression_is_spliced_into_a_script() -> None:
    """Inputs, event fields and variables reach scripts through `env:` only, so no value can become shell code."""
    spliced = [where for where, script, _ in _run_scripts() if "${{" in script]
    assert spliced == []


def test_the_untrusted_contexts_appear_only_in_env_and_with() -> None:
    for path in FILES:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if "${{ inputs." in line or "${{ github.event." in line:
                key = line.strip().split(":", 1)[0]
                assert key in {"PROFILE", "EXTRA_CDK_ARGS", "CONFIRM_INPUT", "group", "name"}, f"{path.name}:{number}: {line.strip()}"


def test_scripts_are_valid_bash() -> None:
    for where, script, shell in _run_scripts():
        assert shell == "bash", where
        result = subprocess.run([BASH, "-n", "-c", script], capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 0, f"{where}: {result.stderr}"


# --------------------------------------------------------------------------- pinned actions


def _uses_lines() -> Iterator[tuple[str, str]]:
    for path in FILES:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if re.match(r"^\s*(?:-\s+)?uses:", line):
                yield f"{path.name}:{number}", line


def test_actions_are_pinned_to_full_commit_shas_with_their_version() -> None:
    lines = list(_uses_lines())
    assert len(lines) >= 10
    for where, line in lines:
        match = PINNED.match(line)
        assert match, f"{where}: unexpected uses line {line.strip()!r}"
        assert re.fullmatch(r"[0-9a-f]{40}", match["ref"]), f"{where}: {match['action']} is not pinned to a commit SHA"
        assert match["comment"] and re.fullmatch(r"v\d+\.\d+\.\d+", match["comment"]), f"{where}: no '# vX.Y.Z' comment"


def test_each_action_has_one_pin_everywhere() -> None:
    pins: dict[str, set[str]] = {}
    for _, line in _uses_lines():
        match = PINNED.match(line)
        assert match
        pins.setdefault(match["action"], set()).add(f"{match['ref']} {match['comment']}")
    assert {action: len(refs) for action, refs in pins.items() if len(refs) > 1} == {}
    assert set(pins) == {
        "actions/cache",
        "actions/checkout",
        "actions/setup-python",
        "actions/setup-node",
        "actions/upload-artifact",
        AWS_CREDENTIALS_ACTION,
    }


def test_the_python_cache_is_uvs_not_pips() -> None:
    """make installs with uv, which never reads pip's cache: each workflow keeps uv's cache and the uv that
    tools/bootstrap-uv.sh installs (the Makefile's UV_BOOTSTRAP_DIR under ~/.cache), keyed on what they hold."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "$(HOME)/.cache)/agentcore-ecs-uv" in makefile
    for name in ("ci.yml", "deploy.yml", "destroy.yml"):
        for job in _workflow(name)["jobs"].values():
            steps = job["steps"]
            python = [s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python@")]
            if not python:
                continue
            assert "cache" not in python[0]["with"], f"{name}: setup-python caches pip's downloads, which uv never uses"
            caches = [s for s in steps if str(s.get("uses", "")).startswith("actions/cache@")]
            assert len(caches) == 1 and steps.index(caches[0]) < next(
                i for i, s in enumerate(steps) if re.search(r"^\s*make\s", str(s.get("run", "")), re.MULTILINE)
            ), name
            assert caches[0]["with"]["path"].split() == ["~/.cache/uv", "~/.cache/agentcore-ecs-uv"], name
            key = caches[0]["with"]["key"]
            assert key.startswith("uv-${{ runner.os }}-${{ runner.arch }}-${{ github.job }}-"), name  # jobs install different things
            assert "hashFiles('Makefile', 'requirements*.txt', 'services/*/requirements.txt')" in key, name
            assert "restore-keys" not in caches[0]["with"], name  # nothing carried over from older keys


# --------------------------------------------------------------------------- what each workflow does


def test_ci_runs_what_ci_run_runs_and_keeps_the_reports() -> None:
    ci = _workflow("ci.yml")
    assert set(ci["on"]) == {"pull_request", "push"}
    assert ci["on"]["push"]["branches"] == ["main"]
    assert "concurrency" in ci
    scripts = [s["run"] for s in ci["jobs"]["test"]["steps"] if "run" in s]
    assert 'make test CHROMIUM="$CHROME"' in scripts
    assert ci["jobs"]["test"]["env"]["CHROME"] == "/usr/bin/google-chrome"
    for line in (ROOT / ".ci" / "run").read_text().splitlines():
        if line.startswith(("make ", "bash ")) and line != "make test":
            assert line in scripts, f".ci/run runs {line!r}; ci.yml does not"
    upload = _step("ci.yml", "Upload cdk.out and the cdk-nag acknowledgements")
    assert upload["with"]["path"].split() == [
        "cdk.out",
        "docs/security/nag-acknowledgements.md",
        "tests/e2e/artifacts",
        "tests/load/artifacts",
    ]
    assert (ROOT / "docs" / "security" / "nag-acknowledgements.md").is_file()


def test_profile_inputs_are_the_config_profiles() -> None:
    profiles = [p.value for p in Profile]
    for workflow in ("deploy.yml", "destroy.yml"):
        profile = _workflow(workflow)["on"]["workflow_dispatch"]["inputs"]["profile"]
        assert profile["type"] == "choice"
        assert profile["options"] == profiles
        assert profile["default"] == "sandbox"


def test_deploy_and_destroy_share_one_lock_and_environment_per_profile() -> None:
    for workflow in ("deploy.yml", "destroy.yml"):
        data = _workflow(workflow)
        assert data["concurrency"] == {"group": "aws-" + PROFILE_EXPRESSION, "cancel-in-progress": False}
        (job,) = data["jobs"].values()
        assert job["environment"]["name"] == PROFILE_EXPRESSION
        assert job["env"]["PROFILE"] == PROFILE_EXPRESSION


def test_push_to_main_deploys_sandbox_then_smoke_checks() -> None:
    deploy = _workflow("deploy.yml")
    assert deploy["on"]["push"]["branches"] == ["main"]
    names = [s.get("name", s.get("uses", "")) for s in deploy["jobs"]["deploy"]["steps"]]
    assert names.index("make deploy") < names.index("Read AgentUrl") < names.index("Smoke check through the ALB")
    assert _step("deploy.yml", "make deploy")["run"] == 'make deploy ARGS="-c profile=$PROFILE $CDK_CONTEXT_ARGS $EXTRA_CDK_ARGS --yes"'
    assert "aws cloudformation describe-stacks" in _step("deploy.yml", "Read AgentUrl")["run"]
    assert _step("deploy.yml", "Smoke check through the ALB")["run"] == 'bash tools/smoke-check.sh "$AGENT_URL"'


def test_after_the_smoke_check_make_verify_runs_from_the_outputs_of_the_same_configuration() -> None:
    steps = _workflow("deploy.yml")["jobs"]["deploy"]["steps"]
    names = [s.get("name", s.get("uses", "")) for s in steps]
    assert names.index("Smoke check through the ALB") < names.index("make verify") == len(names) - 1
    run = _step("deploy.yml", "make verify")["run"]
    # The context the deploy had (so the same stacks are read), without --yes and without a URL: from the outputs.
    assert run == 'make verify ARGS="-c profile=$PROFILE $CDK_CONTEXT_ARGS $EXTRA_CDK_ARGS"'


def test_scheduled_destroy_is_sandbox_only() -> None:
    destroy = _workflow("destroy.yml")
    (schedule,) = destroy["on"]["schedule"]
    assert schedule == {"cron": "0 20 * * *"}
    # A scheduled run has no inputs: the profile expression falls back to sandbox, and prod needs a typed confirmation.
    assert "make destroy" in _step("destroy.yml", "make destroy")["run"]
    assert "CONFIRM_DESTROY_PROD" in _step("destroy.yml", "make destroy")["run"]


# --------------------------------------------------------------------------- the shell, run here


def _run_step(workflow: str, name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = _step(workflow, name)["run"]
    base = {"PATH": os.environ["PATH"], "DEPLOY_ROLE_ARN": "arn:aws:iam::111122223333:role/deploy", "DEPLOY_REGION": "eu-west-1"}
    return subprocess.run([BASH, "-e", "-c", script], env={**base, **env}, capture_output=True, text=True, timeout=30, check=False)


SAFE_ARGS = ["", "-c domain_name=agent.example.org -c hosted_zone_id=Z0123 -c allowed_ingress_cidrs=203.0.113.0/24,198.51.100.0/24"]
UNSAFE_ARGS = ["-c x=1; curl evil.example", "$(id)", "`id`", "-c a=b\nid", "-c a='b'", "-c a=b && id", "-c a=b | id", "-c a=$HOME"]


@pytest.mark.parametrize("workflow", ["deploy.yml", "destroy.yml"])
@pytest.mark.parametrize("value", SAFE_ARGS)
def test_plain_cdk_arguments_pass(workflow: str, value: str) -> None:
    for variable in ("EXTRA_CDK_ARGS", "CDK_CONTEXT_ARGS"):
        result = _run_step(workflow, "Check the inputs and variables", {"PROFILE": "sandbox", variable: value})
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("workflow", ["deploy.yml", "destroy.yml"])
@pytest.mark.parametrize("value", UNSAFE_ARGS)
def test_shell_syntax_in_cdk_arguments_is_refused(workflow: str, value: str) -> None:
    for variable in ("EXTRA_CDK_ARGS", "CDK_CONTEXT_ARGS"):
        result = _run_step(workflow, "Check the inputs and variables", {"PROFILE": "sandbox", variable: value})
        assert result.returncode == 1
        assert f"::error::{variable} may hold only" in result.stdout


@pytest.mark.parametrize("workflow", ["deploy.yml", "destroy.yml"])
def test_missing_role_or_region_is_one_clear_error(workflow: str) -> None:
    result = _run_step(workflow, "Check the inputs and variables", {"PROFILE": "sandbox", "DEPLOY_ROLE_ARN": ""})
    assert result.returncode == 1
    assert "::error::set the variables AWS_DEPLOY_ROLE_ARN and AWS_REGION for the sandbox environment" in result.stdout


def test_destroying_prod_needs_the_typed_confirmation() -> None:
    refused = _run_step("destroy.yml", "Check the inputs and variables", {"PROFILE": "prod", "CONFIRM_INPUT": ""})
    assert refused.returncode == 1
    assert "confirm_prod" in refused.stdout
    confirmed = _run_step("destroy.yml", "Check the inputs and variables", {"PROFILE": "prod", "CONFIRM_INPUT": "agentcore-ecs-prod"})
    assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr


def test_an_unknown_profile_is_refused() -> None:
    result = _run_step("deploy.yml", "Check the inputs and variables", {"PROFILE": "staging"})
    assert result.returncode == 1


class _Alb(BaseHTTPRequestHandler):
    """A stand-in for the deployed ALB on loopback: answers each path as the test says."""

    answers: ClassVar[dict[str, tuple[int, str | None]]] = {}

    def do_GET(self) -> None:
        status, location = self.answers.get(self.path.split("?")[0], (404, None))
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def alb() -> Iterator[tuple[str, dict[str, tuple[int, str | None]]]]:
    answers: dict[str, tuple[int, str | None]] = {}
    handler = type("Alb", (_Alb,), {"answers": answers})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", answers
    finally:
        server.shutdown()
        server.server_close()


COGNITO = (
    "https://agentcore-ecs-sandbox-signin.auth.eu-west-1.amazoncognito.com/oauth2/authorize"
    "?client_id=abc123&redirect_uri=https%3A%2F%2Fagent.example.org%2Foauth2%2Fidpresponse&response_type=code&scope=openid+email&state=xyz"
)


def _smoke(url: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "SMOKE_ATTEMPTS": "2", "SMOKE_DELAY_SECONDS": "0"}
    return subprocess.run([BASH, str(SMOKE), url], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_smoke_check_passes_when_the_alb_guards_the_binding_route(alb: tuple[str, dict[str, tuple[int, str | None]]]) -> None:
    url, answers = alb
    answers.update({"/health": (200, None), "/oauth2/session-binding": (302, COGNITO)})
    result = _smoke(url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: GET /health answered 200" in result.stdout
    assert "redirected to Cognito sign-in" in result.stdout


@pytest.mark.parametrize(
    ("health", "binding", "expected"),
    [
        ((503, None), (302, COGNITO), "answered 503, expected 200"),
        ((200, None), (200, None), "answered 200 (no redirect)"),  # the service itself answered: no sign-in in front
        ((200, None), (400, None), "answered 400"),
        ((200, None), (302, "https://evil.example/oauth2/authorize?client_id=x"), "https://evil.example"),
        ((200, None), (302, "https://agent.example.org/"), "expected the ALB's 302 to the Cognito sign-in page"),
    ],
)
def test_smoke_check_fails_otherwise(
    alb: tuple[str, dict[str, tuple[int, str | None]]], health: tuple[int, str | None], binding: tuple[int, str | None], expected: str
) -> None:
    url, answers = alb
    answers.update({"/health": health, "/oauth2/session-binding": binding})
    result = _smoke(url)
    assert result.returncode == 1
    assert expected in result.stderr


def test_smoke_check_reports_an_unreachable_url() -> None:
    result = _smoke("http://127.0.0.1:9/")  # discard port: nothing listens
    assert result.returncode == 1
    assert "expected 200" in result.stderr
