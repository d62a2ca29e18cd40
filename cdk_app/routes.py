"""The load balancer's listener rules as data: one definition for the CDK listener and the local ALB.

`stacks/services_stack.py` turns each rule into a listener action; `local/alb/` routes by the same
rules, so the local stack cannot drift from what is deployed. Pure Python: no CDK import, so the
local stack can load it without the CDK.

Matching follows the ALB's path-pattern condition: case-sensitive, on the path only (no query
string), `*` matches any run of characters (none included) and `?` exactly one. Rules are tried in
priority order and the first match wins; a request no rule matches gets the listener's default
action, a fixed 404.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property


class Target(StrEnum):
    AGENT = "agent"
    SESSION_BINDING = "session_binding"


class SignIn(StrEnum):
    """What the rule does for a request without a sign-in session (`authenticate-oidc`)."""

    NONE = "none"  # no authentication action: forwarded as is
    AUTHENTICATE = "authenticate"  # redirect the browser to the sign-in page
    DENY = "deny"  # 401: API calls from the page, which a fetch() cannot follow to a sign-in page


@dataclass(frozen=True)
class Route:
    name: str
    priority: int
    paths: tuple[str, ...]
    target: Target
    sign_in: SignIn
    methods: tuple[str, ...] = ()  # empty: any method

    def __post_init__(self) -> None:
        if not self.paths or len(self.paths) + len(self.methods) > MAX_VALUES_PER_RULE:
            raise ValueError(f"route {self.name}: at least one path pattern, and at most {MAX_VALUES_PER_RULE} condition values")
        if sum(p.count("*") + p.count("?") for p in self.paths) > MAX_WILDCARDS_PER_RULE:
            raise ValueError(f"route {self.name}: at most {MAX_WILDCARDS_PER_RULE} wildcards")
        for path in self.paths:
            if len(path) > MAX_PATTERN_CHARS or not _PATTERN_CHARS.fullmatch(path):
                raise ValueError(f"route {self.name}: {path!r} is not an ALB path pattern (<= {MAX_PATTERN_CHARS} allowed characters)")
        if not 1 <= self.priority <= 50_000:
            raise ValueError(f"route {self.name}: priority must be 1-50000")

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        alternatives = ("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in path) for path in self.paths)
        return re.compile("|".join(f"(?:{a})" for a in alternatives), re.DOTALL)

    def matches(self, path: str, method: str) -> bool:
        if self.methods and method.upper() not in self.methods:
            return False
        return self._pattern.fullmatch(path) is not None


# The `authenticate-oidc` action of every signed-in rule.
SIGN_IN_SCOPE = "openid email"
SIGN_IN_SESSION_TIMEOUT_S = 8 * 3600
# The load balancer's idle timeout: longer than the agent's SSE heartbeat, so a quiet stream stays open.
IDLE_TIMEOUT_S = 120
# How long each target keeps an idle keep-alive connection open: longer than the load balancer's idle timeout,
# so the load balancer always closes first. A target that closes first can race a request the load balancer has
# just sent on that connection, and the person gets a 502 ("Edit attributes for your Application Load Balancer",
# Connection idle timeout). uvicorn's default is 5 s. Used by services/Dockerfile's CMD (a test compares) and the
# local stack.
TARGET_KEEP_ALIVE_S = IDLE_TIMEOUT_S + 10
# The listener's default action, for a request no rule matches.
NOT_FOUND_BODY = "Not found"

# Limits the ALB enforces at deploy time ("Quotas for your Application Load Balancers": condition
# values and wildcards per rule; PathPatternConfig: 128 characters a pattern). Checked here, at
# import, so a rule that cannot deploy fails synth and every local test instead.
MAX_VALUES_PER_RULE = 5
MAX_WILDCARDS_PER_RULE = 5
MAX_PATTERN_CHARS = 128
_PATTERN_CHARS = re.compile(r"[A-Za-z0-9_\-.$/~\"'@:+&()!,;=*?]+")

# Paths served by the session binding service; everything else goes to the agent.
BINDING_PATHS = ("/oauth2/start", "/oauth2/session-binding")
# Where the sign-in provider's logout endpoint returns the browser: a page that needs no session.
SIGNED_OUT_PATH = "/signed-out"
SIGNED_OUT_STYLESHEET = "/static/app.css"
# Its icon too: a browser's own icon request would otherwise go through sign-in (and, with the sign-in
# provider's session still alive, could quietly sign the person back in).
SIGNED_OUT_ICON = "/static/favicon.svg"

ROUTES: tuple[Route, ...] = (
    # The target group's health probe does not pass listener rules; this is for smoke checks,
    # answered by a route that returns a constant and calls nothing.
    Route("Health", 5, ("/health",), Target.AGENT, SignIn.NONE, methods=("GET",)),
    # The signed-out page and the one stylesheet it uses: shown to a browser that has no session any more.
    Route("SignedOut", 7, (SIGNED_OUT_PATH, SIGNED_OUT_STYLESHEET, SIGNED_OUT_ICON), Target.AGENT, SignIn.NONE, methods=("GET",)),
    Route("SessionBinding", 10, BINDING_PATHS, Target.SESSION_BINDING, SignIn.AUTHENTICATE),
    Route("AgentApi", 20, ("/api/*",), Target.AGENT, SignIn.DENY),
    Route("AgentUi", 30, ("/*",), Target.AGENT, SignIn.AUTHENTICATE),
)


if len({r.priority for r in ROUTES}) != len(ROUTES):
    raise ValueError("two listener rules share a priority")


def route_for(path: str, method: str) -> Route | None:
    """The first rule (by priority) that matches, or None for the listener's default action (404)."""
    return next((r for r in sorted(ROUTES, key=lambda r: r.priority) if r.matches(path, method)), None)
