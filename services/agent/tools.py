"""Tools the model may call, per configured provider. Inputs and outputs are Pydantic models.

Every tool belongs to one provider (`Tool.provider`) and acts as the signed-in person with the token
AgentCore keeps for them at that provider. A demo provider gets a tool only for what its scopes allow
(notes.read: list_notes, tasks.write: add_task ...): the model is never offered an action the grant
cannot cover. A tool never sees another user's token and never puts a token in its output. A 401 from
the external API means the stored grant no longer works (revoked, expired beyond refresh): the caller
then asks for consent again with `forceAuthentication`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from services.agent.settings import AgentSettings, ProviderSpec


class ReauthorizationNeeded(Exception):
    """The external API refused the token (401)."""


class ToolFailed(Exception):
    """The external API failed or answered something unexpected; `summary` is safe to show and to give the model."""

    def __init__(self, summary: str) -> None:
        super().__init__(summary)
        self.summary = summary


class PermissionRefused(ToolFailed):
    """The external API refused the token for this action (403): the token is not reused."""


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoInput(_Input):
    pass


class AddNoteInput(_Input):
    text: str = Field(min_length=1, max_length=1000, description="The note's text")


class AddTaskInput(_Input):
    text: str = Field(min_length=1, max_length=200, description="What the task is")


class CompleteTaskInput(_Input):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="The id of the task, from list_tasks")


class Profile(BaseModel):
    sub: str
    username: str | None = None


class Note(BaseModel):
    id: str
    text: str
    created_at: str | None = None


class NoteList(BaseModel):
    notes: list[Note]


class Task(BaseModel):
    id: str
    text: str
    done: bool = False
    created_at: str | None = None


class TaskList(BaseModel):
    tasks: list[Task]


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
    provider: str = ""  # the name of the configured provider whose token the tool uses

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
            raise PermissionRefused("The service refused this action: the permission given does not cover it.")
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


Runner = Callable[[httpx.AsyncClient, str, Any], Awaitable[BaseModel]]


def _demo_runners(base_url: str) -> dict[str, Runner]:
    async def get_profile(http: httpx.AsyncClient, token: str, _: NoInput) -> Profile:
        return Profile.model_validate(await _get(http, f"{base_url}/profile", token))

    async def list_notes(http: httpx.AsyncClient, token: str, _: NoInput) -> NoteList:
        return NoteList.model_validate(await _get(http, f"{base_url}/notes", token))

    async def add_note(http: httpx.AsyncClient, token: str, params: AddNoteInput) -> Note:
        return Note.model_validate(await _post(http, f"{base_url}/notes", token, {"text": params.text}))

    async def list_tasks(http: httpx.AsyncClient, token: str, _: NoInput) -> TaskList:
        return TaskList.model_validate(await _get(http, f"{base_url}/tasks", token))

    async def add_task(http: httpx.AsyncClient, token: str, params: AddTaskInput) -> Task:
        return Task.model_validate(await _post(http, f"{base_url}/tasks", token, {"text": params.text}))

    async def complete_task(http: httpx.AsyncClient, token: str, params: CompleteTaskInput) -> Task:
        return Task.model_validate(await _post(http, f"{base_url}/tasks/{params.id}/done", token, {}))

    return {f.__name__: f for f in (get_profile, list_notes, add_note, list_tasks, add_task, complete_task)}


# Which demo scope each demo tool needs, and what it does ({} is the provider's display name).
_DEMO_TOOLS: tuple[tuple[str, str, type[_Input], str], ...] = (
    ("demo-api/profile.read", "get_profile", NoInput, "Get the signed-in person's profile from {}."),
    ("demo-api/notes.read", "list_notes", NoInput, "List the signed-in person's notes in {}."),
    ("demo-api/notes.write", "add_note", AddNoteInput, "Add a note for the signed-in person in {}."),
    ("demo-api/tasks.read", "list_tasks", NoInput, "List the signed-in person's tasks in {}, with whether each is done."),
    ("demo-api/tasks.write", "add_task", AddTaskInput, "Add a task to the signed-in person's task list in {}."),
    ("demo-api/tasks.write", "complete_task", CompleteTaskInput, "Mark one of the signed-in person's tasks in {} as done."),
)


def demo_tools(provider: ProviderSpec) -> list[Tool]:
    """The demo API's tools this provider's scopes cover."""
    assert provider.api_url is not None  # ProviderSpec requires it for demo
    runners = _demo_runners(provider.api_url)
    return [
        Tool(name, words.format(provider.display_name), model, runners[name], provider.name)
        for scope, name, model, words in _DEMO_TOOLS
        if scope in provider.scopes
    ]


def github_tools(provider: ProviderSpec, base_url: str) -> list[Tool]:
    async def get_user(http: httpx.AsyncClient, token: str, _: NoInput) -> GitHubUser:
        return GitHubUser.model_validate(await _get(http, f"{base_url}/user", token))

    async def list_repos(http: httpx.AsyncClient, token: str, _: NoInput) -> RepoList:
        data = await _get(http, f"{base_url}/user/repos?per_page=20&sort=updated", token)
        if not isinstance(data, list):
            raise ToolFailed("GitHub answered an unexpected shape.")
        return RepoList(repos=[Repo.model_validate(item) for item in data])

    return [
        Tool("get_user", f"Get the signed-in person's account at {provider.display_name}.", NoInput, get_user, provider.name),
        Tool(
            "list_repos",
            f"List the signed-in person's most recently updated repositories at {provider.display_name}.",
            NoInput,
            list_repos,
            provider.name,
        ),
    ]


class Connection(BaseModel):
    connected: bool
    provider: str


def connection_tools(provider: ProviderSpec) -> list[Tool]:
    """For providers without API tools here: getting a token proves the connection, and asks for consent when needed."""

    async def connect_account(_http: httpx.AsyncClient, _token: str, _: NoInput) -> Connection:
        return Connection(connected=True, provider=provider.display_name)  # reached only with a token for this person

    return [
        Tool(
            "connect_account",
            f"Connect the signed-in person's {provider.display_name} account, or check that it is connected.",
            NoInput,
            connect_account,
            provider.name,
        )
    ]


def _provider_tools(settings: AgentSettings, provider: ProviderSpec) -> list[Tool]:
    if provider.kind == "demo":
        return demo_tools(provider)
    if provider.kind == "github":
        return github_tools(provider, provider.api_url or settings.github_api_url)
    # Google, Microsoft, Slack, custom OIDC: the consent flow and a connection check; add tools for the APIs you use.
    return connection_tools(provider)


def tools_for(settings: AgentSettings) -> list[Tool]:
    """Every configured provider's tools. A name two providers would share gets the provider's name appended
    to the later one (the model picks tools by name: each must be unambiguous)."""
    tools: dict[str, Tool] = {}
    for provider in settings.providers:
        for tool in _provider_tools(settings, provider):
            name = tool.name
            if name in tools:
                name = f"{tool.name}_{provider.name.replace('-', '_')}"
            tools[name] = dataclasses.replace(tool, name=name)
    return list(tools.values())
