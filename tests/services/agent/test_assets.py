"""The chat UI's files, answered from memory (services/agent/assets.py): the bytes on disk, by name only,
with the same headers as every other answer (`no-store` included)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.agent.assets import ASSETS, STATIC_DIR, load_assets
from tests.services.conftest import ALICE, AgentHarness


@pytest.mark.parametrize("name", sorted(p.name for p in STATIC_DIR.iterdir() if p.is_file()))
def test_every_file_is_served_as_it_is_on_disk(agent: AgentHarness, name: str) -> None:
    answer = agent.browser(ALICE).client.get(f"/static/{name}")
    assert answer.status_code == 200
    assert answer.content == (STATIC_DIR / name).read_bytes()
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["content-type"] == ASSETS[name].media_type
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]


def test_the_pages_are_the_files(agent: AgentHarness) -> None:
    browser = agent.browser(ALICE)
    home = browser.client.get("/", headers=browser.headers())
    assert home.content == (STATIC_DIR / "index.html").read_bytes()
    assert home.headers["content-type"] == "text/html; charset=utf-8"
    signed_out = browser.client.get("/signed-out")
    assert signed_out.content == (STATIC_DIR / "signed-out.html").read_bytes()
    assert signed_out.headers["cache-control"] == "no-store"


def test_head_sends_the_length_and_no_body(agent: AgentHarness) -> None:
    head = agent.browser(ALICE).client.head("/static/app.css")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(ASSETS["app.css"].body))


@pytest.mark.parametrize(
    "path",
    [
        "/static/nothing.js",
        "/static/",
        "/static",
        "/static/../routes.py",
        "/static/%2e%2e/routes.py",
        "/static/..%2Froutes.py",
        "/static/%2E%2E%2F%2E%2E%2Fsettings.py",
        "/static/app.js/",
        "/static/sub/app.js",
    ],
)
def test_only_the_named_files_are_served(agent: AgentHarness, path: str) -> None:
    answer = agent.browser(ALICE).client.get(path)
    assert answer.status_code == 404
    assert "location" not in answer.headers
    assert b"import" not in answer.content


def test_a_file_of_an_unknown_type_fails_start_up(tmp_path: Path) -> None:
    (tmp_path / "app.js").write_text("x")
    assert set(load_assets(tmp_path)) == {"app.js"}
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"notes.txt: no media type for '.txt' files"):
        load_assets(tmp_path)
