"""The settings shared by the agent and the session binding service (`services/common/settings.py`)."""

from __future__ import annotations

import pytest

from services.common.settings import call_budget_s


@pytest.mark.parametrize(
    ("timeouts", "attempts", "budget"),
    [
        ((1.0, 2.0), 1, 3.0),  # one attempt: no back-off
        ((1.0, 2.0), 3, 9.0 + 1 + 2),  # the DynamoDB client's defaults: 12 s
        ((2.0, 5.0), 3, 21.0 + 1 + 2),  # AgentCore's defaults: 24 s
        ((1.0, 1.0), 10, 20.0 + 1 + 2 + 4 + 8 + 16 + 20 * 4),  # each back-off capped at 20 s
    ],
)
def test_a_call_budget_covers_every_attempt_and_the_longest_back_off_before_each_retry(
    timeouts: tuple[float, float], attempts: int, budget: float
) -> None:
    assert call_budget_s(*timeouts, attempts) == pytest.approx(budget)
