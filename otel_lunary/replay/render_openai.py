"""OpenAI-style messages, one JSON line per conversation: ``{"messages": [...]}``.

The shape fine-tuning and eval tools take: role, content, and for tool use
``tool_calls`` (assistant) and ``tool_call_id`` (tool). Events, feedback and calls are
not part of that format and are left out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TextIO

from otel_lunary.replay._gc import deferred_collections
from otel_lunary.replay.model import Conversation, Message


def _arguments(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def openai_message(message: Message) -> dict[str, Any]:
    """One message in the OpenAI chat format."""
    data: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.content is None and not (message.role == "assistant" and message.tool_calls):
        data["content"] = ""
    if message.tool_calls:
        data["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": _arguments(call.arguments)}}
            for call in message.tool_calls
        ]
    if message.role == "tool" and message.tool_call_id:
        data["tool_call_id"] = message.tool_call_id
    return data


@deferred_collections()  # see _gc: rendering makes no cycles either
def render(conversations: Iterable[Conversation], out: TextIO) -> None:
    for conversation in conversations:
        messages = [openai_message(m) for m in conversation.messages]
        out.write(json.dumps({"messages": messages}, ensure_ascii=False))
        out.write("\n")
