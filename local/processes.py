"""What the local stack's child processes share: they end when the process that started them ends, and
they are stopped the same way (SIGTERM, a wait, then SIGKILL).

Used by `local/demo/stack.py` for the service processes and by `local/dynamodb.py` for dynalite.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
from typing import Any

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _load_prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()  # looked up here, in the parent: the child only calls it


def die_with_parent() -> None:
    """A `preexec_fn`: in the child, before exec, on Linux, SIGTERM when the thread that started it ends
    (the main thread, for `make demo` and the tests: when the process dies, even by SIGKILL), so a
    killed run leaves no child running. Elsewhere: nothing. One C call, resolved before the fork: no
    locks, no imports in the child."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)


def stop_process(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM, wait up to `timeout_s` for it to exit, then SIGKILL."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
