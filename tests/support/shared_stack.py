"""One local stack (`local/demo/stack.py`) lent to one test after another, in each pytest process.

A stack takes about 2 s (2.4 s of CPU) to start, so each process (each xdist worker) starts one of the default
configuration when a test first asks for it (the `shared_stack` fixture in tests/conftest.py: the end-to-end tests'
`stack` and the fault tests' `open_stack()` without settings both borrow it), and stops it at the end of the session.
Tests keep apart by people instead of by stack:

* the stack knows a pool of accounts (`tests/support/people.py`); each test takes accounts no earlier test used,
  so another test's consent, the provider's memory of an Allow, the agent's token cache, connected accounts, notes
  and vault grants all belong to other people;
* a test reads counts, the vault and log lines from its own start (`Baseline`);
* what a test changes is put back after it (`restored`): the emulator's clock, session lifetime, faults and quotas,
  the ALB key endpoint's faults, the model's script; each test checks IAM against principals of its own (the same
  keys, its own record of decisions); a test that needs the services to meet an ALB key they have not cached
  rotates the key (`DemoStack.rotate_alb_key`), as an ALB does;
* a stack that a test leaves with a service exited or not answering its health probe, or that a failed test used,
  is stopped, and the next test gets a fresh one (a passing test that left it unhealthy gets a warning, a failed
  one the folder of the stack's logs); so does a test that finds the pool used up.

A module that needs another configuration shares a stack of its own between its tests the same way (`SharedStack`
with other settings, `lent`).
"""

from __future__ import annotations

import contextlib
import os
import urllib.error
import urllib.request
import warnings
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from local.demo.stack import SERVICE_APPS, DemoStack
from local.idp import OIDC_PROVIDER_DIR
from tests.support.outcome import FAILED
from tests.support.people import ROLES, People, pool

SESSION_TTL_S = 600
PEOPLE_PER_ROLE = 32  # more Alices (and Bobs) than tests share a stack in one process: a pool lasts the session
HEALTH_TIMEOUT_S = 5.0


def require_oidc_provider() -> None:
    if not OIDC_PROVIDER_DIR.is_dir():
        message = "node_modules/oidc-provider is missing (make install runs npm ci)"
        if os.environ.get("REQUIRE_CHROMIUM") or os.environ.get("REQUIRE_NODE_IDP"):
            pytest.fail(message)
        pytest.skip(message)


_PEOPLE: weakref.WeakKeyDictionary[DemoStack, People] = weakref.WeakKeyDictionary()


def people_of(stack: DemoStack) -> People:
    """The accounts of `stack` that no test has taken yet (kept as long as the stack is)."""
    if stack not in _PEOPLE:
        _PEOPLE[stack] = People(stack.users)
    return _PEOPLE[stack]


def health_problem(stack: DemoStack) -> str | None:
    """Why `stack` cannot serve another test (a process ended, a server does not answer), or None."""
    if exited := stack.exited():
        return "exited: " + ", ".join(exited)
    if not stack.dynamodb.running:
        return "the local DynamoDB is not running"
    probes = (
        stack.public_url + "/health",  # the local ALB, and the agent behind it
        *(stack.service_url(name) + "/health" for name in SERVICE_APPS),
        stack.sign_in_issuer + "/.well-known/openid-configuration",
        stack.consent_issuer + "/.well-known/openid-configuration",
        stack.emulator.base_url + "/ping",
    )
    for url in probes:
        try:
            with urllib.request.urlopen(url, timeout=HEALTH_TIMEOUT_S) as response:  # noqa: S310 - loopback
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError as exc:
            return f"{url}: {exc}"
        if status != 200:
            return f"{url} answered {status}"
    return None


class SharedStack:
    """A stack lent to one test after another (this process's of the default configuration, or one of another
    configuration given by `stack_kwargs`), with a pool of accounts: started when a test first needs it, and
    replaced when it cannot serve the next test (unhealthy, or every Alice or Bob taken)."""

    def __init__(self, log_root: Path, **stack_kwargs: Any) -> None:
        self.log_root = log_root
        self.stack_kwargs = stack_kwargs
        self.current: DemoStack | None = None
        self.started = 0
        self._first_account = 1  # accounts are numbered on across stacks: a name is never seen twice in a process

    def get(self) -> DemoStack:
        # The full health probe ran when the last test ended (`lent`); here what can change while other tests run: a
        # process that ended, the pool used up, and the stack's client secrets, which live in this process's moto
        # state: the tests of tests/deploy reset moto before each test, and without its secrets no code exchange works.
        if self.current is not None and not self._can_serve(self.current):
            self.discard()
        if self.current is None:
            users = pool(self._first_account, PEOPLE_PER_ROLE)
            self._first_account += PEOPLE_PER_ROLE
            self.started += 1
            log_dir = self.log_root / f"stack-{self.started}"
            self.current = DemoStack.on_free_ports(log_dir=log_dir, session_ttl_s=SESSION_TTL_S, users=users, **self.stack_kwargs)
        return self.current

    @staticmethod
    def _can_serve(stack: DemoStack) -> bool:
        if min(people_of(stack).left(r) for r in ROLES) == 0 or stack.exited():
            return False
        try:
            return not stack.secrets_manager.missing()
        except Exception:  # a stack whose secrets cannot even be looked up cannot serve either
            return False

    def discard(self) -> None:
        stack, self.current = self.current, None
        if stack is not None:
            stack.stop()


@contextlib.contextmanager
def restored(stack: DemoStack) -> Iterator[None]:
    """What a test changes in the stand-ins is put back after it: the emulator's clock, session lifetime, faults
    and quotas; the ALB key endpoint's faults; the model's script. IAM: the test gets principals of its own (the
    same keys, its own record of decisions, which `test_least_privilege.py` reads), and the stack's come back
    after it."""
    emulator, service = stack.emulator, stack.emulator.service
    offset, ttl, slow, principals = service.offset_s, service.settings.session_ttl_s, emulator.slow_s, stack.principals
    kid = stack.alb_key.kid
    if principals is not None:
        stack.use_principals(principals.fresh())
    try:
        yield
    finally:
        service.advance_clock(offset - service.offset_s)
        service.settings.session_ttl_s = ttl
        emulator.slow_s = slow
        emulator.faults.clear()  # the shared stack starts with no faults and no quotas
        emulator.quotas.clear()
        keys = stack.key_server
        keys.status, keys.delay_s, keys.drip_s = None, 0.0, 0.0
        if stack.alb_key.kid != kid:
            # The services may remember the test's key as unknown (a 404 is remembered for a minute): the next
            # test gets a key they have no verdict on.
            stack.rotate_alb_key()
        if stack.model is not None:
            stack.model.script = []
        if principals is not None:
            stack.use_principals(principals)


@contextlib.contextmanager
def lent(shared: SharedStack, request: pytest.FixtureRequest) -> Iterator[DemoStack]:
    """`shared`'s stack for this test: put back as it was after it, and replaced if the test failed or left it unhealthy."""
    demo = shared.get()
    try:
        with restored(demo):
            yield demo
    finally:
        # A failed test may leave requests in flight that the next test's counts would see.
        failed, problem = request.node.stash.get(FAILED, False), health_problem(demo)
        if failed:
            print(f"the shared stack's logs (earlier tests' lines first): {demo.log_dir}")
        elif problem:
            warnings.warn(f"the test passed but left the shared stack unhealthy ({problem}); the next test gets a new one", stacklevel=1)
        if failed or problem:
            shared.discard()


@dataclass(frozen=True)
class Baseline:
    """What a stack had seen when a test began: a test's views of the stack count from here."""

    calls: dict[str, int]
    completed_sessions: int
    vault: dict[str, str]
    token_requests: dict[tuple[str, str], int]
    log_sizes: dict[str, int]
    model_calls: int

    @classmethod
    def of(cls, stack: DemoStack) -> Baseline:
        return cls(
            calls=stack.emulator.stats(),
            completed_sessions=completed_sessions(stack),
            vault=stack.emulator.vault_snapshot(),
            token_requests=token_requests(stack),
            log_sizes={name: stack.log_size(name) for name in stack.services},
            model_calls=stack.model.calls if stack.model is not None else 0,
        )

    def calls_since(self, stack: DemoStack, operation: str) -> int:
        """The emulator's calls of `operation` (an AWS operation name) since the test began."""
        return stack.emulator.count(operation) - self.calls.get(operation, 0)

    def vault_since(self, stack: DemoStack) -> dict[str, str]:
        """The vault's entries added or changed since the test began: `workload|user|provider|scopes` -> token digest."""
        return {key: digest for key, digest in stack.emulator.vault_snapshot().items() if self.vault.get(key) != digest}

    def token_requests_since(self, stack: DemoStack) -> dict[tuple[str, str], int]:
        """Requests the emulator sent to token endpoints since the test began, by (provider, client authentication)."""
        before = self.token_requests
        return {key: count - before.get(key, 0) for key, count in token_requests(stack).items() if count != before.get(key, 0)}

    def log_records_since(self, stack: DemoStack, service: str) -> list[dict[str, Any]]:
        """The JSON records `service` logged since the test began."""
        return list(stack.log_lines(service, since=self.log_sizes.get(service, 0)))


def completed_sessions(stack: DemoStack) -> int:
    service = stack.emulator.service
    with service.lock:
        return sum(1 for session in service.sessions.values() if session.completed)


def token_requests(stack: DemoStack) -> dict[tuple[str, str], int]:
    service = stack.emulator.service
    with service.lock:
        return dict(service.token_requests)
