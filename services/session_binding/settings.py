"""The session binding service's settings: the binding mode, the customState echo, the sessions table.

Read from the environment by `services.common.settings.load_settings`; each field's variable is its name,
upper-cased, and is listed in `services.common.environment.SESSION_BINDING`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from services.common.settings import ServiceSettings, call_budget_s


class BindingSettings(ServiceSettings):
    """The session binding service's settings."""

    binding_mode: Literal["same-browser", "same-user"] = "same-browser"
    # Proof 4: the landing must carry AgentCore's echo of the flow's secret customState, in this query
    # parameter. On by default; see docs/session-binding.md for what turning it off costs.
    require_custom_state: bool = True
    custom_state_param: str = Field(default="state", description="query parameter of the landing that carries the customState echo")
    # Shared state of every consent session (started, completed, cancelled): DynamoDB.
    binding_table: str = Field(description="DynamoDB table of consent sessions (partition key `session`, TTL `expires_at`)")
    agent_ui_path: Literal["/"] = "/"  # where success and error pages send people: fixed, never caller-supplied

    @field_validator("custom_state_param")
    @classmethod
    def _state_param(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", value) or value in ("session_id", "code"):
            raise ValueError("expected 1-64 of letters, digits and _ . - (not session_id or code)")
        return value

    @field_validator("binding_table")
    @classmethod
    def _table(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{3,255}", value):
            raise ValueError("expected a DynamoDB table name: 3-255 of letters, digits and _ . -")
        return value

    @property
    def agentcore_call_budget_s(self) -> float:
        """The longest one CompleteResourceTokenAuth can take, every retry included."""
        return call_budget_s(self.agentcore_connect_timeout_s, self.agentcore_read_timeout_s, self.agentcore_max_attempts)

    @property
    def registry_call_budget_s(self) -> float:
        """The longest recording a completion in the connections registry can take, every retry included."""
        return self.dynamodb_call_budget_s

    @property
    def ledger_lease_s(self) -> float:
        """How long a claim on a session holds: one whole AgentCore call and the registry write after it, plus
        5 s for the wait for a worker thread."""
        return self.agentcore_call_budget_s + self.registry_call_budget_s + 5.0
