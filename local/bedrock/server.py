"""The Converse stand-in served on loopback: scripted answers and errors first, then the model's own rules.

`DemoModel` answers by the demo's rules (`rules.py`); `BedrockStandIn` is the same server answering
like a model that always uses one tool (`auto_tool`), for the agent's tests.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Self

from local.bedrock.responses import text_response, tool_use_response
from local.bedrock.rules import answer
from local.serving import JsonHandler, LoopbackServer

ERROR_STATUS = {
    "ThrottlingException": 429,
    "ServiceUnavailableException": 503,
    "ModelTimeoutException": 408,
    "ValidationException": 400,
    "AccessDeniedException": 403,
}
MAX_BODY = 1 << 20
CONVERSE_PATH = re.compile(r"/model/[^/]+/converse")

Step = dict[str, Any] | str | Callable[[dict[str, Any]], dict[str, Any]]


class Script(list[Step]):
    """The next calls' answers, oldest first: a response body, an AWS error code, or a function of the request.
    `script("ThrottlingException", 2)` queues an error twice."""

    def __call__(self, error: str, count: int = 1) -> None:
        self.extend([error] * count)


class DemoModel:
    """The stand-in; `endpoint` goes in AWS_ENDPOINT_URL_BEDROCK_RUNTIME. `calls` counts Converse calls,
    `requests` keeps their bodies (with `path`) while `record` is on."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, record: bool = False) -> None:
        self.calls = 0
        self.record = record
        self.requests: list[dict[str, Any]] = []
        self._script = Script()
        self._lock = threading.Lock()
        handler = type("BoundConverseHandler", (ConverseHandler,), {"model": self})
        self._server = LoopbackServer(handler, host=host, port=port, name="model-standin")

    @property
    def script(self) -> Script:
        return self._script

    @script.setter
    def script(self, steps: Iterable[Step]) -> None:
        with self._lock:
            self._script = Script(steps)

    @property
    def endpoint(self) -> str:
        return self._server.base_url

    def respond(self, body: dict[str, Any]) -> dict[str, Any]:
        """The answer when nothing is scripted."""
        return answer(body)

    def next_step(self, path: str, body: dict[str, Any]) -> Step | None:
        with self._lock:
            self.calls += 1
            if self.record:
                self.requests.append({"path": path, **body})
            return self._script.pop(0) if self._script else None

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()


class BedrockStandIn(DemoModel):
    """A model that uses one tool: a user's text gets a `tool_use` of `auto_tool` (or "Hello!" without one),
    a tool result gets "Result: <its content>". Records every request."""

    def __init__(self, auto_tool: str | None = "get_profile") -> None:
        super().__init__(record=True)
        self.auto_tool = auto_tool

    def respond(self, body: dict[str, Any]) -> dict[str, Any]:
        last = body["messages"][-1]["content"]
        results = [block["toolResult"] for block in last if "toolResult" in block]
        if results:
            return text_response("Result: " + json.dumps(results[0].get("content", []), separators=(",", ":")))
        if self.auto_tool:
            return tool_use_response(self.auto_tool)
        return text_response("Hello!")


class ConverseHandler(JsonHandler):
    """`POST /model/<modelId>/converse`, answered from the model's script or its rules."""

    model: ClassVar[DemoModel]

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if not CONVERSE_PATH.fullmatch(self.path.split("?")[0]) or length > MAX_BODY:
            self.close_connection = True  # the body was not read: the connection cannot carry another request
            self._send(400, {"message": "this stand-in serves POST /model/<modelId>/converse only"}, "ValidationException")
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise TypeError("not an object")
        except (ValueError, TypeError):
            self._send(400, {"message": "the body is not a Converse request"}, "ValidationException")
            return
        step = self.model.next_step(self.path, body)
        if isinstance(step, str):
            self._send(ERROR_STATUS.get(step, 500), {"message": f"{step} (scripted by the local model stand-in)"}, step)
            return
        try:
            reply = step(body) if callable(step) else step if step is not None else self.model.respond(body)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            self._send(400, {"message": "the body is not a Converse request"}, "ValidationException")
            return
        self._send(200, reply)

    def _send(self, status: int, payload: dict[str, Any], error: str | None = None) -> None:
        self.send_json(status, payload, [("x-amzn-errortype", error)] if error else [])
