"""A recorded conversation seen as the turns a new model is asked to redo.

A turn is the run of assistant and tool messages that answered what came before it:
the assistant may call tools, read their results and answer again, and only the last
assistant message is the reply the user saw. Asking a new model "what would you have
said here" means sending everything before that run and comparing its final answer
with the recorded one, so the run, not each assistant message, is the unit compared.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from otel_lunary.replay.model import CallRecord, Conversation, Message

@dataclass(frozen=True, slots=True)
class RecordedTurn:
    """One recorded turn: what was asked (``prompt``, after ``history``) and how it was answered."""

    index: int  # 1-based, in conversation order
    history: tuple[Message, ...]  # every message before the replies (the prompt included)
    prompt: tuple[Message, ...]  # the messages since the previous turn's replies (user, system)
    replies: tuple[Message, ...]  # assistant and tool messages, in order; at least one assistant

    @property
    def reply(self) -> Message:
        """The turn's last assistant message: the answer the new one is compared with."""
        return next(m for m in reversed(self.replies) if m.role == "assistant")

    @property
    def question(self) -> str | None:
        """The text of the last user message before the turn, for showing what was asked."""
        user = next((m for m in reversed(self.history) if m.role == "user"), None)
        return user.content if user is not None else None

    def tool_calls(self) -> list[tuple[str, Any]]:
        """``(name, arguments)`` of every tool call the recorded assistant made in the turn."""
        return [(call.name or "", parse_arguments(call.arguments)) for m in self.replies if m.role == "assistant" for call in m.tool_calls]

    def llm_calls(self) -> list[CallRecord]:
        """The recorded LLM calls of the turn: under the message that prompted it and under its replies."""
        owners = [self.prompt[-1]] if self.prompt else []
        return [call for message in (*owners, *self.replies) for call in _flatten(message.calls) if call.kind == "llm"]

    def feedback(self) -> dict[str, Any]:
        """The latest feedback on the turn's assistant messages (the final reply's wins)."""
        merged: dict[str, Any] = {}
        for message in self.replies:
            if message.role == "assistant":
                merged.update(message.feedback)
        return merged


def _flatten(calls: list[CallRecord]) -> Iterator[CallRecord]:
    for call in calls:
        yield call
        yield from _flatten(call.children)


def split_turns(conversation: Conversation) -> list[RecordedTurn]:
    """The conversation's turns, in order. Messages after the last answer are not a turn."""
    turns: list[RecordedTurn] = []
    history: list[Message] = []
    prompt: list[Message] = []
    replies: list[Message] = []

    def close() -> None:
        turns.append(RecordedTurn(len(turns) + 1, tuple(history), tuple(prompt), tuple(replies)))
        prompt.clear()
        history.extend(replies)
        replies.clear()

    for message in conversation.messages:
        # A run of replies starts at an assistant message; a stray tool message before
        # any is part of what the next turn is asked.
        if message.role == "assistant" or (message.role == "tool" and replies):
            replies.append(message)
            continue
        if replies:
            close()
        history.append(message)
        prompt.append(message)
    if replies:
        close()
    return turns


def parse_arguments(arguments: Any) -> Any:
    """Tool-call arguments as data: JSON text is parsed, anything else is kept."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def canonical_arguments(arguments: Any) -> str:
    """One text per set of arguments, whatever the key order or spacing they were sent with."""
    value = parse_arguments(arguments)
    if isinstance(value, str):
        return value.strip()
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def recorded_model(conversation: Conversation) -> str | None:
    """The model of the conversation's last recorded LLM call (what to rerun with, without ``--model``)."""
    found: str | None = None
    for message in conversation.messages:
        for call in _flatten(message.calls):
            if call.kind == "llm" and call.model:
                found = call.model
    return found


@dataclass(frozen=True, slots=True)
class RecordedResult:
    """What a recorded tool call returned, and the tool message that carried it (when tracked)."""

    content: str
    message_id: str | None


@dataclass
class RecordedTools:
    """The tool results a conversation recorded, looked up by tool name and arguments.

    Tool messages (``tool_call_id`` answering an assistant's call) come first, since they
    are what the model was shown; results of ``lunary.tool`` spans fill in the rest.
    """

    results: dict[tuple[str, str], RecordedResult] = field(default_factory=dict)
    definitions: dict[str, Any] = field(default_factory=dict)  # tool name -> sample arguments

    @classmethod
    def of(cls, conversation: Conversation) -> RecordedTools:
        tools = cls()
        messages = conversation.messages
        answers = {m.tool_call_id: m for m in messages if m.role == "tool" and m.tool_call_id}
        for message in messages:
            for call in message.tool_calls if message.role == "assistant" else []:
                if not call.name:
                    continue
                tools.definitions.setdefault(call.name, parse_arguments(call.arguments))
                answer = answers.get(call.id) if call.id else None
                if answer is not None:
                    key = (call.name, canonical_arguments(call.arguments))
                    tools.results.setdefault(key, RecordedResult(answer.content or "", answer.id))
        spans = [call for m in messages for call in _flatten(m.calls)] + list(_flatten(conversation.unplaced_calls))
        for span in spans:
            if span.kind == "tool" and span.tool_name and span.tool_result is not None:
                tools.definitions.setdefault(span.tool_name, parse_arguments(span.tool_arguments))
                key = (span.tool_name, canonical_arguments(span.tool_arguments))
                result = span.tool_result if isinstance(span.tool_result, str) else json.dumps(span.tool_result, ensure_ascii=False)
                tools.results.setdefault(key, RecordedResult(result, None))
        return tools

    def find(self, name: str, arguments: Any) -> RecordedResult | None:
        """The recorded result of this exact call, or None when the recording never made it."""
        return self.results.get((name, canonical_arguments(arguments)))

    def openai_tools(self) -> list[dict[str, Any]]:
        """Function definitions for the tools the recording used, their parameters inferred from its calls.

        The recording keeps calls, not the tool schemas the application offered, so this
        is the best available without ``--tools``: the names the model knew, and argument
        names and types as they were used.
        """
        return [
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": f"{name} (recorded tool; answered from the recording)",
                    "parameters": _schema(sample),
                },
            }
            for name, sample in self.definitions.items()
        ]


_JSON_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (list, "array"), (dict, "object"))


def _schema(sample: Any) -> dict[str, Any]:
    if not isinstance(sample, dict):
        return {"type": "object", "properties": {}}
    properties = {
        key: {"type": next((name for kind, name in _JSON_TYPES if isinstance(value, kind)), "string")}
        for key, value in sample.items()
    }
    return {"type": "object", "properties": properties, "required": list(sample)}
