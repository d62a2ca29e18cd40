"""Fault tests: the whole local stack (`local/demo/stack.py`) with faults injected where AWS can fail.

`open_stack()` lends the test this process's shared stack (`tests/support/shared_stack.py`: the faults the test
injects are taken out after it, its people are accounts no other test used, and what it reads counts from its
start); `open_stack(service_env=..., ...)` starts a stack of the test's own with those settings (about 1.5 s),
stopped after the test, and so does `open_stack(own=True)` for a test that stops a service. People are scripted HTTP clients (`tests/support/person.py`) following the real
redirects and forms; no browser.

What the tests read back, from the test's start:
* the emulator (AgentCore Identity): calls per operation, sessions it marked completed, the vault;
* the services' log files: JSON lines, including the EMF metric lines CloudWatch would ingest.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from local.demo.stack import DemoStack
from local.idp import DemoUser
from tests.support.person import ScriptedPerson, event
from tests.support.shared_stack import Baseline, SharedStack, completed_sessions, lent, people_of, require_oidc_provider

COMPLETE = "CompleteResourceTokenAuth"
GET_TOKEN = "GetResourceOauth2Token"
GET_WORKLOAD_TOKEN = "GetWorkloadAccessTokenForUserId"
DATA_PLANE = (GET_WORKLOAD_TOKEN, GET_TOKEN, COMPLETE)

# What the person reads (services/session_binding/pages.py, services/agent/*.py).
DONE = "Authorization complete"
BUSY = "Your authorization is not lost: reload this page in a few seconds to finish it."
UNCERTAIN = "We could not confirm your authorization"
SIGN_IN_UNCHECKED = "We could not check your sign-in right now"
EXPIRED = "This authorization has expired or was already used"
IDENTITY_BUSY = "The identity service is busy. Please try again in a few seconds; your connected accounts are not affected."


@dataclass
class FaultSite:
    """One running stack, what it had seen when the test began, and the test's people."""

    stack: DemoStack
    people: list[ScriptedPerson] = field(default_factory=list)
    before: Baseline = field(init=False)
    _alice: DemoUser | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.before = Baseline.of(self.stack)

    @property
    def url(self) -> str:
        return self.stack.public_url

    @property
    def alice(self) -> DemoUser:
        """This test's Alice: an account no other test used (taken once per test)."""
        if self._alice is None:
            self._alice = people_of(self.stack).take("alice")
        return self._alice

    def person(self, user: DemoUser) -> ScriptedPerson:
        """A new person, signed in at the agent through the local ALB."""
        person = ScriptedPerson(user.username, user.password)
        self.people.append(person)
        person.open_agent(self.url)
        return person

    # ------------------------------------------------------------------ the emulator and the model

    def calls(self, operation: str) -> int:
        return self.before.calls_since(self.stack, operation)

    def completions(self) -> int:
        """Sessions AgentCore marked completed since the test began: what "recorded exactly once" means."""
        return completed_sessions(self.stack) - self.before.completed_sessions

    def vault(self) -> dict[str, str]:
        return self.before.vault_since(self.stack)

    def wait_for_vault(self, timeout_s: float = 5.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout_s
        while not (vault := self.vault()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return vault

    def model_calls(self) -> int:
        assert self.stack.model is not None
        return self.stack.model.calls - self.before.model_calls

    # ------------------------------------------------------------------ the services' logs

    def log_records(self, service: str) -> list[dict[str, Any]]:
        return self.before.log_records_since(self.stack, service)

    def metric(self, service: str, name: str, **dimensions: str) -> int:
        """Sum of the EMF metric `name` written by `service` whose dimensions include `dimensions`."""
        total = 0
        for record in self.log_records(service):
            if "_aws" in record and name in record and all(record.get(k) == v for k, v in dimensions.items()):
                total += int(record[name])
        return total

    def events(self, service: str, name: str) -> list[dict[str, Any]]:
        return [r for r in self.log_records(service) if r.get("event") == name]

    # ------------------------------------------------------------------ the consent flow

    def close_people(self) -> None:
        for person in self.people:
            person.close()

    def consent_up_to_binding(self, person: ScriptedPerson) -> str:
        """Ask for notes, open the start link, sign in and Allow at the provider; stop right before
        AgentCore's redirect reaches the session binding service. Returns that redirect's URL."""
        start = event(person.chat(self.url, "show my notes"), "authorization_required")["start_url"]
        login = person.follow(self.url + start)
        prompt = person.sign_in_through(login)
        held = person.submit(prompt, button="Allow", stop_before=self.stack.binding_url)
        location = held.headers.get("location", "")
        assert held.status_code in (302, 303) and location.startswith(self.stack.binding_url + "?session_id="), (
            held.status_code,
            location,
            held.text[:500],
        )
        return str(location)


def uses_stored_token(events: list[tuple[str, dict[str, Any]]]) -> bool:
    """The turn ran the notes tool with a token and asked for no consent."""
    kinds = [kind for kind, _ in events]
    results = [data for kind, data in events if kind == "tool_result"]
    return "authorization_required" not in kinds and len(results) == 1 and results[0]["ok"] is True and kinds[-1] == "done"


OpenStack = Callable[..., FaultSite]


@pytest.fixture
def open_stack(shared_stack: SharedStack, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[OpenStack]:
    """`open_stack()`: the shared stack, lent for this test; `open_stack(service_env={...}, ...)`: a stack of the
    test's own with those settings; `open_stack(own=True)`: one of the default settings that the test may break
    (it stops a service). All are given back (or stopped) after the test."""
    require_oidc_provider()
    sites: list[FaultSite] = []
    with contextlib.ExitStack() as after:

        def open_one(*, own: bool = False, **kwargs: Any) -> FaultSite:
            if own or kwargs:
                demo = DemoStack.on_free_ports(log_dir=tmp_path / f"logs-{len(sites)}", **kwargs)
                after.callback(demo.stop)
            else:
                demo = after.enter_context(lent(shared_stack, request))
            site = FaultSite(demo)
            after.callback(site.close_people)
            sites.append(site)
            return site

        yield open_one
