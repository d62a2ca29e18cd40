"""The demo model's rules: which demo API tool a plain request asks for, and one sentence per tool result.

It does not understand language. It picks one of the demo API's tools when a message plainly asks for it:

- "show my notes", "list notes", "what are my notes"  -> `list_notes`
- "add a note: buy milk", "note: buy milk", "remember buy milk"  -> `add_note` with the text
- "who am I", "my profile"  -> `get_profile`
- "show my tasks", "my task list", "what are my tasks"  -> `list_tasks`
- "add a task: call the bank", "task: call the bank", "todo: call the bank"  -> `add_task` with the text
- "done: 3f9c..." / "complete task 3f9c..."  -> `complete_task` with that id
- "what accounts are connected?", "my connected accounts"  -> `list_connections`
- "disconnect my notes account", "disconnect Demo Tasks"  -> `disconnect_account` with that account

and answers a tool result with a short sentence built from it. Anything else gets a reply saying what it can do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from local.bedrock.responses import message

HELP = (
    "I am the local demo model (a stand-in, not a real language model). Try: "
    '"show my notes", "add a note: water the plants", "show my tasks", "add a task: call the bank" or "who am I".'
)

_ADD = re.compile(
    r"^\s*(?:please\s+)?(?:add\s+(?:a\s+)?note|note|remember)\b(?:\s*:\s*|\s+(?:that\s+)?)(?P<text>\S.*?)\s*$", re.IGNORECASE | re.DOTALL
)
_LIST = re.compile(r"\bnotes\b", re.IGNORECASE)
_ADD_TASK = re.compile(
    r"^\s*(?:please\s+)?(?:add\s+(?:a\s+)?task|task|todo)\b(?:\s*:\s*|\s+)(?P<text>\S.*?)\s*$", re.IGNORECASE | re.DOTALL
)
_DONE = re.compile(r"^\s*(?:done|complete(?:\s+task)?|finish(?:\s+task)?)\s*:?\s*(?P<id>[A-Za-z0-9_-]{1,64})\s*$", re.IGNORECASE)
_DISCONNECT = re.compile(
    r"^\s*(?:please\s+)?disconnect\s+(?:my\s+|the\s+)?(?P<account>[A-Za-z][A-Za-z0-9 -]{0,39}?)(?:\s+account)?\s*[.!?]?\s*$", re.I
)
_ACCOUNTS = re.compile(r"\baccounts?\b.*\bconnected\b|\bconnected\s+accounts?\b|\bconnections\b", re.IGNORECASE)
_TASKS = re.compile(r"\btasks?\b|\bto-?do\b", re.IGNORECASE)
_PROFILE = re.compile(r"\bwho\s+am\s+i\b|\bprofile\b", re.IGNORECASE)


def _wanted(text: str) -> list[tuple[str, dict[str, Any]]]:
    """Every tool the request plainly asks for, most specific first."""
    wanted: list[tuple[str, dict[str, Any]]] = []
    if disconnect := _DISCONNECT.match(text):
        wanted.append(("disconnect_account", {"account": disconnect.group("account")}))
    if _ACCOUNTS.search(text):
        wanted.append(("list_connections", {}))
    if add := _ADD.match(text):
        wanted.append(("add_note", {"text": add.group("text")[:1000]}))
    if (task := _ADD_TASK.match(text)) and not task.group("text").lower().startswith("list"):
        wanted.append(("add_task", {"text": task.group("text")[:200]}))
    if done := _DONE.match(text):
        wanted.append(("complete_task", {"id": done.group("id")}))
    if _PROFILE.search(text):
        wanted.append(("get_profile", {}))
    if _LIST.search(text):
        wanted.append(("list_notes", {}))
    if _TASKS.search(text):
        wanted.append(("list_tasks", {}))
    return wanted


def choose_tool(text: str, tools: set[str]) -> tuple[str, dict[str, Any]] | None:
    """The tool a plain request asks for, if the agent offers it."""
    return next(((name, arguments) for name, arguments in _wanted(text) if name in tools), None)


def _notes(data: dict[str, Any]) -> str:
    notes = data.get("notes") or []
    if not notes:
        return 'You have no notes yet. Say "add a note: ..." to add one.'
    return "Your notes:\n" + "\n".join(f"- {note.get('text', '')}" for note in notes)


def _tasks(data: dict[str, Any]) -> str:
    tasks = data.get("tasks") or []
    if not tasks:
        return 'Your task list is empty. Say "add a task: ..." to add one.'
    return "Your tasks:\n" + "\n".join(f"- [{'x' if t.get('done') else ' '}] {t.get('text', '')} (id {t.get('id', '?')})" for t in tasks)


def _accounts(data: dict[str, Any]) -> str:
    words = {"connected": "connected", "disconnected": "disconnected", "not_connected": "not connected"}
    lines = [f"- {a.get('display_name', '?')}: {words.get(str(a.get('status')), 'unknown')}" for a in data.get("accounts") or []]
    return "Your accounts:\n" + "\n".join(lines) if lines else "No accounts are set up for the agent."


_DESCRIBE: dict[str, Callable[[dict[str, Any]], str]] = {
    "list_connections": _accounts,
    "disconnect_account": lambda data: f"Please confirm on the card below to disconnect {data.get('display_name', 'that account')}.",
    "list_notes": _notes,
    "add_note": lambda data: f"Added your note: {data.get('text', '')}",
    "list_tasks": _tasks,
    "add_task": lambda data: f"Added to your task list: {data.get('text', '')}",
    "complete_task": lambda data: f"Marked as done: {data.get('text', '')}",
    "get_profile": lambda data: f"You are {data.get('username') or 'signed in'} at the demo API (user id {data.get('sub', '?')}).",
}


def describe_result(tool: str, result: dict[str, Any]) -> str:
    """One sentence from a tool result, as a model would summarise it."""
    if result.get("status") == "error":
        texts = [block.get("text", "") for block in result.get("content", []) if isinstance(block, dict)]
        return "That did not work: " + (" ".join(t for t in texts if t) or "the tool failed.")
    data: dict[str, Any] = next((block["json"] for block in result.get("content", []) if isinstance(block, dict) and "json" in block), {})
    describe = _DESCRIBE.get(tool)
    return describe(data) if describe else "Done: " + json.dumps(data, separators=(",", ":"))[:500]


def answer(request: dict[str, Any]) -> dict[str, Any]:
    """The Converse response for one request body."""
    messages = request.get("messages") or []
    tools = {t["toolSpec"]["name"] for t in (request.get("toolConfig") or {}).get("tools", []) if "toolSpec" in t}
    last = messages[-1] if messages else {"content": []}
    results = [block["toolResult"] for block in last.get("content", []) if "toolResult" in block]
    if results:
        asked = {
            block["toolUse"]["toolUseId"]: block["toolUse"]["name"]
            for turn in messages
            for block in turn.get("content", [])
            if "toolUse" in block
        }
        text = "\n".join(describe_result(asked.get(r.get("toolUseId", ""), ""), r) for r in results)
        return message([{"text": text}], "end_turn")
    text = " ".join(block.get("text", "") for block in last.get("content", []) if "text" in block)
    choice = choose_tool(text, tools)
    if choice is None:
        return message([{"text": HELP}], "end_turn")
    name, tool_input = choice
    use_id = f"tooluse_{len(messages)}"
    return message([{"toolUse": {"toolUseId": use_id, "name": name, "input": tool_input}}], "tool_use")
