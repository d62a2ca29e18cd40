"""The load test's driver: many people through the whole consent flow at once, attackers among them.

Each legitimate person is a `ScriptedPerson` (real redirects, real forms, own cookies) that signs in
at the local ALB, asks the agent for their notes, follows the start link, signs in and consents at
the notes provider, and lands on the session binding page; then asks again and must get an answer
from the notes API with the stored grant, without being asked to consent again.

Attackers are signed-in people too. Each first starts a consent flow of its own (so it holds a real
binding cookie, for its own session) and then, while the legitimate flows run, takes what a
legitimate person publishes and uses it from its own browser:

* the start link (`/oauth2/start?flow=...`) of someone else: must be refused;
* the landing URL (`/oauth2/session-binding?session_id=...&state=...`) before its owner uses it
  (swapping sessions) and again after (replaying it): must be refused, and must never complete. A swap
  attempt cancels the session for everyone (the landing came back in a browser that did not start it),
  so its owner then sees "This authorization was cancelled", asks the agent again and completes a new
  flow: the provider, already approved, sends them straight back, and that landing is not published.

Legitimate people publish both as they go and give attackers a short head start (at most
ATTACKER_HEAD_START_S), so swaps come before the owner's own use and replays after it.
"""

from __future__ import annotations

import queue
import statistics
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from local.demo.stack import DemoStack
from local.idp import DemoUser
from tests.support.person import ScriptedPerson, event

SUCCESS = "Authorization complete"
CANCELLED = "This authorization was cancelled"
ATTACK_REFUSALS = {403, 410}
# A person waits at most this long for an attacker to try a link first, so most attempts come before
# the owner's own use (a swap) rather than after it (a replay, which the replay threads cover).
ATTACKER_HEAD_START_S = 2.0


def make_users(prefix: str, count: int) -> tuple[DemoUser, ...]:
    return tuple(
        DemoUser(
            username=f"{prefix}{i:03d}",
            password=f"{prefix}-pass-{i:03d}",
            email=f"{prefix}{i:03d}@example.org",
            name=f"{prefix.title()} {i:03d}",
            sign_in_sub=str(uuid.uuid5(uuid.NAMESPACE_URL, f"sign-in/{prefix}/{i}")),
            consent_sub=str(uuid.uuid5(uuid.NAMESPACE_URL, f"consent/{prefix}/{i}")),
        )
        for i in range(count)
    )


@dataclass
class Published:
    kind: str  # "start" or "landing"
    url: str
    owner: str
    used: threading.Event = field(default_factory=threading.Event)  # set once the owner has used it
    tried: threading.Event = field(default_factory=threading.Event)  # set once an attacker has tried it
    # Set before an attacker's request leaves: under load it can reach the service before the owner's own
    # landing and cancel the session while `tried` is still unset (the answer not back yet).
    sent: threading.Event = field(default_factory=threading.Event)


@dataclass
class LoadResult:
    users: int
    attackers: int
    concurrency: int
    elapsed_s: float = 0.0
    flows_ok: int = 0
    asked_again: int = 0  # people whose first session an attacker's swap cancelled
    errors: list[str] = field(default_factory=list)
    flow_s: list[float] = field(default_factory=list)
    binding_s: list[float] = field(default_factory=list)
    attacks: Counter[str] = field(default_factory=Counter)  # "<kind>:<status>"
    attack_errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        def pct(values: list[float], q: float) -> float:
            ordered = sorted(values)
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1) if ordered else 0.0

        return {
            "users": self.users,
            "attackers": self.attackers,
            "concurrency": self.concurrency,
            "elapsed_s": round(self.elapsed_s, 2),
            "flows_completed": self.flows_ok,
            "cancelled_by_a_swap_then_asked_again": self.asked_again,
            "legitimate_errors": len(self.errors),
            "completions_per_s": round(self.flows_ok / self.elapsed_s, 2) if self.elapsed_s else 0.0,
            "flow_ms": {"p50": pct(self.flow_s, 0.5), "p99": pct(self.flow_s, 0.99), "max": pct(self.flow_s, 1.0)},
            "binding_ms": {"p50": pct(self.binding_s, 0.5), "p99": pct(self.binding_s, 0.99), "max": pct(self.binding_s, 1.0)},
            "binding_mean_ms": round(statistics.fmean(self.binding_s) * 1000, 1) if self.binding_s else 0.0,
            "attack_attempts": sum(self.attacks.values()),
            "attack_outcomes": dict(sorted(self.attacks.items())),
            "attack_errors": len(self.attack_errors),
        }


class LoadRun:
    def __init__(self, stack: DemoStack, users: tuple[DemoUser, ...], attackers: tuple[DemoUser, ...], concurrency: int) -> None:
        self.stack, self.users, self.attacker_users, self.concurrency = stack, users, attackers, concurrency
        self.result = LoadResult(len(users), len(attackers), concurrency)
        self.published: queue.Queue[Published] = queue.Queue()
        self.done = threading.Event()
        self.ready = threading.Semaphore(0)  # one release per attacker set up (or failed to)
        self.replays: list[threading.Thread] = []
        self.attacking: list[ScriptedPerson] = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ legitimate people

    def _fail(self, who: str, what: str) -> None:
        with self._lock:
            self.result.errors.append(f"{who}: {what}")

    def legitimate(self, user: DemoUser) -> None:
        url = self.stack.public_url
        person = ScriptedPerson(user.username, user.password, timeout_s=30)
        started = time.perf_counter()
        try:
            person.open_agent(url)
            prompt = event(person.chat(url, "show my notes"), "authorization_required")
            start = Published("start", url + prompt["start_url"], user.username)
            self.published.put(start)
            start.tried.wait(ATTACKER_HEAD_START_S)
            login = person.follow(start.url)
            start.used.set()
            consent_page = person.sign_in_through(login)
            held = person.submit(consent_page, button="Allow", stop_before=url + "/oauth2/session-binding")
            if held.status_code != 302:
                self._fail(user.username, f"consent did not return to the binding service: {held.status_code} {held.url}")
                return
            landing = Published("landing", held.headers["location"], user.username)
            self.published.put(landing)
            landing.tried.wait(ATTACKER_HEAD_START_S)
            t0 = time.perf_counter()
            page = person.follow(landing.url)
            binding_s = time.perf_counter() - t0
            landing.used.set()
            if page.status_code == 410 and CANCELLED in page.text and landing.sent.is_set():
                # An attacker's browser came back with this session first: cancelled for everyone. Ask again.
                with self._lock:
                    self.result.asked_again += 1
                page, binding_s = self._ask_again(person, url)
            if page.status_code != 200 or SUCCESS not in page.text:
                self._fail(user.username, f"binding answered {page.status_code}: {page.text[:200]}")
                return
            events = person.chat(url, "show my notes")
            kinds = [kind for kind, _ in events]
            if "authorization_required" in kinds or "You have no notes yet" not in str(events):
                self._fail(user.username, f"the agent did not use the stored grant: {events}")
                return
            with self._lock:
                self.result.flows_ok += 1
                self.result.flow_s.append(time.perf_counter() - started)
                self.result.binding_s.append(binding_s)
        except Exception as exc:
            self._fail(user.username, f"{type(exc).__name__}: {exc}")
        finally:
            person.close()

    def _ask_again(self, person: ScriptedPerson, url: str) -> tuple[Any, float]:
        """A new consent flow, unpublished: the provider remembers the approval and returns at once."""
        prompt = event(person.chat(url, "show my notes"), "authorization_required")
        binding_url = url + "/oauth2/session-binding"
        page = person.follow(url + prompt["start_url"], stop_before=binding_url)
        for button in ("Sign in", "Allow"):  # only if the provider asks (it should not: approved, signed in)
            if page.status_code == 200 and f">{button}<" in page.text:
                page = person.submit(page, button=button, values=None, stop_before=binding_url)
        if page.status_code != 302:
            return page, 0.0
        t0 = time.perf_counter()
        page = person.follow(page.headers["location"])
        return page, time.perf_counter() - t0

    # ------------------------------------------------------------------ attackers

    def attacker(self, user: DemoUser) -> None:
        url = self.stack.public_url
        person = ScriptedPerson(user.username, user.password, timeout_s=30)
        with self._lock:
            self.attacking.append(person)  # closed at the end of the run: its replays outlive this loop
        try:
            person.open_agent(url)
            own = event(person.chat(url, "show my notes"), "authorization_required")
            person.follow(url + own["start_url"])  # holds a binding cookie now, for its own session
            self.ready.release()
            while not (self.done.is_set() and self.published.empty()):
                try:
                    item = self.published.get(timeout=0.2)
                except queue.Empty:
                    continue
                self._attack(person, item)
                if item.kind == "landing":
                    # Replay it once the owner has used it (at once if they already have).
                    replay = threading.Thread(target=self._replay_later, args=(person, item), daemon=True)
                    with self._lock:
                        self.replays.append(replay)
                    replay.start()
        except Exception as exc:
            with self._lock:
                self.result.attack_errors.append(f"{user.username}: {type(exc).__name__}: {exc}")
            self.ready.release()

    def _replay_later(self, person: ScriptedPerson, item: Published) -> None:
        if item.used.wait(60):
            self._attack(person, Published("replay", item.url, item.owner, used=item.used))

    def _attack(self, person: ScriptedPerson, item: Published) -> None:
        when = "after-owner" if item.used.is_set() else "before-owner"
        item.sent.set()
        response = person.send("GET", item.url)
        item.tried.set()
        status = response.status_code
        with self._lock:
            self.result.attacks[f"{item.kind} {when}: {status}"] += 1
            if status not in ATTACK_REFUSALS or SUCCESS in response.text:
                self.result.attack_errors.append(f"{person.username} got {status} for {item.owner}'s {item.kind}")

    # ------------------------------------------------------------------ the run

    def run(self) -> LoadResult:
        attackers = [threading.Thread(target=self.attacker, args=(a,), daemon=True) for a in self.attacker_users]
        for thread in attackers:
            thread.start()
        for _ in attackers:  # every attacker holds its own binding cookie before the first person starts
            self.ready.acquire(timeout=60)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="person") as pool:
            list(pool.map(self.legitimate, self.users))
        self.result.elapsed_s = time.perf_counter() - started
        self.done.set()
        for thread in attackers:
            thread.join(timeout=90)
        with self._lock:
            replays = list(self.replays)
        for thread in replays:
            thread.join(timeout=60)
        for person in self.attacking:
            person.close()
        return self.result
