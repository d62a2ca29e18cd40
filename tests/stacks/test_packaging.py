"""Images and synth output: pinned, non-root Dockerfiles; identical templates from two synths."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stacks.constructs.fargate_service import ASSET_EXCLUDES, SERVICES_DIR
from tests.stacks.conftest import DEFAULT_CONTEXT, ROOT

SERVICES = ["agent", "session_binding"]


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_is_pinned_non_root_with_exec_form_cmd(service: str) -> None:
    text = (SERVICES_DIR / service / "Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)", text, re.MULTILINE)
    assert base and re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base.group(1))
    assert re.search(r"^USER 10001$", text, re.MULTILINE)
    cmd = re.search(r"^CMD (.+)$", text, re.MULTILINE)
    assert cmd and json.loads(cmd.group(1))[0] == "uvicorn"
    # Dependencies are installed before the code is copied, so code changes reuse the layer.
    assert text.index("pip install") < text.index(f"COPY {service} ")


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
    first = _synth_templates(tmp_path / "one")
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
