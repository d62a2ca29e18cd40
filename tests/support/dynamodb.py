"""Tests against the local DynamoDB (`local/dynamodb.py`): tables on the session's server, and the
environment through which code that builds its own boto3 client (the services) finds it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from local.dynamodb import CREDENTIALS, LocalDynamoDB, TableShape, create_table


def client_environment(server: LocalDynamoDB) -> dict[str, str]:
    """What a process needs to reach `server` with boto3's default chain: the standard endpoint
    variable, dummy credentials, and no configuration files or instance metadata."""
    return {
        "AWS_ENDPOINT_URL_DYNAMODB": server.endpoint,
        "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def use_local_dynamodb(monkeypatch: pytest.MonkeyPatch, server: LocalDynamoDB) -> None:
    """Point this process's boto3 clients at `server` for one test; loopback never goes through a proxy."""
    for name, value in client_environment(server).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    for name in ("NO_PROXY", "no_proxy"):
        present = [host for host in os.environ.get(name, "").split(",") if host.strip()]
        if server.host not in present:
            monkeypatch.setenv(name, ",".join([*present, server.host]))


@contextmanager
def table(server: LocalDynamoDB, name: str, shape: TableShape) -> Iterator[str]:
    """A table that exists for the duration of the block, then is deleted (the server lives all session)."""
    client = server.client()
    create_table(client, name, shape)
    try:
        yield name
    finally:
        client.delete_table(TableName=name)
