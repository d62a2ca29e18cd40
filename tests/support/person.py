"""A scripted person: an HTTP client that follows the local stack's real redirects and fills its forms.

No browser and no JavaScript, but the same requests a browser makes: the ALB's sign-in redirect,
the sign-in issuer's login form, the agent's chat stream, the `/oauth2/start` link, the notes
provider's login and consent forms, AgentCore's callback, the session binding page. Cookies are
kept per person as a browser keeps them, with one difference from Python's defaults: `Secure`
cookies are sent to loopback over http, as Chromium does (it treats 127.0.0.1 as a secure context).

Used by the end-to-end tests (for steps a browser cannot pause at) and by the load test.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import ssl
import urllib.parse
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import httpx

MAX_HOPS = 20
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
# One TLS context for every person: the local stack speaks plain http, and building httpx's default context reads the
# whole CA bundle (about 15 ms of CPU per client, hundreds of clients in the load test).
_TLS = ssl.create_default_context()


class LoopbackSecurePolicy(http.cookiejar.DefaultCookiePolicy):
    """Send `Secure` cookies to loopback over http (Chromium's rule for potentially trustworthy origins)."""

    def return_ok_secure(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        host = urllib.parse.urlsplit(request.get_full_url()).hostname or ""
        return host in LOOPBACK_HOSTS or super().return_ok_secure(cookie, request)


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str]
    buttons: list[tuple[str, str | None, str | None]]  # (text, name, value)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._button: list[Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.forms.append(Form(a.get("action") or "", (a.get("method") or "get").upper(), {}, []))
        elif tag == "input" and self.forms and a.get("name") and a.get("type") not in ("submit", "button"):
            self.forms[-1].fields[str(a["name"])] = a.get("value") or ""
        elif tag == "button" and self.forms:
            self._button = ["", a.get("name"), a.get("value")]

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button[0] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button is not None and self.forms:
            text, name, value = self._button
            self.forms[-1].buttons.append((text.strip(), name, value))
            self._button = None


def forms_of(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


@dataclass
class Hop:
    method: str
    url: str
    status: int
    location: str | None


@dataclass
class ScriptedPerson:
    """One person's browser, scripted. `hops` records every request in order."""

    username: str
    password: str
    timeout_s: float = 10.0
    hops: list[Hop] = field(default_factory=list)

    def __post_init__(self) -> None:
        # The jar is kept here, not in the client: httpx copies a client's cookies into a jar with the
        # default policy for every request, which would drop the loopback rule.
        self.cookies = httpx.Cookies(http.cookiejar.CookieJar(policy=LoopbackSecurePolicy()))
        self.client = httpx.Client(
            follow_redirects=False,
            timeout=self.timeout_s,
            trust_env=False,
            verify=_TLS,
            # Idle connections close before the servers close theirs (the local IdP after 5 s), not at the same 5 s.
            limits=httpx.Limits(keepalive_expiry=2.0),
        )

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------ navigation

    def send(self, method: str, url: str, *, stream: bool = False, **kwargs: Any) -> httpx.Response:
        request = self.client.build_request(method, url, **kwargs)
        self.cookies.set_cookie_header(request)
        response = self.client.send(request, stream=stream)
        self.client.cookies.clear()
        self.cookies.extract_cookies(response)
        self.hops.append(Hop(method, url, response.status_code, response.headers.get("location")))
        return response

    def follow(
        self, url: str, *, method: str = "GET", data: dict[str, str] | None = None, stop_before: str | None = None
    ) -> httpx.Response:
        """Request `url` and follow redirects like a browser (POST becomes GET after 302/303).

        With `stop_before`, the redirect whose target starts with it is returned instead of followed:
        the browser is held at that hop, as a test may need."""
        response = self.send(method, url, data=data)
        for _ in range(MAX_HOPS):
            location = response.headers.get("location")
            if response.status_code not in (301, 302, 303, 307, 308) or not location:
                return response
            target = urllib.parse.urljoin(str(response.url), location)
            if stop_before is not None and target.startswith(stop_before):
                return response
            if response.status_code in (307, 308):
                response = self.send(method, target, data=data)
            else:
                method, data = "GET", None
                response = self.send("GET", target)
        raise AssertionError(f"more than {MAX_HOPS} redirects from {url}")

    def submit(
        self, page: httpx.Response, *, button: str | None = None, values: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Submit the page's form (the one with `button`, or the only one) and follow where it leads."""
        forms = forms_of(page.text)
        candidates = [f for f in forms if button is None or any(text == button for text, _, _ in f.buttons)]
        if len(candidates) != 1:
            raise AssertionError(f"expected one form with button {button!r} at {page.url}, found {len(candidates)}: {page.text[:500]}")
        form = candidates[0]
        data = {**form.fields, **(values or {})}
        pressed = next((b for b in form.buttons if button is None or b[0] == button), None)
        if pressed and pressed[1]:
            data[pressed[1]] = pressed[2] or ""
        action = urllib.parse.urljoin(str(page.url), form.action or str(page.url))
        if form.method == "GET":
            return self.follow(action + "?" + urllib.parse.urlencode(data), **kwargs)
        return self.follow(action, method="POST", data=data, **kwargs)

    def sign_in_through(self, page: httpx.Response, **kwargs: Any) -> httpx.Response:
        """On a login page: sign in with this person's username and password, and follow on."""
        return self.submit(page, button="Sign in", values={"login": self.username, "password": self.password}, **kwargs)

    # ------------------------------------------------------------------ the agent

    def open_agent(self, base_url: str) -> httpx.Response:
        """GET the agent's page: the ALB sends a new person to sign in first."""
        page = self.follow(base_url + "/")
        if forms_of(page.text) and "password" in page.text:
            page = self.sign_in_through(page)
        if page.status_code != 200 or str(page.url).rstrip("/") != base_url:
            trail = " -> ".join(f"{h.method} {h.url.split('?')[0]} {h.status}" for h in self.hops[-8:])
            raise AssertionError(f"{self.username} did not reach the agent: {page.status_code} {page.url} (last hops: {trail})")
        return page

    def chat(self, base_url: str, message: str, *, after_consent: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """POST /api/chat and read the whole event stream: [(event, data), ...]. `after_consent`: the start link's
        flow token, as the chat page sends with the request it replays on coming back from a consent."""
        events: list[tuple[str, dict[str, Any]]] = []
        body: dict[str, Any] = {"message": message, "history": []} | ({"after_consent": after_consent} if after_consent else {})
        response = self.send("POST", base_url + "/api/chat", json=body, stream=True)
        with contextlib.closing(response):
            if response.status_code != 200:
                response.read()
                raise AssertionError(f"chat answered {response.status_code}: {response.text[:300]}")
            name = "message"
            for line in response.iter_lines():
                if line.startswith("event:"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    events.append((name, json.loads(line.split(":", 1)[1])))
                    name = "message"
        return events


def event(events: list[tuple[str, dict[str, Any]]], name: str) -> dict[str, Any]:
    found = [data for kind, data in events if kind == name]
    if len(found) != 1:
        raise AssertionError(f"expected one {name!r} event, got {events}")
    return found[0]
