"""The demo model's rules: which demo API tool a plain request asks for, and one sentence per tool result.

It does not understand language. It picks one of the demo API's tools when a message plainly asks for it:

- "show my notes", "list notes", "what are my notes"  -> `list_notes`
- "add a note: buy milk", "note: buy milk", "remember buy milk"  -> `add_note` with the text
- "who am I", "my profile"  -> `get_profile`

and answers a tool result with a short sentence built from it. Anything else gets a reply saying what it can do.
"""

from __future__ import annotations

import json
import re
from typing import Any

from local.bedrock.responses import message

HELP = (
    'I am the local demo model (a stand-in, not a real language model). Try: "show my notes", "add a note: water the plants" or "who am I".'
)

_ADD = re.compile(
    r"^\s*(?:please\s+)?(?:add\s+(?:a\s+)?note|note|remember)\b(?:\s*:\s*|\s+(?:that\s+)?)(?P<text>\S.*?)\s*$", re.IGNORECASE | re.DOTALL
)
_LIST = re.compile(r"\bnotes\b", re.IGNORECASE)
_PROFILE = re.compile(r"\bwho\s+am\s+i\b|\bprofile\b", re.IGNORECASE)


def choose_tool(text: str, tools: set[str]) -> tuple[str, dict[str, Any]] | None:
    """The tool a plain request asks for, if the agent offers it."""
    add = _ADD.match(text)
    if add and "add_note" in tools:
        return "add_note", {"text": add.group("text")[:1000]}
    if _PROFILE.search(text) and "get_profile" in tools:
        return "get_profile", {}
    if _LIST.search(text) and "list_notes" in tools:
        return "list_notes", {}
    return None


def describe_result(tool: str, result: dict[str, Any]) -> str:
    """One sentence from a tool result, as a model would summarise it."""
    if result.get("status") == "error":
        texts = [block.get("text", "") for block in result.get("content", []) if isinstance(block, dict)]
        return "That did not work: " + (" ".join(t for t in texts if t) or "the tool failed.")
    data: dict[str, Any] = next((block["json"] for block in result.get("content", []) if isinstance(block, dict) and "json" in block), {})
    if tool == "list_notes":
        notes = data.get("notes") or []
        if not notes:
            return 'You have no notes yet. Say "add a note: ..." to add one.'
        return "Your notes:\n" + "\n".join(f"- {note.get('text', '')}" for note in notes)
    if tool == "add_note":
        return f"Added your note: {data.get('text', '')}"
    if tool == "get_profile":
        return f"You are {data.get('username') or 'signed in'} at the demo API (user id {data.get('sub', '?')})."
    return "Done: " + json.dumps(data, separators=(",", ":"))[:500]


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
