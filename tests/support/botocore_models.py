"""One botocore data loader per test process, so a new boto3 session does not parse the service models again.

The services build one boto3 session per process, as they should; the tests build hundreds of apps
in one process, and each new session re-reads and re-parses the JSON models (endpoints, partitions,
the service model: about 0.1-0.3 s of CPU per client). botocore already shares one loader, and the
parsed models it caches, between every client of one session; `share_loaders()` extends that to
every session of the test process. Nothing about requests, signing or endpoints changes: the same
files are read, once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import botocore.loaders
import botocore.session


class _UniquePaths(list[str]):
    """A search path that ignores a path it already has: each boto3 session appends its data folder."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)

    def extend(self, paths: Iterable[str]) -> None:
        for path in paths:
            self.append(path)

    def insert(self, index: Any, path: str) -> None:
        if path not in self:
            super().insert(index, path)


_LOADERS: dict[str | None, botocore.loaders.Loader] = {}
_ORIGINAL = botocore.loaders.create_loader


def _shared_loader(search_path_string: str | None = None) -> botocore.loaders.Loader:
    loader = _LOADERS.get(search_path_string)
    if loader is None:
        loader = _ORIGINAL(search_path_string)
        loader._search_paths = _UniquePaths(loader.search_paths)  # the list each boto3 session appends to
        _LOADERS[search_path_string] = loader
    return loader


def share_loaders() -> None:
    """Every botocore session created from now on in this process uses the shared loader for its data path."""
    botocore.session.create_loader = _shared_loader
