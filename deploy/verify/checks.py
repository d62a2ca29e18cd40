"""Every check, in the order the report lists them, and the run that collects their results."""

from __future__ import annotations

from collections.abc import Callable, Collection

from deploy.verify import agentcore_checks, http_checks
from deploy.verify.browser_checks import NAMES as BROWSER_CHECKS, browser_checks
from deploy.verify.report import Result
from deploy.verify.target import Target

Check = Callable[[Target], Result]

SINGLE_CHECKS: tuple[tuple[str, Check], ...] = (
    ("health", http_checks.health),
    ("anonymous_page_signs_in", http_checks.anonymous_page),
    ("anonymous_api_401", http_checks.anonymous_api),
    ("forged_headers_anonymous", http_checks.forged_headers_anonymous),
    ("callback_url_registered", http_checks.callback_registered),
    ("agentcore_bad_workload_token", agentcore_checks.made_up_workload_token),
    ("agentcore_unknown_workload", agentcore_checks.unknown_workload),
    ("agentcore_unknown_session", agentcore_checks.unknown_session),
    ("agentcore_validation_shape", agentcore_checks.validation_shape),
)
ALL_CHECKS: tuple[str, ...] = (*(name for name, _ in SINGLE_CHECKS), *BROWSER_CHECKS)


def run_checks(target: Target, only: Collection[str] = ()) -> list[Result]:
    """Each selected check once (all when `only` is empty); the browser checks share one sign-in."""
    chosen = set(only) or set(ALL_CHECKS)
    results = [check(target) for name, check in SINGLE_CHECKS if name in chosen]
    if chosen & set(BROWSER_CHECKS):
        results += browser_checks(target)
    return results
