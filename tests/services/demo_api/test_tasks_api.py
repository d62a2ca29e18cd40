"""The task list over HTTP: real RS256 tokens, the scopes `demo-api/tasks.read` and `demo-api/tasks.write`,
tasks kept per person and apart from notes, in the same table as the notes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.demo_api.routes import MAX_TASKS_PER_USER
from tests.services.demo_api.conftest import ALICE, BOB, READ, TASKS_CLIENT_ID, TASKS_READ, TASKS_WRITE, WRITE, DemoApiHarness

SCOPE_REFUSED = 'Bearer realm="demo-api", error="insufficient_scope", scope="{scope}"'


def add(api: DemoApiHarness, text: str, sub: str = ALICE) -> dict[str, Any]:
    response = api.client.post("/tasks", json={"text": text}, headers=api.as_user(sub, (TASKS_WRITE,), client_id=TASKS_CLIENT_ID))
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


def listed(api: DemoApiHarness, sub: str = ALICE) -> list[dict[str, Any]]:
    response = api.client.get("/tasks", headers=api.as_user(sub, (TASKS_READ,), client_id=TASKS_CLIENT_ID))
    assert response.status_code == 200, response.text
    tasks: list[dict[str, Any]] = response.json()["tasks"]
    return tasks


def complete(api: DemoApiHarness, task_id: str, sub: str = ALICE) -> Any:
    return api.client.post(f"/tasks/{task_id}/done", headers=api.as_user(sub, (TASKS_WRITE,), client_id=TASKS_CLIENT_ID))


# ------------------------------------------------------------------------------ the happy paths


def test_tasks_start_empty_then_list_newest_first(api: DemoApiHarness) -> None:
    assert listed(api) == []
    first = add(api, "water the plants")
    assert set(first) == {"id", "text", "done", "created_at"}
    assert first["text"] == "water the plants"
    assert first["done"] is False
    assert first["created_at"].endswith("Z")
    second = add(api, "call Bob")
    assert listed(api) == [second, first]


def test_marking_a_task_done_answers_the_task_and_lists_it_done(api: DemoApiHarness) -> None:
    task = add(api, "book the train")
    other = add(api, "pack")
    response = complete(api, task["id"])
    assert response.status_code == 200
    assert response.json() == {**task, "done": True}
    assert response.headers["cache-control"] == "no-store"
    assert listed(api) == [other, {**task, "done": True}]
    again = complete(api, task["id"])  # done twice: the same answer, nothing else changes
    assert (again.status_code, again.json()) == (200, {**task, "done": True})


def test_a_task_of_exactly_200_characters_is_accepted(api: DemoApiHarness) -> None:
    assert add(api, "é" * 200)["text"] == "é" * 200


# ------------------------------------------------------------------------------ people and kinds kept apart


def test_a_person_cannot_complete_or_see_another_persons_task(api: DemoApiHarness) -> None:
    bobs = add(api, "bob's task", sub=BOB)
    refused = complete(api, bobs["id"], sub=ALICE)
    unknown = complete(api, "0" * 28, sub=ALICE)
    assert refused.status_code == 404
    assert refused.json()["error"] == "task_not_found"
    assert refused.json() == unknown.json()  # the same answer as for an id nobody uses: nothing learnt about Bob
    assert listed(api, ALICE) == []
    assert listed(api, BOB) == [bobs]  # still open


@pytest.mark.parametrize("task_id", ["nope", "0" * 27, "0" * 29, "ABCDEF0123456789ABCDEF012345", "task%230123", "%2E%2E"])
def test_a_malformed_task_id_is_404_with_a_message(api: DemoApiHarness, task_id: str) -> None:
    response = complete(api, task_id)
    assert response.status_code == 404
    assert response.json()["error"] == "task_not_found"
    assert "GET /tasks" in response.json()["message"]


def test_notes_and_tasks_never_mix(api: DemoApiHarness) -> None:
    note = api.client.post("/notes", json={"text": "a note"}, headers=api.as_user(ALICE, (WRITE,))).json()
    task = add(api, "a task")
    assert api.client.get("/notes", headers=api.as_user(ALICE, (READ,))).json() == {"notes": [note]}
    assert listed(api) == [task]
    assert complete(api, note["id"]).status_code == 404  # a note's id names no task


def test_the_user_comes_from_the_token_never_from_the_body(api: DemoApiHarness) -> None:
    for body in ({"text": "mine", "sub": BOB}, {"text": "mine", "user_id": BOB}, {"text": "mine", "done": True}):
        response = api.client.post("/tasks", json=body, headers=api.as_user(ALICE, (TASKS_WRITE,)))
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"
    assert listed(api, BOB) == []
    assert listed(api, ALICE) == []


# ------------------------------------------------------------------------------ limits and bodies


def test_tasks_are_capped_per_user_done_ones_included(api: DemoApiHarness) -> None:
    first = add(api, "task 0")
    complete(api, first["id"])
    for i in range(1, MAX_TASKS_PER_USER):
        add(api, f"task {i}")
    refused = api.client.post("/tasks", json={"text": "one too many"}, headers=api.as_user(ALICE, (TASKS_WRITE,)))
    assert refused.status_code == 409
    assert refused.json()["error"] == "task_limit_reached"
    assert str(MAX_TASKS_PER_USER) in refused.json()["message"]
    assert len(listed(api)) == MAX_TASKS_PER_USER
    assert add(api, "fine", sub=BOB)["text"] == "fine"  # another person is not affected
    note = api.client.post("/notes", json={"text": "notes count apart"}, headers=api.as_user(ALICE, (WRITE,)))
    assert note.status_code == 201


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ({"text": ""}, "1 to 200 characters"),
        ({"text": "x" * 201}, "1 to 200 characters"),
        ({"text": " \t"}, "more than whitespace"),
        ({"text": None}, "must be a string"),
        ({}, "missing field 'text'"),
        ({"text": "ok", "due": "tomorrow"}, "unknown field 'due'"),
        ([{"text": "ok"}], "JSON object"),
    ],
    ids=["empty", "too-long", "blank", "null", "missing", "unknown-field", "array"],
)
def test_bad_task_bodies_are_400_with_a_clear_message(api: DemoApiHarness, body: Any, mentions: str) -> None:
    response = api.client.post("/tasks", json=body, headers=api.as_user(ALICE, (TASKS_WRITE,)))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert mentions in response.json()["message"]
    assert listed(api) == []


def test_malformed_json_and_other_media_types_are_refused(api: DemoApiHarness) -> None:
    headers = api.as_user(ALICE, (TASKS_WRITE,))
    broken = api.client.post("/tasks", content=b'{"text": ', headers={**headers, "content-type": "application/json"})
    assert (broken.status_code, broken.json()["error"]) == (400, "invalid_request")
    huge = api.client.post(
        "/tasks", content=json.dumps({"text": "x" * 9000}).encode(), headers={**headers, "content-type": "application/json"}
    )
    assert huge.status_code == 400
    assert "larger than" in huge.json()["message"]
    plain = api.client.post("/tasks", content=b"text=hi", headers={**headers, "content-type": "text/plain"})
    assert (plain.status_code, plain.json()["error"]) == (415, "unsupported_media_type")


# ------------------------------------------------------------------------------ tokens and scopes


def test_a_notes_token_cannot_read_or_change_tasks(api: DemoApiHarness) -> None:
    task = add(api, "private")
    notes_token = api.as_user(ALICE, (READ, WRITE))
    for method, path, scope in (
        ("GET", "/tasks", TASKS_READ),
        ("POST", "/tasks", TASKS_WRITE),
        ("POST", f"/tasks/{task['id']}/done", TASKS_WRITE),
    ):
        response = api.client.request(
            method, path, json={"text": "x"} if path == "/tasks" and method == "POST" else None, headers=notes_token
        )
        assert response.status_code == 403, (method, path)
        assert response.headers["www-authenticate"] == SCOPE_REFUSED.format(scope=scope)
        assert response.json()["error"] == "insufficient_scope"
        assert f"needs the scope {scope}" in response.json()["message"]
    assert listed(api) == [task]  # still open, nothing added


def test_a_read_token_cannot_complete_a_task(api: DemoApiHarness) -> None:
    task = add(api, "keep open")
    response = api.client.post(f"/tasks/{task['id']}/done", headers=api.as_user(ALICE, (TASKS_READ,)))
    assert response.status_code == 403
    assert listed(api) == [task]


def test_the_token_is_checked_before_the_task_id_and_the_body(api: DemoApiHarness) -> None:
    for response in (
        api.client.post("/tasks/not-an-id/done"),
        api.client.post("/tasks", content=b"not json", headers={"content-type": "application/json"}),
        api.client.get("/tasks", headers=api.as_user(client_id="unlisted-client")),
    ):
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_token"


def test_other_methods_on_task_paths_are_405(api: DemoApiHarness) -> None:
    for method, path in (("DELETE", "/tasks"), ("GET", "/tasks/0123456789abcdef0123456789ab/done"), ("PUT", "/tasks")):
        response = api.client.request(method, path, headers=api.as_user())
        assert response.status_code == 405, (method, path)
        assert response.json()["error"] == "method_not_allowed"
