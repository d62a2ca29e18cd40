"""The checks that need a person in a browser: a scripted sign-in, forged identity headers once
signed in, and one whole consent, whose return to the session binding service must carry the
`customState` echo.

Headless Chromium (never downloaded: a system binary, `CHROMIUM_PATH`) driven by Playwright. The
login forms are found by their fields (a visible username or email field and a password field), so
the same script signs in at Cognito's pages and at the local issuers. Only parameter names of the
return URL are reported, never their values.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from playwright.sync_api import Browser, Error as PlaywrightError, Page, Request, expect, sync_playwright

from deploy.verify.http_checks import forged_identity_headers
from deploy.verify.report import Result, Status, failed, passed, skipped
from deploy.verify.target import Target
from deploy.verify.users import Person, UserSetupError

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STEP_TIMEOUT_MS = 30_000  # a page of Cognito's, a redirect chain through AgentCore
ANSWER_TIMEOUT_MS = 90_000  # a chat turn with a real model and a tool call
BINDING_PATH = "/oauth2/session-binding"
SIGN_IN, FORGED_SIGNED_IN, STATE_ECHO = "sign_in", "forged_headers_signed_in", "state_echo_and_chat"
NAMES = (SIGN_IN, FORGED_SIGNED_IN, STATE_ECHO)
_USERNAME = "input[name=username]:visible, input[name=login]:visible, input[type=email]:visible"
_PASSWORD = "input[type=password]:visible"  # noqa: S105 - a CSS selector


@dataclass
class Visit:
    """One signed-in browser, and the query parameter names of every landing at the binding path."""

    target: Target
    page: Page
    person: Person
    landings: list[list[str]] = field(default_factory=list)

    def record(self, request: Request) -> None:
        parts = urlsplit(request.url)
        if request.url.startswith(self.target.url + "/") and parts.path == BINDING_PATH:
            self.landings.append(sorted({name for name, _ in parse_qsl(parts.query, keep_blank_values=True)}))


@contextmanager
def chromium(path: Path) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(path), args=CHROMIUM_ARGS, headless=True, timeout=30_000)
        try:
            yield browser
        finally:
            browser.close()


def browser_checks(target: Target) -> list[Result]:
    """Sign in, forged headers, consent: in one browser, as one temporary (or given) person."""
    if target.people is None:
        return [skipped(name, target.why_missing("people")) for name in NAMES]
    if not target.chromium.is_file():
        return [skipped(name, f"no Chromium at {target.chromium}: install it or set CHROMIUM_PATH") for name in NAMES]
    results: list[Result] = []
    try:
        with target.people() as person, chromium(target.chromium) as browser:
            context = browser.new_context()
            context.set_default_timeout(STEP_TIMEOUT_MS)
            visit = Visit(target, context.new_page(), person)
            visit.page.on("request", visit.record)
            results.append(sign_in(visit))
            signed_in = results[0].status is Status.PASSED
            for name, check in ((FORGED_SIGNED_IN, forged_headers_signed_in), (STATE_ECHO, state_echo)):
                results.append(check(visit) if signed_in else skipped(name, "needs the scripted sign-in, which failed"))
    except UserSetupError as error:
        done = {r.name for r in results}
        verdict = skipped if error.denied and not done else failed
        results += [verdict(name, str(error)) for name in NAMES if name not in done]
        if len(done) == len(NAMES):
            results.append(failed("temporary_user_cleanup", str(error)))
    except (PlaywrightError, AssertionError) as error:
        done = {r.name for r in results}
        results += [failed(name, f"the browser failed: {_first_line(error)}") for name in NAMES if name not in done]
    return results


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def fill_login(page: Page, person: Person) -> None:
    """Whatever the issuer's form looks like: its visible username (or email) and password fields."""
    page.locator(_USERNAME).first.fill(person.username)
    password = page.locator(_PASSWORD).first
    password.fill(person.password)
    with page.expect_navigation():
        password.press("Enter")


def sign_in(visit: Visit) -> Result:
    page, url = visit.page, visit.target.url
    step = "open the agent"
    try:
        page.goto(url + "/")
        step = "sign in at the sign-in issuer"
        fill_login(page, visit.person)
        step = "come back to the agent signed in"
        page.wait_for_url(re.compile("^" + re.escape(url) + r"/(\?.*)?$"))
        expect(page.get_by_role("button", name="Send")).to_be_enabled()
    except (PlaywrightError, AssertionError) as error:
        return failed(SIGN_IN, f"could not {step}: {_first_line(error)} (at {urlsplit(page.url).netloc}{urlsplit(page.url).path})")
    return passed(
        SIGN_IN, f"signed in as a {'temporary' if visit.person.username.startswith('verify-') else 'given'} user and back at the agent"
    )


def forged_headers_signed_in(visit: Visit) -> Result:
    """Signed in, the same question with made-up identity headers must still be answered for this person."""
    url = f"{visit.target.url}/api/session"
    own = visit.page.request.get(url)
    forged = visit.page.request.get(url, headers=forged_identity_headers())
    if own.status != 200:
        return failed(FORGED_SIGNED_IN, f"GET /api/session signed in answered {own.status}, expected 200")
    if forged.status != 200:
        return failed(
            FORGED_SIGNED_IN, f"signed in, GET /api/session with forged x-amzn-oidc-* headers answered {forged.status}, expected 200"
        )
    try:
        same = forged.json().get("user") == own.json().get("user")
    except (ValueError, AttributeError):
        return failed(FORGED_SIGNED_IN, "GET /api/session did not answer a JSON object")
    if not same:
        return failed(FORGED_SIGNED_IN, "signed in, forged x-amzn-oidc-* headers changed who the agent answered for")
    return passed(FORGED_SIGNED_IN, "signed in, forged x-amzn-oidc-* headers were ignored: answered as the signed-in user")


def _consent(visit: Visit) -> None:
    """From the Authorize button to the landing: sign in at the provider, then Allow if it asks."""
    page = visit.page
    with page.expect_navigation():
        page.get_by_role("button", name=re.compile("^Authorize")).last.click()
    fill_login(page, visit.person)
    allow = page.get_by_role("button", name="Allow")
    if urlsplit(page.url).path != BINDING_PATH and allow.count():
        with page.expect_navigation():
            allow.click()
    page.wait_for_url(lambda u: urlsplit(u).path == BINDING_PATH)


def state_echo(visit: Visit) -> Result:
    page, param = visit.page, visit.target.state_param
    step = f"ask {visit.target.question!r} and get a consent prompt"
    try:
        box = page.get_by_label("Message", exact=True)
        box.fill(visit.target.question)
        box.press("Enter")
        expect(page.get_by_role("button", name=re.compile("^Authorize")).last).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
        step = "consent at the provider and return to the session binding service"
        _consent(visit)
        arrived = visit.landings[-1] if visit.landings else []
        if param not in arrived:
            return failed(STATE_ECHO, f"the return to {BINDING_PATH} carried {', '.join(arrived) or 'no parameters'} but not {param!r}")
        step = "see 'Authorization complete'"
        expect(page.get_by_role("heading", name="Authorization complete")).to_be_visible()
        step = "return to the agent and see the waiting request finish with the new grant"
        page.get_by_role("link", name="Return to the agent").click()
        expect(page.locator("#messages [data-state=ok]").last).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
        expect(page.get_by_role("button", name="Send")).to_be_enabled(timeout=ANSWER_TIMEOUT_MS)
    except (PlaywrightError, AssertionError) as error:
        return failed(STATE_ECHO, f"could not {step}: {_first_line(error)} (at {urlsplit(page.url).netloc}{urlsplit(page.url).path})")
    return passed(STATE_ECHO, f"the return carried {', '.join(arrived)} ({param!r} is the echo); consent completed, the chat finished")
