"""The quota test's driver: people who take each step of the consent flow at the same moment, and what the
AgentCore Identity emulator saw of it (attempts per logical call, throttled calls, retry spacing).

A person takes a step (ask the agent, consent at the provider, land on the binding page, use the tool)
and reads the answer as a person would: the answer they wanted, or "busy, try again in a few seconds"
(then they try again in the next round, after `PERSON_WAIT_S`), or anything else, which fails the test
on the spot. Everyone still busy tries again together, so every round is a burst at the quota.
"""

from __future__ import annotations

import statistics
import time
import urllib.parse
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from local.agentcore_identity import Call
from local.demo.stack import DemoStack
from local.idp import DemoUser
from tests.support.person import ScriptedPerson

DONE = "Authorization complete"
BUSY_PAGE = "Your authorization is not lost: reload this page in a few seconds to finish it."
IDENTITY_BUSY = "The identity service is busy. Please try again in a few seconds; your connected accounts are not affected."
NOTES_ANSWER = "You have no notes yet"
MAX_ROUNDS = 12
# The operations the services call on AgentCore's data plane; a recorded call names GetResourceOauth2Token "token".
DATA_PLANE = {
    "GetWorkloadAccessTokenForUserId": "GetWorkloadAccessTokenForUserId",
    "token": "GetResourceOauth2Token",
    "CompleteResourceTokenAuth": "CompleteResourceTokenAuth",
}


class Unexpected(AssertionError):
    """A person saw something other than the answer they wanted or "busy, try again"."""


@dataclass
class Person:
    user: DemoUser
    browser: ScriptedPerson
    start_url: str = ""
    landing: str = ""
    consented: bool = False  # the binding page said "Authorization complete"
    prompts: int = 0  # consent prompts the agent showed this person
    busy: Counter[str] = field(default_factory=Counter)  # "busy, try again" answers, by step
    chats: int = 0

    @property
    def flow(self) -> str:
        """The start link's flow token: what the chat page sends as `after_consent` when it comes back."""
        return urllib.parse.parse_qs(urllib.parse.urlsplit(self.start_url).query)["flow"][0]


def sdk_request(call: Call) -> dict[str, str]:
    """botocore's `amz-sdk-request` header of one attempt: `attempt`, `max` and, on retries, `ttl`."""
    parts = (part.strip().split("=", 1) for part in call.headers.get("amz-sdk-request", "").split(";") if "=" in part)
    return dict((key, value) for key, value in parts)


def events_of(kind: str, events: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [data for name, data in events if name == kind]


class QuotaRun:
    """The people of one run against one stack, taking steps in rounds."""

    def __init__(self, stack: DemoStack, users: Sequence[DemoUser], *, person_wait_s: float) -> None:
        self.stack, self.url, self.person_wait_s = stack, stack.public_url, person_wait_s
        self.people = [Person(user, ScriptedPerson(user.username, user.password, timeout_s=60)) for user in users]
        self.rounds: dict[str, int] = {}
        self.elapsed_s: dict[str, float] = {}

    def close(self) -> None:
        for person in self.people:
            person.browser.close()

    def in_rounds(self, name: str, people: Sequence[Person], step: Callable[[Person], bool]) -> None:
        """Everyone takes `step` at once; whoever was told "busy" waits `person_wait_s` and tries again with the
        others still busy, for at most MAX_ROUNDS rounds."""
        pending, started = list(people), time.perf_counter()
        for round_number in range(1, MAX_ROUNDS + 1):
            with ThreadPoolExecutor(max_workers=len(pending), thread_name_prefix=name) as pool:
                done = list(pool.map(step, pending))
            pending = [person for person, ok in zip(pending, done, strict=True) if not ok]
            if not pending:
                self.rounds[name], self.elapsed_s[name] = round_number, round(time.perf_counter() - started, 2)
                return
            time.sleep(self.person_wait_s)  # the person waits as told before trying again; there is nothing to await
        raise AssertionError(f"{name}: {len(pending)} people still told busy after {MAX_ROUNDS} rounds")

    # ------------------------------------------------------------------ steps, as a person reads them

    def sign_in(self, person: Person) -> bool:
        person.browser.open_agent(self.url)
        return True

    def chat(self, person: Person, step: str, *, after_consent: str | None = None) -> list[tuple[str, dict[str, Any]]] | None:
        """One chat turn; None when the agent said the identity service is busy (and nothing else)."""
        events = person.browser.chat(self.url, "show my notes", after_consent=after_consent)
        person.chats += 1
        prompts = events_of("authorization_required", events)
        person.prompts += len(prompts)
        if prompts and person.consented:
            raise Unexpected(f"{person.user.username} consented, then was asked again: {events}")
        errors = events_of("error", events)
        if errors:
            if errors != [{"code": "identity_unavailable", "message": IDENTITY_BUSY}] or [k for k, _ in events][-1] != "done":
                raise Unexpected(f"{person.user.username}: {events}")
            person.busy[step] += 1
            return None
        return events

    def ask(self, person: Person) -> bool:
        """Ask for the notes before any consent: the agent offers a consent link, or is busy."""
        events = self.chat(person, "ask")
        if events is None:
            return False
        [prompt] = events_of("authorization_required", events)
        person.start_url = self.url + prompt["start_url"]
        return True

    def consent(self, person: Person) -> bool:
        """Open the link, sign in and Allow at the provider; held right before the binding page."""
        login = person.browser.follow(person.start_url)
        consent_page = person.browser.sign_in_through(login)
        held = person.browser.submit(consent_page, button="Allow", stop_before=self.stack.binding_url)
        person.landing = held.headers.get("location", "")
        if held.status_code != 302 or not person.landing.startswith(self.stack.binding_url + "?session_id="):
            raise Unexpected(f"{person.user.username}: consent did not come back: {held.status_code} {person.landing}")
        return True

    def land(self, person: Person) -> bool:
        """The binding page (first load or a reload): complete, or busy with Retry-After."""
        page = person.browser.follow(person.landing)
        if page.status_code == 200 and DONE in page.text:
            person.consented = True
            return True
        if page.status_code == 503 and BUSY_PAGE in page.text and page.headers.get("retry-after") == "5":
            person.busy["land"] += 1
            return False
        raise Unexpected(f"{person.user.username}: binding answered {page.status_code}: {page.text[:300]}")

    def use(self, person: Person) -> bool:
        """Back at the agent: the chat page replays the request with `after_consent`; a retry is a new request."""
        events = self.chat(person, "use", after_consent=person.flow if not person.busy["use"] else None)
        if events is None:
            return False
        results = events_of("tool_result", events)
        if len(results) != 1 or results[0]["ok"] is not True or NOTES_ANSWER not in str(events):
            raise Unexpected(f"{person.user.username}: the stored grant was not used: {events}")
        return True


# ------------------------------------------------------------------ what the emulator saw


def invocations(calls: Sequence[Call]) -> dict[tuple[str, str], list[Call]]:
    """Data-plane attempts grouped into logical calls: (operation, botocore's amz-sdk-invocation-id)."""
    grouped: dict[tuple[str, str], list[Call]] = defaultdict(list)
    for call in calls:
        if call.operation in DATA_PLANE:
            grouped[(DATA_PLANE[call.operation], call.headers.get("amz-sdk-invocation-id", ""))].append(call)
    return grouped


def first_retry_delays(grouped: dict[tuple[str, str], list[Call]]) -> list[float]:
    """For each logical call that was retried: seconds from its first attempt's arrival to its second's."""
    return [attempts[1].received_at - attempts[0].received_at for attempts in grouped.values() if len(attempts) > 1]


def peak_demand(calls: Sequence[Call], operation: str) -> int:
    """The most first attempts of `operation` that arrived within any one second: the offered rate at its peak."""
    times = sorted(c.received_at for c in calls if DATA_PLANE.get(c.operation) == operation and sdk_request(c).get("attempt") == "1")
    peak, low = 0, 0
    for high, now in enumerate(times):
        while times[low] <= now - 1.0:
            low += 1
        peak = max(peak, high - low + 1)
    return peak


def figures(run: QuotaRun, grouped: dict[tuple[str, str], list[Call]], quotas: dict[str, float]) -> dict[str, Any]:
    """What the run did, per operation and per step, for the report."""
    emulator, delays = run.stack.emulator, first_retry_delays(grouped)
    per_operation = {}
    for operation, tps in quotas.items():
        logical = [attempts for (op, _), attempts in grouped.items() if op == operation]
        per_operation[operation] = {
            "quota_tps": tps,
            "attempts": sum(len(a) for a in logical),
            "throttled": emulator.quotas.throttled[operation],
            "logical_calls": len(logical),
            "attempts_per_logical_call": dict(sorted(Counter(len(a) for a in logical).items())),
            "peak_first_attempts_in_1s": peak_demand(emulator.calls, operation),
        }
    return {
        "people": len(run.people),
        "rounds": run.rounds,
        "elapsed_s": run.elapsed_s,
        "busy_answers": dict(sum((p.busy for p in run.people), Counter())),
        "operations": per_operation,
        "first_retry_delay_s": {
            "count": len(delays),
            "min": round(min(delays, default=0.0), 3),
            "median": round(statistics.median(delays), 3) if delays else 0.0,
            "max": round(max(delays, default=0.0), 3),
        },
    }
