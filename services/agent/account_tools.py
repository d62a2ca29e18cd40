"""Tools about the person's connected accounts themselves, for chat requests such as "what accounts are
connected?" and "disconnect my notes account".

They use no provider's token: they read the connections registry for the signed-in person only.
`disconnect_account` never disconnects by itself: a model's tool call is no confirmation (a note or a
repository description could ask for it). It names the account and the chat shows a card where the
person confirms, which calls `POST /api/connections/{name}/disconnect` like the connections page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.agent.settings import AgentSettings, ProviderSpec
from services.common.alb_identity import AlbIdentity
from services.common.connections import Connection, ConnectionsRegistry, connection_user


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoAccountInput(_Input):
    pass


class AccountInput(_Input):
    account: str = Field(min_length=1, max_length=40, description="The account's name or display name, e.g. notes or Demo Notes")


class AccountState(BaseModel):
    name: str
    display_name: str
    status: str  # connected, disconnected, not_connected
    permissions: list[str]


class AccountList(BaseModel):
    accounts: list[AccountState]


class DisconnectAsked(BaseModel):
    """The person is asked to confirm in the chat; nothing is disconnected yet."""

    account: str
    display_name: str
    confirmation: str = "The person confirms or cancels on a card in the chat; nothing has been disconnected yet."


class UnknownAccount(Exception):
    """The model named an account that is not configured; `summary` lists the ones that are."""

    def __init__(self, summary: str) -> None:
        super().__init__(summary)
        self.summary = summary


@dataclass(frozen=True)
class AccountScope:
    """What an account tool may read: this person's records, and the configuration."""

    settings: AgentSettings
    connections: ConnectionsRegistry
    identity: AlbIdentity


@dataclass(frozen=True)
class AccountTool:
    name: str
    description: str
    input_model: type[_Input]
    run: Callable[[AccountScope, Any], Awaitable[BaseModel]]

    def spec(self) -> dict[str, Any]:
        """The Converse API's toolSpec for this tool."""
        schema = self.input_model.model_json_schema()
        schema.pop("title", None)
        return {"toolSpec": {"name": self.name, "description": self.description, "inputSchema": {"json": schema}}}


async def list_connections(scope: AccountScope, _: NoAccountInput) -> AccountList:
    records: dict[str, Connection] = {c.provider: c for c in await scope.connections.list(connection_user(scope.identity))}
    return AccountList(
        accounts=[
            AccountState(
                name=p.name,
                display_name=p.display_name,
                status=records[p.name].status.value if p.name in records else "not_connected",
                permissions=p.permissions,
            )
            for p in scope.settings.providers
        ]
    )


async def disconnect_account(scope: AccountScope, params: AccountInput) -> DisconnectAsked:
    provider = find_account(scope.settings, params.account)
    return DisconnectAsked(account=provider.name, display_name=provider.display_name)


def find_account(settings: AgentSettings, named: str) -> ProviderSpec:
    """The configured provider the person means: by name or display name, case and spacing aside."""
    wanted = " ".join(named.lower().replace("-", " ").split()).removesuffix(" account")
    for provider in settings.providers:
        if wanted in (provider.name.replace("-", " "), provider.display_name.lower(), provider.display_name.lower().removeprefix("demo ")):
            return provider
    names = ", ".join(p.display_name for p in settings.providers)
    raise UnknownAccount(f"There is no account of that name. The accounts are: {names}.")


ACCOUNT_TOOLS = (
    AccountTool(
        "list_connections",
        "List the accounts the agent may use for the signed-in person, with whether each is connected and its permissions.",
        NoAccountInput,
        list_connections,
    ),
    AccountTool(
        "disconnect_account",
        "Ask the signed-in person to confirm disconnecting one of their accounts. It does not disconnect by itself.",
        AccountInput,
        disconnect_account,
    ),
)
