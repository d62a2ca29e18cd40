"""A loopback stand-in for the Bedrock runtime's Converse API, reached by a real boto3 client
through `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`.

By default it behaves like a model that uses one tool: a user's text gets a `tool_use` of
`auto_tool`; a tool result gets a short text answer quoting it. `script` overrides that, one
response (or error code) per call.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from local.serving import JsonHandler, LoopbackServer

ERRORS = {"ThrottlingException": 429, "AccessDeniedException": 403, "ValidationException": 400, "ModelTimeoutException": 408}


def text_response(text: str) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15},
        "metrics": {"latencyMs": 1},
    }


def tool_use_response(
    name: str, tool_input: dict[str, Any] | None = None, tool_use_id: str = "tooluse_1", text: str | None = None
) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"text": text}] if text else []
    content.append({"toolUse": {"toolUseId": tool_use_id, "name": name, "input": tool_input or {}}})
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15},
        "metrics": {"latencyMs": 1},
    }


class BedrockStandIn:
    def __init__(self, auto_tool: str | None = "get_profile") -> None:
        self.auto_tool = auto_tool
        self.script: list[dict[str, Any] | str | Callable[[dict[str, Any]], dict[str, Any]]] = []
        self.requests: list[dict[str, Any]] = []
        self.record = True
        self.count = 0
        self._lock = threading.Lock()
        standin = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:
                body = self.read_json()
                with standin._lock:
                    standin.count += 1
                    if standin.record:
                        standin.requests.append({"path": self.path, **body})
                    step = standin.script.pop(0) if standin.script else None
                if isinstance(step, str):
                    self._send(ERRORS[step], {"message": "model stand-in error"}, error=step)
                    return
                answer = step(body) if callable(step) else step if step is not None else standin._default(body)
                self._send(200, answer)

            def _send(self, status: int, payload: dict[str, Any], error: str | None = None) -> None:
                self.send_json(status, payload, [("x-amzn-errortype", error)] if error else [])

        self._server = LoopbackServer(Handler, port=0, name="bedrock-standin")

    def _default(self, body: dict[str, Any]) -> dict[str, Any]:
        last = body["messages"][-1]["content"]
        results = [block["toolResult"] for block in last if "toolResult" in block]
        if results:
            return text_response("Result: " + json.dumps(results[0].get("content", []), separators=(",", ":")))
        if self.auto_tool:
            return tool_use_response(self.auto_tool)
        return text_response("Hello!")

    @property
    def endpoint(self) -> str:
        return self._server.base_url

    def start(self) -> BedrockStandIn:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
