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

# Paths served by the session binding service; everything else goes to the agent.
BINDING_PATHS = ("/oauth2/start", "/oauth2/session-binding")

ROUTES: tuple[Route, ...] = (
    # The target group's health probe does not pass listener rules; this is for smoke checks,
    # answered by a route that returns a constant and calls nothing.
    Route("Health", 5, ("/health",), Target.AGENT, SignIn.NONE, methods=("GET",)),
    Route("SessionBinding", 10, BINDING_PATHS, Target.SESSION_BINDING, SignIn.AUTHENTICATE),
    Route("AgentApi", 20, ("/api/*",), Target.AGENT, SignIn.DENY),
    Route("AgentUi", 30, ("/*",), Target.AGENT, SignIn.AUTHENTICATE),
)


def route_for(path: str, method: str) -> Route | None:
    """The first rule (by priority) that matches, or None for the listener's default action (404)."""
    return next((r for r in sorted(ROUTES, key=lambda r: r.priority) if r.matches(path, method)), None)
