"""People for tests that share one local stack: accounts made in bulk, each handed out to one test only.

A shared stack is started with a pool of accounts (`pool`): `alice-001`, `bob-001`, `alice-002`, ... at both
issuers, with an email address and name of their own and random subs. `People` hands each out once, by role
(the part of the username before the first dash), so a test's Alice is one no earlier test signed in as,
consented as or stored a grant for. A stack of one test's own, started with the demo's accounts (ALICE and
BOB), hands out those two, once each, the same way.
"""

from __future__ import annotations

import uuid
from collections import deque

from local.idp import DemoUser

ROLES = ("alice", "bob")  # who the end-to-end tests need: the person who starts a flow, and another


def account(role: str, serial: int) -> DemoUser:
    """A demo account like ALICE's, numbered: `alice-007`, `alice-007@example.org`, "Alice Example 007"."""
    handle = f"{role}-{serial:03d}"
    return DemoUser(
        username=handle,
        password=f"{handle}-demo-pass",
        email=f"{handle}@example.org",
        name=f"{role.title()} Example {serial:03d}",
        sign_in_sub=str(uuid.uuid4()),
        consent_sub=str(uuid.uuid4()),
    )


def pool(first: int, per_role: int, roles: tuple[str, ...] = ROLES) -> tuple[DemoUser, ...]:
    """`per_role` accounts of each role, numbered from `first`."""
    return tuple(account(role, serial) for serial in range(first, first + per_role) for role in roles)


def role_of(user: DemoUser) -> str:
    return user.username.split("-", 1)[0]


class People:
    """One stack's accounts, each handed out once: `take("alice")` is an Alice nobody took before."""

    def __init__(self, users: tuple[DemoUser, ...]) -> None:
        self._unused: dict[str, deque[DemoUser]] = {}
        for user in users:
            self._unused.setdefault(role_of(user), deque()).append(user)

    def left(self, role: str) -> int:
        return len(self._unused.get(role, ()))

    def take(self, role: str) -> DemoUser:
        unused = self._unused.get(role)
        if not unused:
            raise LookupError(f"this stack has no unused {role!r} account left (roles: {sorted(self._unused)})")
        return unused.popleft()
