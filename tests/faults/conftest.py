"""Fault tests: the whole local stack (`local/demo/stack.py`) with faults injected where AWS can fail.

Each test opens a fresh stack on free loopback ports (about 1.5 s), so one test's faults, consents
and cached keys never reach another. People are scripted HTTP clients (`tests/support/person.py`)
following the real redirects and forms; no browser.

What the tests read back:
* the emulator (AgentCore Identity): calls per operation, sessions it marked completed, the vault;
* the services' log files: JSON lines, including the EMF metric lines CloudWatch would ingest.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from local.demo.stack import DemoStack
from local.idp import OIDC_PROVIDER_DIR, DemoUser
from tests.support.person import ScriptedPerson, event

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
    """One running stack and the people using it."""

    stack: DemoStack
    people: list[ScriptedPerson] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.stack.public_url

    def person(self, user: DemoUser) -> ScriptedPerson:
        """A new person, signed in at the agent through the local ALB."""
        person = ScriptedPerson(user.username, user.password)
        self.people.append(person)
        person.open_agent(self.url)
        return person

    # ------------------------------------------------------------------ the emulator

    def calls(self, operation: str) -> int:
        return self.stack.emulator.count(operation)

    def completions(self) -> int:
        """Sessions AgentCore marked completed: what "recorded exactly once" means."""
        service = self.stack.emulator.service
        with service.lock:
            return sum(1 for session in service.sessions.values() if session.completed)

    def vault(self) -> dict[str, str]:
        return self.stack.emulator.vault_snapshot()

    def wait_for_vault(self, timeout_s: float = 5.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout_s
        while not (vault := self.vault()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return vault

    # ------------------------------------------------------------------ the services' logs

    def log_records(self, service: str) -> list[dict[str, Any]]:
        return list(self.stack.log_lines(service))

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
        )
        return str(location)


def uses_stored_token(events: list[tuple[str, dict[str, Any]]]) -> bool:
    """The turn ran the notes tool with a token and asked for no consent."""
    kinds = [kind for kind, _ in events]
    results = [data for kind, data in events if kind == "tool_result"]
    return "authorization_required" not in kinds and len(results) == 1 and results[0]["ok"] is True and kinds[-1] == "done"


OpenStack = Callable[..., FaultSite]


@pytest.fixture
def open_stack(tmp_path: Path) -> Iterator[OpenStack]:
    """`open_stack(service_env={...}, session_ttl_s=...)` starts a stack; all are stopped after the test."""
    if not OIDC_PROVIDER_DIR.is_dir():
        message = "node_modules/oidc-provider is missing (make install runs npm ci)"
        if os.environ.get("REQUIRE_NODE_IDP"):
            pytest.fail(message)
        pytest.skip(message)
    sites: list[FaultSite] = []

    def open_one(**kwargs: Any) -> FaultSite:
        log_dir = tmp_path / f"logs-{len(sites)}"
        site = FaultSite(DemoStack.on_free_ports(log_dir=log_dir, **kwargs))
        sites.append(site)
        return site

    try:
        yield open_one
    finally:
        for site in sites:
            for person in site.people:
                person.close()
            site.stack.stop()
