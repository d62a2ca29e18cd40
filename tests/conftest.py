"""Fixtures every tier shares: one local DynamoDB server per session, fresh table names, one Chromium per
module; and no AWS credentials in any test process."""

import itertools
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from local.dynamodb import LocalDynamoDB
from tests.support.botocore_models import share_loaders
from tests.support.browsing import chromium

# jsii prints a multi-line banner on Node 20; the CDK libraries work on it.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
# Tests never reach AWS: no credentials, no region lookups.
for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
    os.environ.pop(name, None)
SYNTH_TIER = Path(__file__).parent / "stacks"
SYNTH_MODULE = "tests.stacks.conftest"
# Hundreds of apps per process: each new boto3 session reuses the models already parsed (see the module).
share_loaders()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under xdist (`make unit` runs `-n logical --dist loadgroup`), the tests that synthesize the app in process
    stay on one worker: each worker would otherwise synthesize every configuration again (jsii, seconds each).
    They are `tests/stacks/` and any module using its `synth` (cached per process)."""
    for item in items:
        module = getattr(item, "module", None)
        uses_synth = module is not None and any(getattr(value, "__module__", None) == SYNTH_MODULE for value in vars(module).values())
        if item.path.is_relative_to(SYNTH_TIER) or uses_synth:
            item.add_marker(pytest.mark.xdist_group("synth"))


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
