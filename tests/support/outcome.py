"""Whether a test itself failed (its call phase): set by tests/conftest.py's `pytest_runtest_makereport`, read by
the fixtures that lend a shared stack (a failed test's stack is replaced) and photograph pages."""

from __future__ import annotations

import pytest

FAILED = pytest.StashKey[bool]()
