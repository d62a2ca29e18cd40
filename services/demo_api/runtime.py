"""What the demo API builds once per process from its settings: the access token verifier, and the notes
and tasks stores over one table client."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from services.demo_api.notes import DynamoDbNotesStore, NotesStore
from services.demo_api.settings import DemoApiSettings
from services.demo_api.table import DemoTable
from services.demo_api.tasks import DynamoDbTasksStore, TasksStore
from services.demo_api.tokens import AccessTokenVerifier, JwksKeyStore


@dataclass(frozen=True)
class Runtime:
    """Everything built once per process from the settings."""

    settings: DemoApiSettings
    verifier: AccessTokenVerifier
    notes: NotesStore
    tasks: TasksStore

    @classmethod
    def build(cls, settings: DemoApiSettings, clock: Callable[[], float]) -> Runtime:
        verifier = AccessTokenVerifier(
            issuer=settings.demo_issuer, client_ids=settings.demo_client_ids, keys=JwksKeyStore(settings.jwks_url), clock=clock
        )
        table = DemoTable(settings.notes_table, region=settings.aws_region)
        return cls(settings, verifier, notes=DynamoDbNotesStore(table), tasks=DynamoDbTasksStore(table))


async def app_runtime(request: Request) -> Runtime:  # async: FastAPI would run a plain function in a worker thread
    runtime: Runtime = request.app.state.runtime()
    return runtime


DemoRuntime = Annotated[Runtime, Depends(app_runtime)]
