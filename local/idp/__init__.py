"""LOCAL STAND-IN OpenID Connect providers for the offline demo. Not Amazon Cognito, not a real provider.

`local/idp/server.mjs` runs `oidc-provider` (npm, pinned in package.json) and serves, from one node
process, one or more issuers, each on its own host and port:

* the **sign-in** issuer stands in for the Amazon Cognito user pool the ALB signs people in with
  (`authenticate-oidc`): authorization code flow, scopes `openid email profile`, client
  authentication `client_secret_basic`, RS256 ID tokens, and a userinfo endpoint returning `sub`,
  `email`, `email_verified`, `username` and `name`. The ALB's client is first-party: no consent page.
* the **consent** issuer stands in for the demo API's authorization server, one client per demo provider
  (Demo Notes, Demo Tasks), as the stacks deploy one app client each (the external
  OAuth server AgentCore Identity talks to): authorization code flow with PKCE S256 required,
  `client_secret_basic` (as the stacks deploy the provider: `CLIENT_SECRET_BASIC`), a consent page
  with Allow and Deny, a refresh token on every code exchange, and access tokens that are RS256
  JWTs in the Cognito format (`iss`, `token_use=access`, `client_id`, `scope`, `sub`, `username`,
  `exp`, `iat`, `jti`) which `services/demo_api/tokens.py` verifies. Like GitHub, Google and
  Cognito, it remembers consent (`skip_consent_when_granted`, on by default): once a person
  pressed Allow, a later authorization request from a browser signed in as that person, for scopes
  they all already granted this client, redirects back with a code at once, without the consent
  page; `prompt=consent` always shows it. Off, the page shows on every authorization request.

Both use Cognito's paths (see `endpoints`), fresh RSA keys each start (nothing is written to disk
but the temporary configuration, removed on stop), in-memory state, and plain-HTML sign-in and
consent pages that work without JavaScript. Each issuer's cookies are named after it
(`idp-<name>-session`, `idp-<name>-interaction`, `idp-<name>-resume`): browsers do not separate
cookies by port, and the app and both issuers may all run on 127.0.0.1.

The demo accounts (`DEMO_USERS`) and their passwords are public on purpose: this is a local demo.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import signal
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Self

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_SCRIPT = REPO_ROOT / "local" / "idp" / "server.mjs"
OIDC_PROVIDER_DIR = REPO_ROOT / "node_modules" / "oidc-provider"

IssuerKind = Literal["sign-in", "consent"]

SIGN_IN_TITLE = "Example Sign-in (local stand-in for Amazon Cognito)"
CONSENT_TITLE = "Demo Accounts (local authorization server)"
SIGN_IN_AUTH_METHOD = "client_secret_basic"  # how the ALB authenticates to Cognito
CONSENT_AUTH_METHOD = "client_secret_basic"  # how AgentCore Identity authenticates to the notes API's server (CLIENT_SECRET_BASIC)

DEMO_API_RESOURCE = "urn:example:demo-api"  # the access tokens' `aud`; the demo API does not check it
DEMO_API_SCOPES: Mapping[str, str] = {
    "demo-api/profile.read": "See your profile (name and email address)",
    "demo-api/notes.read": "Read your notes",
    "demo-api/notes.write": "Create, change and delete your notes",
    "demo-api/tasks.read": "Read your task list",
    "demo-api/tasks.write": "Add and complete tasks",
}


@dataclass(frozen=True, slots=True)
class DemoUser:
    """A person with an account at both issuers (stable subs, different per issuer, like Cognito)."""

    username: str
    password: str
    email: str
    name: str
    sign_in_sub: str
    consent_sub: str
    email_verified: bool = True

    def account(self, kind: IssuerKind) -> dict[str, Any]:
        """This user's entry in an issuer's `users` list."""
        return {
            "username": self.username,
            "password": self.password,
            "sub": self.sign_in_sub if kind == "sign-in" else self.consent_sub,
            "email": self.email,
            "email_verified": self.email_verified,
            "name": self.name,
        }


ALICE_USERNAME, ALICE_PASSWORD = "alice", "alice-demo-pass"
BOB_USERNAME, BOB_PASSWORD = "bob", "bob-demo-pass"
ALICE = DemoUser(
    username=ALICE_USERNAME,
    password=ALICE_PASSWORD,
    email="alice@example.org",
    name="Alice Example",
    sign_in_sub="f5bc3247-2125-4528-8d4b-1877e77a2e81",
    consent_sub="e480c9e2-9c3c-4991-b46c-c7830671afae",
)
BOB = DemoUser(
    username=BOB_USERNAME,
    password=BOB_PASSWORD,
    email="bob@example.org",
    name="Bob Example",
    sign_in_sub="1061c952-5910-4d26-ab87-e647532ae1cf",
    consent_sub="ad884f9d-8796-49a7-8e8a-4eb420d5d2b4",
)
DEMO_USERS: tuple[DemoUser, ...] = (ALICE, BOB)


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """An OAuth client registered at one issuer. Redirect URIs are matched exactly."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    client_name: str | None = None  # shown on the sign-in and consent pages; defaults to client_id
    logout_uris: tuple[str, ...] = ()  # sign-in kind: where `/logout?client_id=&logout_uri=` may return (Cognito's LogoutURLs)

    def to_json(self, *, token_endpoint_auth_method: str) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": list(self.redirect_uris),
            "token_endpoint_auth_method": token_endpoint_auth_method,
        }
        if self.client_name is not None:
            entry["client_name"] = self.client_name
        if self.logout_uris:
            entry["logout_uris"] = list(self.logout_uris)
        return entry


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where an issuer serves what (Amazon Cognito's paths); discovery says the same."""

    issuer: str
    discovery: str
    authorization: str
    token: str
    userinfo: str  # sign-in issuers only
    jwks: str
    revocation: str


def issuer_url(host: str, port: int) -> str:
    return f"http://{host}:{port}"


def endpoints(issuer: str) -> Endpoints:
    return Endpoints(
        issuer=issuer,
        discovery=f"{issuer}/.well-known/openid-configuration",
        authorization=f"{issuer}/oauth2/authorize",
        token=f"{issuer}/oauth2/token",
        userinfo=f"{issuer}/oauth2/userInfo",
        jwks=f"{issuer}/.well-known/jwks.json",
        revocation=f"{issuer}/oauth2/revoke",
    )


def cookie_names(issuer_name: str) -> tuple[str, str, str]:
    """The cookies an issuer sets (each may come with a `.sig` companion)."""
    return (f"idp-{issuer_name}-session", f"idp-{issuer_name}-interaction", f"idp-{issuer_name}-resume")


@dataclass(frozen=True, slots=True)
class IssuerSpec:
    """One issuer of the configuration file that `server.mjs` reads."""

    name: str  # lowercase letters, digits and dashes; names the cookies
    kind: IssuerKind
    host: str
    port: int
    clients: tuple[ClientSpec, ...]
    title: str
    users: tuple[DemoUser, ...] = DEMO_USERS
    access_token_ttl_s: int = 3600
    resource_scopes: Mapping[str, str] = field(default_factory=lambda: dict(DEMO_API_SCOPES))  # consent kind only
    resource: str = DEMO_API_RESOURCE  # consent kind only
    # Consent kind only: True, a grant this account gave this client on the consent page (Allow),
    # covering every scope requested now, completes the request without the page (unless
    # `prompt=consent`); False, the page shows on every authorization request.
    skip_consent_when_granted: bool = True

    @property
    def issuer(self) -> str:
        return issuer_url(self.host, self.port)

    def to_json(self) -> dict[str, Any]:
        method = SIGN_IN_AUTH_METHOD if self.kind == "sign-in" else CONSENT_AUTH_METHOD
        entry: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "title": self.title,
            "issuer": self.issuer,
            "host": self.host,
            "port": self.port,
            "access_token_ttl_s": self.access_token_ttl_s,
            "clients": [c.to_json(token_endpoint_auth_method=method) for c in self.clients],
            "users": [u.account(self.kind) for u in self.users],
        }
        if self.kind == "consent":
            entry["resource_server"] = {"identifier": self.resource, "scopes": dict(self.resource_scopes)}
            entry["skip_consent_when_granted"] = self.skip_consent_when_granted
        return entry


def idp_config(*issuers: IssuerSpec) -> dict[str, Any]:
    """The JSON configuration for `server.mjs` serving these issuers."""
    return {"issuers": [issuer.to_json() for issuer in issuers]}


def demo_config(
    *,
    host: str,
    sign_in_port: int,
    consent_port: int,
    sign_in_client: ClientSpec,
    consent_clients: tuple[ClientSpec, ...],
    access_token_ttl_s: int = 3600,
    users: tuple[DemoUser, ...] = DEMO_USERS,
    skip_consent_when_granted: bool = True,
) -> dict[str, Any]:
    """The standard two issuers, `sign-in` and `consent`, with the same users at both (the demo users by default).
    The consent issuer is the demo authorization server: one client per demo provider, as the stacks deploy.

    `skip_consent_when_granted` is the consent issuer's option (see `IssuerSpec`).
    """
    return idp_config(
        IssuerSpec(
            name="sign-in", kind="sign-in", host=host, port=sign_in_port, clients=(sign_in_client,), title=SIGN_IN_TITLE, users=users
        ),
        IssuerSpec(
            name="consent",
            kind="consent",
            host=host,
            port=consent_port,
            clients=consent_clients,
            title=CONSENT_TITLE,
            access_token_ttl_s=access_token_ttl_s,
            users=users,
            skip_consent_when_granted=skip_consent_when_granted,
        ),
    )


class IdpStartError(RuntimeError):
    """The node process exited or did not report every issuer ready in time; the message ends with its stderr."""


class IdpStartTimeout(IdpStartError):
    """Node runs but did not report every issuer ready in time."""


class IdpProcess:
    """`node local/idp/server.mjs` serving `config`, as a context manager.

    `start()` writes the configuration to a private temporary file, launches node from the
    repository root and returns once every issuer printed `READY <name> <url>`; `issuers` then maps
    each name to its issuer URL. `stop()` sends SIGTERM, waits, and kills if it must. Node watches
    its stdin, a pipe from this process: if this process dies without `stop()`, node exits too.
    """

    def __init__(self, config: Mapping[str, Any], *, node: str = "node") -> None:
        self._config = dict(config)
        self._node = node
        self._process: subprocess.Popen[str] | None = None
        self._config_path: Path | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=50)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self.issuers: dict[str, str] = {}

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def returncode(self) -> int | None:
        return self._process.returncode if self._process else None

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr)

    def start(self, timeout_s: float = 20, *, attempts: int = 2) -> Self:
        """Launch node and wait until every issuer reported ready. A node that has not after `timeout_s` is stopped
        and launched again, up to `attempts` launches, with a warning carrying what it was doing: rarely (twice in
        about a hundred test runs' worth of starts, never in 850 starts in a loop) node stops partway through its
        start-up, asleep in a futex wait with its CPU time still, and never reports ready. Any other failure (node
        missing, a bad configuration, a port in use) is raised at once."""
        if self._process is not None:
            raise RuntimeError("already started")
        for attempt in range(1, attempts + 1):
            try:
                return self._launch(timeout_s)
            except IdpStartTimeout as exc:
                if attempt == attempts:
                    raise
                warnings.warn(f"{exc}; launching it again", stacklevel=2)
                self._reset()
        raise AssertionError("unreachable")

    def _reset(self) -> None:
        self._process = None
        self._stderr.clear()
        self._lines = queue.Queue()
        self._threads = []
        self.issuers = {}

    def _launch(self, timeout_s: float) -> Self:
        expected = {str(issuer["name"]) for issuer in self._config.get("issuers", []) if isinstance(issuer, Mapping)}
        fd, name = tempfile.mkstemp(prefix="idp-", suffix=".json")  # 0600: it holds client secrets
        self._config_path = Path(name)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(self._config, file)
        try:
            self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                [self._node, str(SERVER_SCRIPT), "--config", str(self._config_path), "--exit-with-stdin"],
                cwd=REPO_ROOT,
                stdin=subprocess.PIPE,  # held open: node exits when it closes, even if this process is killed
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
            )
        except OSError as exc:
            self._config_path.unlink(missing_ok=True)
            self._config_path = None
            raise IdpStartError(
                f"local IdP did not start: cannot run {self._node!r} ({exc.strerror}); install Node.js 20.19 or later"
            ) from None
        self._threads = [
            threading.Thread(target=self._read_stdout, args=(self._process.stdout,), daemon=True),
            threading.Thread(target=self._read_stderr, args=(self._process.stderr,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        try:
            self._await_ready(expected, time.monotonic() + timeout_s, timeout_s)
        except BaseException:
            self.stop()
            raise
        # Every issuer is up, so node has read its configuration: the secrets leave the disk now.
        self._config_path.unlink(missing_ok=True)
        return self

    def _read_stdout(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _read_stderr(self, stream: IO[str]) -> None:
        for line in stream:  # drained, so a chatty process never blocks on a full pipe
            self._stderr.append(line.rstrip("\n"))

    def _await_ready(self, expected: set[str], deadline: float, timeout_s: float) -> None:
        while expected - self.issuers.keys():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                ready = ", ".join(sorted(self.issuers)) or "none"
                raise IdpStartTimeout(self._failure(f"issuers not ready after {timeout_s:g} s (ready: {ready}; {self._progress()})"))
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:  # stdout closed: the process is exiting
                assert self._process is not None
                try:
                    code = self._process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    code = None
                for thread in self._threads:
                    thread.join(timeout=1)
                raise IdpStartError(self._failure(f"node exited with code {code}"))
            parts = line.split()
            if len(parts) == 3 and parts[0] == "READY":
                self.issuers[parts[1]] = parts[2]

    def _progress(self) -> str:
        """What node was doing, for a start that timed out: starved of CPU (little CPU time, runnable), stuck (asleep
        or in I/O, with what it waits in) or busy (much CPU time). Linux's /proc; elsewhere only that it runs."""
        pid = self.pid
        try:
            fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
            wchan = Path(f"/proc/{pid}/wchan").read_text(encoding="ascii").strip() or "-"
            load = Path("/proc/loadavg").read_text(encoding="ascii").split()[0]
            cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            threads = _threads_of(pid)
        except (OSError, IndexError, ValueError):
            code = self._process.poll() if self._process is not None else None
            return "node is running" if code is None else f"node exited with code {code}"
        return f"node used {cpu_s:.2f} CPU-s, state {fields[0]}, waiting in {wchan}; threads: {threads}; load average {load}"

    def _failure(self, what: str) -> str:
        tail = self.stderr_tail()
        return f"local IdP did not start: {what}" + (f"\n{tail}" if tail else "")

    def stop(self, timeout_s: float = 5) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout_s)
        for thread in self._threads:
            thread.join(timeout=1)
        if process is not None:
            for stream in (process.stdin, process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
        if self._config_path is not None:
            self._config_path.unlink(missing_ok=True)
            self._config_path = None

    def __enter__(self) -> Self:
        return self.start() if self._process is None else self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _threads_of(pid: int | None) -> str:
    """Each thread of `pid` as `name state wait-channel`, alike ones counted: `node S futex_do_wait, 4x V8Worker S ...`."""
    seen: collections.Counter[str] = collections.Counter()
    for task in sorted(Path(f"/proc/{pid}/task").iterdir()):
        state = (task / "stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()[0]
        wchan = (task / "wchan").read_text(encoding="ascii").strip() or "-"
        seen[f"{(task / 'comm').read_text(encoding='utf-8', errors='replace').strip()} {state} {wchan}"] += 1
    return ", ".join(what if count == 1 else f"{count}x {what}" for what, count in seen.items())
