"""A LOCAL STAND-IN for the Bedrock runtime's Converse API: a rule-based "model" for `make demo`, not AWS.

The agent reaches it with its unchanged boto3 code through `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, so
the request and response shapes are botocore's (`POST /model/<modelId>/converse`). It does not
understand language. It picks one of the demo API's tools when a message plainly asks for it:

- "show my notes", "list notes", "what are my notes"  -> `list_notes`
- "add a note: buy milk", "note: buy milk", "remember buy milk"  -> `add_note` with the text
- "who am I", "my profile"  -> `get_profile`

and answers a tool result with a short sentence built from it. Anything else gets a reply saying
what it can do. With `BEDROCK_MODEL_ID` and AWS credentials set, `make demo` uses the real model
instead and this stand-in is not started.

Errors use the AWS JSON shape (`x-amzn-errortype`), so botocore raises its usual exceptions:
`script` queues errors for the next calls (reliability tests).
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from typing import Any

from local.serving import JsonHandler, LoopbackServer

ERROR_STATUS = {"ThrottlingException": 429, "ServiceUnavailableException": 503, "ModelTimeoutException": 408, "ValidationException": 400}
MAX_BODY = 1 << 20
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


def _message(content: list[dict[str, Any]], stop_reason: str) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason,
        "usage": {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0},
        "metrics": {"latencyMs": 1},
    }


def answer(request: dict[str, Any]) -> dict[str, Any]:
    """The Converse response for one request body."""
    messages = request.get("messages") or []
    tools = {t["toolSpec"]["name"] for t in (request.get("toolConfig") or {}).get("tools", []) if "toolSpec" in t}
    last = messages[-1] if messages else {"content": []}
    results = [block["toolResult"] for block in last.get("content", []) if "toolResult" in block]
    if results:
        asked = {
            block["toolUse"]["toolUseId"]: block["toolUse"]["name"]
            for message in messages
            for block in message.get("content", [])
            if "toolUse" in block
        }
        text = "\n".join(describe_result(asked.get(r.get("toolUseId", ""), ""), r) for r in results)
        return _message([{"text": text}], "end_turn")
    text = " ".join(block.get("text", "") for block in last.get("content", []) if "text" in block)
    choice = choose_tool(text, tools)
    if choice is None:
        return _message([{"text": HELP}], "end_turn")
    name, tool_input = choice
    use_id = f"tooluse_{len(messages)}"
    return _message([{"toolUse": {"toolUseId": use_id, "name": name, "input": tool_input}}], "tool_use")


class DemoModel:
    """The stand-in served on loopback; `endpoint` goes in AWS_ENDPOINT_URL_BEDROCK_RUNTIME."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.calls = 0
        self.errors: deque[str] = deque()  # scripted errors for the next calls, oldest first
        self._lock = threading.Lock()
        model = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if not re.fullmatch(r"/model/[^/]+/converse", self.path.split("?")[0]) or length > MAX_BODY:
                    self.close_connection = True  # the body was not read: the connection cannot carry another request
                    self._send(400, {"message": "this stand-in serves POST /model/<modelId>/converse only"}, "ValidationException")
                    return
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                    reply = answer(body)
                except (ValueError, KeyError, TypeError, AttributeError):
                    self._send(400, {"message": "the body is not a Converse request"}, "ValidationException")
                    return
                with model._lock:
                    model.calls += 1
                    error = model.errors.popleft() if model.errors else None
                if error:
                    self._send(ERROR_STATUS.get(error, 500), {"message": f"{error} (scripted by the local model stand-in)"}, error)
                    return
                self._send(200, reply)

            def _send(self, status: int, payload: dict[str, Any], error: str | None = None) -> None:
                self.send_json(status, payload, [("x-amzn-errortype", error)] if error else [])

        self._server = LoopbackServer(Handler, host=host, port=port, name="demo-model")

    @property
    def endpoint(self) -> str:
        return self._server.base_url

    def script(self, error: str, count: int = 1) -> None:
        with self._lock:
            self.errors.extend([error] * count)

    def start(self) -> DemoModel:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
