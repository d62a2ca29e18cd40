"""Tools the model may call, per provider. Inputs and outputs are Pydantic models.

Every tool acts as the signed-in person with the token AgentCore keeps for them. A tool never sees
another user's token and never puts a token in its output. A 401 from the external API means the
stored grant no longer works (revoked, expired beyond refresh): the caller then asks for consent
again with `forceAuthentication`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from services.agent.settings import AgentSettings


class ReauthorizationNeeded(Exception):
    """The external API refused the token (401)."""


class ToolFailed(Exception):
    """The external API failed or answered something unexpected; `summary` is safe to show and to give the model."""

    def __init__(self, summary: str) -> None:
        super().__init__(summary)
        self.summary = summary


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoInput(_Input):
    pass


class AddNoteInput(_Input):
    text: str = Field(min_length=1, max_length=1000, description="The note's text")


class Profile(BaseModel):
    sub: str
    username: str | None = None


class Note(BaseModel):
    id: str
    text: str
    created_at: str | None = None


class NoteList(BaseModel):
    notes: list[Note]


class GitHubUser(BaseModel):
    login: str
    name: str | None = None
    public_repos: int | None = None


class Repo(BaseModel):
    full_name: str
    private: bool = False
    description: str | None = None
    updated_at: str | None = None


class RepoList(BaseModel):
    repos: list[Repo]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    input_model: type[_Input]
    run: Callable[[httpx.AsyncClient, str, Any], Awaitable[BaseModel]]

    def spec(self) -> dict[str, Any]:
        """The Converse API's toolSpec for this tool."""
        schema = self.input_model.model_json_schema()
        schema.pop("title", None)
        return {"toolSpec": {"name": self.name, "description": self.description, "inputSchema": {"json": schema}}}


MAX_RESPONSE_BYTES = 256 * 1024  # what a tool may read: it goes to the model, whose context is finite


async def _get(http: httpx.AsyncClient, url: str, token: str) -> Any:
    return await _request(http, "GET", url, token)


async def _post(http: httpx.AsyncClient, url: str, token: str, body: dict[str, Any]) -> Any:
    return await _request(http, "POST", url, token, body)


async def _request(http: httpx.AsyncClient, method: str, url: str, token: str, body: dict[str, Any] | None = None) -> Any:
    try:
        return await _request_once(http, method, url, token, body)
    except _ShortlyAvailable as busy:
        # e.g. the demo API fetching a rotated signing key: a short wait beats a failed tool call.
        await asyncio.sleep(busy.retry_after_s)
        return await _request_once(http, method, url, token, body)


class _ShortlyAvailable(Exception):
    def __init__(self, retry_after_s: float) -> None:
        super().__init__(retry_after_s)
        self.retry_after_s = retry_after_s


MAX_RETRY_AFTER_S = 2.0


async def _request_once(http: httpx.AsyncClient, method: str, url: str, token: str, body: dict[str, Any] | None) -> Any:
    headers = {"authorization": f"Bearer {token}", "accept": "application/json"}
    async with http.stream(method, url, headers=headers, json=body) as response:
        if response.status_code == 503:
            retry_after = response.headers.get("retry-after", "")
            if retry_after.isascii() and retry_after.isdigit() and int(retry_after) <= MAX_RETRY_AFTER_S:
                raise _ShortlyAvailable(float(retry_after))
            raise ToolFailed("The service is temporarily unavailable. Try again in a few seconds.")
        if response.status_code == 401:
            raise ReauthorizationNeeded
        if response.status_code == 403:
            raise ToolFailed("The service refused this action: the permission given does not cover it.")
        if response.status_code >= 400:
            raise ToolFailed(f"The service answered with an error (HTTP {response.status_code}).")
        data = bytearray()
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) > MAX_RESPONSE_BYTES:
                raise ToolFailed("The service's answer was too large to use.")
    try:
        return json.loads(data)
    except ValueError as exc:
        raise ToolFailed("The service answered something that is not JSON.") from exc


def demo_tools(base_url: str) -> list[Tool]:
    async def get_profile(http: httpx.AsyncClient, token: str, _: NoInput) -> Profile:
        return Profile.model_validate(await _get(http, f"{base_url}/profile", token))

    async def list_notes(http: httpx.AsyncClient, token: str, _: NoInput) -> NoteList:
        return NoteList.model_validate(await _get(http, f"{base_url}/notes", token))

    async def add_note(http: httpx.AsyncClient, token: str, params: AddNoteInput) -> Note:
        return Note.model_validate(await _post(http, f"{base_url}/notes", token, {"text": params.text}))

    return [
        Tool("get_profile", "Get the signed-in person's profile from the demo API.", NoInput, get_profile),
        Tool("list_notes", "List the signed-in person's notes.", NoInput, list_notes),
        Tool("add_note", "Add a note for the signed-in person.", AddNoteInput, add_note),
    ]


def github_tools(base_url: str) -> list[Tool]:
    async def get_user(http: httpx.AsyncClient, token: str, _: NoInput) -> GitHubUser:
        return GitHubUser.model_validate(await _get(http, f"{base_url}/user", token))

    async def list_repos(http: httpx.AsyncClient, token: str, _: NoInput) -> RepoList:
        data = await _get(http, f"{base_url}/user/repos?per_page=20&sort=updated", token)
        if not isinstance(data, list):
            raise ToolFailed("GitHub answered an unexpected shape.")
        return RepoList(repos=[Repo.model_validate(item) for item in data])

    return [
        Tool("get_user", "Get the signed-in person's GitHub account.", NoInput, get_user),
        Tool("list_repos", "List the signed-in person's most recently updated GitHub repositories.", NoInput, list_repos),
    ]


class Connection(BaseModel):
    connected: bool
    provider: str


def connection_tools(provider: str) -> list[Tool]:
    """For providers without API tools here: getting a token proves the connection, and asks for consent when needed."""

    async def connect_account(_http: httpx.AsyncClient, _token: str, _: NoInput) -> Connection:
        return Connection(connected=True, provider=provider)  # reached only with a token for this person

    return [
        Tool(
            "connect_account",
            f"Connect the signed-in person's {provider} account, or check that it is connected.",
            NoInput,
            connect_account,
        )
    ]


def tools_for(settings: AgentSettings) -> list[Tool]:
    if settings.provider_kind == "demo":
        assert settings.demo_api_url is not None  # AgentSettings requires it for demo
        return demo_tools(settings.demo_api_url)
    if settings.provider_kind == "github":
        return github_tools(settings.github_api_url)
    # Google, Microsoft, Slack, custom OIDC: the consent flow and a connection check; add tools for the APIs you use.
    return connection_tools(DISPLAY_NAMES.get(settings.provider_kind, settings.provider_kind))


DISPLAY_NAMES = {
    "demo": "Demo API",
    "github": "GitHub",
    "google": "Google",
    "microsoft": "Microsoft",
    "slack": "Slack",
    "custom-oidc": "your provider",
}
