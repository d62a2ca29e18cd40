"""Images and synth output: one pinned Dockerfile (non-root Fargate stage, Lambda stage), each service built from
its own stage and requirements; identical templates from two synths."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from stacks.constructs.service_image import ASSET_EXCLUDES, SERVICES_DIR
from tests.stacks.conftest import DEFAULT_CONTEXT, ROOT, Synth, dockerfile_stage, image_assets, one, resources, synth

SERVICES = ["agent", "session_binding"]
ON_LAMBDA = (("binding_compute", "lambda"),)


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_is_pinned_non_root_with_exec_form_cmd(service: str, demo: Synth) -> None:
    [image] = [i for i in image_assets(Path(demo.app.synth().directory)) if i["dockerBuildArgs"] == {"SERVICE": service}]
    assert (image["dockerFile"], image["dockerBuildTarget"]) == ("Dockerfile", "fargate")
    text = dockerfile_stage("fargate")
    base = re.search(r"^FROM (\S+)", text, re.MULTILINE)
    assert base and re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base.group(1))
    assert re.search(r"^USER 10001$", text, re.MULTILINE)
    cmd = re.search(r"^CMD (.+)$", text, re.MULTILINE)
    assert cmd and json.loads(cmd.group(1))[0] == "uvicorn"
    # uvicorn takes its app from UVICORN_APP: the service's own `app`, whose module is in the image.
    assert "UVICORN_APP=services.${SERVICE}.main:app" in text and "COPY ${SERVICE} /app/services/${SERVICE}" in text
    assert (SERVICES_DIR / service / "main.py").is_file()
    # Dependencies are installed before the code is copied, so code changes reuse the layer.
    assert text.index("COPY ${SERVICE}/requirements.txt ") < text.index("pip install") < text.index("COPY ${SERVICE} ")


def test_targets_keep_idle_connections_open_longer_than_the_load_balancer(demo: Synth) -> None:
    """The ALB must close an idle target connection first, or a request it sends as the target closes gets a 502."""
    from cdk_app.routes import IDLE_TIMEOUT_S, TARGET_KEEP_ALIVE_S

    cmd = re.search(r"^CMD (.+)$", dockerfile_stage("fargate"), re.MULTILINE)
    assert cmd
    argv = json.loads(cmd.group(1))
    keep_alive = int(argv[argv.index("--timeout-keep-alive") + 1])
    assert keep_alive == TARGET_KEEP_ALIVE_S > IDLE_TIMEOUT_S
    balancer = one(demo.raw("services"), "AWS::ElasticLoadBalancingV2::LoadBalancer")
    attributes = {a["Key"]: a["Value"] for a in balancer["Properties"]["LoadBalancerAttributes"]}
    assert attributes["idle_timeout.timeout_seconds"] == str(IDLE_TIMEOUT_S)


def test_uvicorn_reads_its_app_from_uvicorn_app() -> None:
    """The Fargate CMD names no app: uvicorn's APP argument must come from the environment variable."""
    from uvicorn.main import main as uvicorn_main

    [app_argument] = [p for p in uvicorn_main.params if p.name == "app"]
    assert app_argument.envvar == "UVICORN_APP"


def test_lambda_images_use_their_stage_and_have_no_image_config() -> None:
    """The handler is the image's own fixed CMD: no function overrides it (no ImageConfig in the template)."""
    on_lambda = synth(ON_LAMBDA)
    images = image_assets(Path(on_lambda.app.synth().directory))
    assert sorted((i["dockerBuildArgs"]["SERVICE"], i["dockerBuildTarget"]) for i in images) == [
        ("agent", "fargate"),
        ("demo_api", "lambda"),
        ("session_binding", "lambda"),
    ]
    functions = [
        f for f in resources(on_lambda.raw("services"), "AWS::Lambda::Function").values() if f["Properties"].get("PackageType") == "Image"
    ]
    assert len(functions) == 2
    assert not [f for f in functions if "ImageConfig" in f["Properties"]]
    cmd = re.search(r"^CMD (.+)$", dockerfile_stage("lambda"), re.MULTILINE)
    assert cmd and json.loads(cmd.group(1)) == ["services.lambda_entry.handler"]


def test_lambda_entry_runs_the_handler_of_the_service_baked_into_the_image(monkeypatch: pytest.MonkeyPatch) -> None:
    """services/lambda_entry.py hands Lambda `services.<APP_SERVICE>.main.handler`; the lambda stage sets APP_SERVICE."""
    handler = object()
    fake = types.ModuleType("services.packaging_probe.main")
    setattr(fake, "handler", handler)  # noqa: B010
    monkeypatch.setitem(sys.modules, "services.packaging_probe.main", fake)
    monkeypatch.setenv("APP_SERVICE", "packaging_probe")
    monkeypatch.delitem(sys.modules, "services.lambda_entry", raising=False)
    try:
        entry = importlib.import_module("services.lambda_entry")
        assert entry.handler is handler
        assert entry.SERVICE_VARIABLE == "APP_SERVICE"
    finally:
        sys.modules.pop("services.lambda_entry", None)
    assert "APP_SERVICE=${SERVICE}" in dockerfile_stage("lambda")


@pytest.mark.parametrize("service", SERVICES)
def test_service_requirements_are_pinned(service: str) -> None:
    lines = [line for line in (SERVICES_DIR / service / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert lines and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][\w.]*", line) for line in lines)


def test_asset_excludes_cover_caches() -> None:
    assert {"**/__pycache__", "**/*.pyc", "**/.pytest_cache"} <= set(ASSET_EXCLUDES)


def _synth_templates(outdir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps(DEFAULT_CONTEXT),
        "CDK_OUTDIR": str(outdir),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    return {p.name: p.read_text() for p in sorted(outdir.glob("*.template.json"))}


def test_two_synths_give_identical_templates(tmp_path: Path) -> None:
    """`app.py` in a fresh process gives the templates of the in-process synth the other tests read (made once
    per test process, usually earlier in this run)."""
    first = {p.name: p.read_text() for p in sorted(Path(synth().app.synth().directory).glob("*.template.json"))}
    # Python caches appearing in services/ between synths must not change the image asset hash.
    cache = SERVICES_DIR / "agent" / "__pycache__" / "synth-determinism.pyc"
    cache.parent.mkdir(exist_ok=True)
    cache.write_bytes(b"not part of the image")
    try:
        second = _synth_templates(tmp_path / "two")
    finally:
        cache.unlink()
    assert len(first) == 4
    assert first == second
