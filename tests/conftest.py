"""Fixtures every tier shares: one local DynamoDB server per session, fresh table names, one Chromium per
module, one local stack per session lent to one test after another; no AWS credentials in any test process; and how `make unit` spreads the tests over its xdist workers
(`SynthOnOneWorker`)."""

from __future__ import annotations

import itertools
import logging
import os
import secrets
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Browser
from xdist.scheduler import LoadScopeScheduling

from local.dynamodb import LocalDynamoDB
from tests.support.botocore_models import share_loaders
from tests.support.browsing import chromium
from tests.support.outcome import FAILED

if TYPE_CHECKING:
    from tests.support.shared_stack import SharedStack

# jsii prints a multi-line banner on Node 20; the CDK libraries work on it.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
# Tests never reach AWS: no credentials, no region lookups.
for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
    os.environ.pop(name, None)
SYNTH_MODULE = "tests.stacks.conftest"
# Hundreds of apps per process: each new boto3 session reuses the models already parsed (see the module).
share_loaders()
# werkzeug (moto's server) gives its logger a handler bound to whatever sys.stderr is when it first logs a request,
# unless it has one: under pytest, one test's capture, closed after that test; every later request line then writes
# "--- Logging error ---" into whichever test runs (test_preflight.py checks its stderr is empty). Its request lines
# say nothing here: warnings and errors only, through the root logger (so into the report of the test that ran).
logging.getLogger("werkzeug").setLevel(logging.WARNING)
logging.getLogger("werkzeug").addHandler(logging.NullHandler())


# Modules outside tests/stacks/ that use its in-process `synth` (tests/test_layout.py keeps this list true).
SYNTH_MODULES_ELSEWHERE = ("tests/local/test_tables.py", "tests/security/test_threat_model_gaps.py")
# Modules whose last test checks what its earlier tests recorded in the process: their tests stay on one worker, in order.
IN_ORDER_MODULES = ("tests/security/test_schema_fuzz.py",)
# Modules whose tests share something costly per module (a Chromium: the `browser` fixture, or the `site` built on it;
# a local stack; an IdP): each runs on one worker, so it is started once instead of once per worker.
MODULE_UNITS = (
    "tests/e2e/test_attacks.py",
    "tests/e2e/test_chat_e2e.py",
    "tests/e2e/test_connections.py",
    "tests/e2e/test_flow.py",
    "tests/e2e/test_initiator_attack.py",
    "tests/e2e/test_least_privilege.py",
    "tests/e2e/test_sign_out.py",
    "tests/e2e/test_verify.py",
    "tests/load/test_load.py",
    "tests/load/test_quota.py",
    "tests/local/test_alb.py",
    "tests/local/test_idp.py",
    "tests/services/agent/test_chat_ui.py",
    "tests/services/agent/test_connections_ui.py",
    "tests/services/agent/test_revocation.py",
)
# Modules that take a minute each: started first, so no worker is left with one of them at the end.
LONG_MODULES = ("tests/load/test_load.py", "tests/security/test_open_redirects.py", "tests/load/test_quota.py")


def synth_scope(path: str) -> bool:
    """Whether the test module at `path` (relative to the repository) runs on the one synthesizing worker."""
    return path.startswith("tests/stacks/") or path in SYNTH_MODULES_ELSEWHERE


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The synthesizing tests first, then the long modules, then the modules kept on one worker, then the rest in their
    order (a stable sort of whole modules). `SynthOnOneWorker` hands the units out in this order."""

    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return 0 if synth_scope(path) else 1 if path in LONG_MODULES else 2 if path in (*IN_ORDER_MODULES, *MODULE_UNITS) else 3

    items.sort(key=rank)


class SynthOnOneWorker(LoadScopeScheduling):  # type: ignore[misc]  # xdist's schedulers are untyped
    """`make unit` runs `-n <CPUs + 1> --dist loadgroup`. The tests that synthesize the app in process (`tests/stacks/`
    and the modules using its `synth`, cached per process) go to one worker: every worker would otherwise synthesize
    every configuration again (jsii, seconds each) and run the static-analysis scan again (30 s). The tests of an
    IN_ORDER_MODULES or MODULE_UNITS module go to one worker too. Every other test is a unit of its own, as with
    `--dist load`. The units are handed out in collection order (`pytest_collection_modifyitems`), not xdist's
    largest-first order, so the minute-long modules start at once and no worker is left with one at the end.

    Why not xdist's own `xdist_group` marks: pytest-xdist 3.8 groups by appending `@group` to `item._nodeid`, which
    pytest 9.2 no longer reads (node ids live in `item._id`), so the marks group nothing (pytest-xdist issue #1386;
    the fix, pull request #1388, is not released). Node ids are all the controller sees, hence grouping by path."""

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        config.option.loadscopereorder = False  # xdist's --no-loadscope-reorder: keep the collection order
        super().__init__(config, log)

    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        return "synth" if synth_scope(path) else path if path in (*IN_ORDER_MODULES, *MODULE_UNITS) else nodeid


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # before xdist's own; optional: `-p no:xdist` has no such hook
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadScopeScheduling | None:
    return SynthOnOneWorker(config, log) if config.getvalue("dist") == "loadgroup" else None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember whether the test itself failed: a shared stack it used is replaced (`tests/support/shared_stack.py`)
    and the end-to-end tests photograph every page."""
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


@pytest.fixture(scope="session")
def shared_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedStack]:
    """This process's local stack of the default configuration, lent to one test after another (`lent`)."""
    from tests.support.shared_stack import SharedStack  # imported here: the local stack, only where one is used

    shared = SharedStack(tmp_path_factory.mktemp("shared-stack"))
    try:
        yield shared
    finally:
        shared.discard()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test module (`tests/support/browsing.py`: skipped without one, unless required)."""
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="session")
def local_dynamodb() -> Iterator[LocalDynamoDB]:
    """One local DynamoDB server (dynalite, `local/dynamodb.py`) for the whole pytest session (per
    xdist worker). Tests keep apart by table: each creates its own under a `fresh_table_name`."""
    with LocalDynamoDB() as server:
        yield server


_TABLE_SERIAL = itertools.count(1)


@pytest.fixture
def fresh_table_name() -> Callable[[str], str]:
    """`fresh_table_name("notes")` → a table name no other test in this session uses, e.g. `notes-7-3f9a0c1b2d4e`."""

    def make(prefix: str = "test") -> str:
        return f"{prefix}-{next(_TABLE_SERIAL)}-{secrets.token_hex(6)}"

    return make
