"""Converse response bodies as Bedrock sends them: an assistant message with text or a tool use."""

from __future__ import annotations

from typing import Any

SCRIPTED_USAGE = {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15}


def message(content: list[dict[str, Any]], stop_reason: str, usage: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason,
        "usage": dict(usage) if usage else {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0},
        "metrics": {"latencyMs": 1},
    }


def text_response(text: str) -> dict[str, Any]:
    return message([{"text": text}], "end_turn", SCRIPTED_USAGE)


def tool_use_response(
    name: str, tool_input: dict[str, Any] | None = None, tool_use_id: str = "tooluse_1", text: str | None = None
) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"text": text}] if text else []
    content.append({"toolUse": {"toolUseId": tool_use_id, "name": name, "input": tool_input or {}}})
    return message(content, "tool_use", SCRIPTED_USAGE)
