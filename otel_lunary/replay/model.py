"""What replay rebuilds: conversations of messages, custom events, feedback and calls.

Plain records, close to Lunary's own chat view: a thread is a list of messages and
events in time order; each message carries its latest feedback (with history) and the
LLM calls, agents and tools that ran for it. ``Message`` and ``CustomEvent`` are written
out rather than dataclasses because replay builds a million of them and parses their
JSON only when something reads it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from otel_lunary.replay.content import json_object, parse_content
from otel_lunary.replay.jsonparse import loads_text

CallKind = Literal["llm", "agent", "tool", "other"]


@dataclass(slots=True)
class ToolCall:
    """A tool call an assistant message asked for."""

    id: str | None
    name: str | None
    arguments: Any = None


@dataclass(slots=True)
class FeedbackChange:
    """One key set (or removed, ``removed`` true) by one ``track_feedback`` call."""

    time_ns: int
    key: str
    value: Any
    removed: bool = False


@dataclass(slots=True)
class CallRecord:
    """An LLM call, agent run or tool execution reconciled with a message."""

    kind: CallKind
    name: str
    span_id: str
    trace_id: str
    start_ns: int
    end_ns: int
    operation: str | None = None
    model: str | None = None
    provider: str | None = None
    agent_name: str | None = None
    tool_name: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reasons: list[str] = field(default_factory=list)
    error: str | None = None
    input_messages_json: str | None = None
    output_messages_json: str | None = None
    tool_arguments: Any = None
    tool_result: Any = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    children: list[CallRecord] = field(default_factory=list)

    @property
    def latency_ms(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e6

    @property
    def input_messages(self) -> list[dict[str, Any]] | None:
        """The prompt, parsed on demand: kept as JSON text, it costs a fraction of the memory."""
        return _messages(self.input_messages_json)

    @property
    def output_messages(self) -> list[dict[str, Any]] | None:
        return _messages(self.output_messages_json)


def _messages(text: str | None) -> list[dict[str, Any]] | None:
    if text is None:
        return None
    try:
        loaded = loads_text(text)
    except ValueError:
        loaded = NOT_JSON
    return messages_from(loaded, text)


NOT_JSON: Any = object()
"""``messages_from``'s ``loaded`` for text that is not JSON."""


def messages_from(loaded: Any, text: str) -> list[dict[str, Any]] | None:
    """The messages of ``text`` parsed as ``loaded`` (``NOT_JSON``: kept as one message's text)."""
    if loaded is NOT_JSON:
        return [{"role": "unknown", "parts": [{"type": "text", "content": text}]}]
    if isinstance(loaded, dict):
        loaded = [loaded]
    messages = [m for m in loaded if isinstance(m, dict)] if isinstance(loaded, list) else []
    return messages or None


_EMPTY_TYPES: dict[str, type] = {"tool_calls": list, "user_props": dict, "tags": list, "metadata": dict, "feedback": dict, "feedback_history": list, "calls": list}


class _MadeOnFirstUse:
    """A list or dict field kept None until read: most replayed messages have
    no tags, feedback or calls, and a million empty containers are a large share of
    replay's memory."""

    __slots__ = ("slot", "factory")

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = getattr(owner, "_" + name)
        self.factory = _EMPTY_TYPES[name]

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = self.slot.__get__(instance, owner)
        if value is None:
            value = self.factory()
            self.slot.__set__(instance, value)
        return value

    def __set__(self, instance: Any, value: Any) -> None:
        self.slot.__set__(instance, value)


class Message:
    """A tracked chat message with what happened around it.

    Built by replay with ``Message.recorded``: its content stays the span's
    ``gen_ai.*.messages`` JSON text until ``content``, ``tool_calls`` or ``tool_call_id``
    is first read (``--list`` parses one message per thread; counting and filtering parse
    none). Otherwise it behaves as a plain record: construct it with keywords, compare,
    change fields.
    """

    __slots__ = (
        "id", "role", "time_ns", "span_id", "trace_id", "_content", "_tool_calls", "_tool_call_id", "_unparsed",
        "user_id", "_user_props", "_tags", "_metadata", "is_retry", "truncated", "_feedback", "_feedback_history", "_calls",
    )
    FIELDS = (
        "id", "role", "time_ns", "span_id", "trace_id", "content", "tool_calls", "tool_call_id", "user_id", "user_props",
        "tags", "metadata", "is_retry", "truncated", "feedback", "feedback_history", "calls",
    )

    id: str
    role: str
    time_ns: int
    span_id: str
    trace_id: str
    user_id: str | None
    is_retry: bool
    truncated: bool

    def __init__(
        self,
        id: str,  # noqa: A002 - the field's name
        role: str,
        time_ns: int,
        span_id: str,
        trace_id: str,
        content: str | None = None,
        tool_calls: list[ToolCall] | None = None,
        tool_call_id: str | None = None,
        user_id: str | None = None,
        user_props: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        is_retry: bool = False,
        truncated: bool = False,
        feedback: dict[str, Any] | None = None,
        feedback_history: list[FeedbackChange] | None = None,
        calls: list[CallRecord] | None = None,
    ) -> None:
        self.id = id
        self.role = role
        self.time_ns = time_ns
        self.span_id = span_id
        self.trace_id = trace_id
        self._unparsed = False
        self._content = content
        self._tool_calls = tool_calls
        self._tool_call_id = tool_call_id
        self.user_id = user_id
        self._user_props = user_props
        self._tags = tags
        self._metadata = metadata
        self.is_retry = is_retry
        self.truncated = truncated
        self._feedback = feedback
        self._feedback_history = feedback_history
        self._calls = calls

    @classmethod
    def recorded(
        cls,
        id: str,  # noqa: A002 - the field's name
        role: str,
        time_ns: int,
        span_id: str,
        trace_id: str,
        genai_messages: Any,
        user_id: str | None,
        tool_call_id: Any = None,
    ) -> Message:
        """A message whose content is ``parse_content(genai_messages, tool_call_id)``, parsed when first read.

        Its other fields are the defaults until set (the assembler sets the few a span has).
        """
        message = cls.__new__(cls)
        message.id = id
        message.role = role
        message.time_ns = time_ns
        message.span_id = span_id
        message.trace_id = trace_id
        message._content = genai_messages  # _tool_calls is set when this is parsed
        message._tool_call_id = tool_call_id
        message._unparsed = True
        message.user_id = user_id
        message.is_retry = message.truncated = False
        # set, so that reading them does not raise inside _MadeOnFirstUse (an exception
        # per field read cost more than building the message)
        message._user_props = message._tags = message._metadata = None
        message._feedback = message._feedback_history = message._calls = None
        return message

    def _parse(self) -> None:
        self._unparsed = False
        content, tool_calls, self._tool_call_id = parse_content(self._content, self._tool_call_id)
        self._content = content
        self._tool_calls = [ToolCall(*call) for call in tool_calls]

    def body(self) -> tuple[str | None, Sequence[ToolCall], str | None]:
        """``(content, tool_calls, tool_call_id)`` in one call: renderers read all three for
        every message, and each property is a Python call of its own. Read only: the list
        is not made for a message without tool calls."""
        if self._unparsed:
            self._parse()
        return self._content, self._tool_calls or (), self._tool_call_id

    @property
    def content(self) -> str | None:
        if self._unparsed:
            self._parse()
        return self._content

    @content.setter
    def content(self, value: str | None) -> None:
        if self._unparsed:
            self._parse()
        self._content = value

    @property
    def tool_calls(self) -> list[ToolCall]:
        if self._unparsed:
            self._parse()
        if self._tool_calls is None:
            self._tool_calls = []
        return self._tool_calls

    @tool_calls.setter
    def tool_calls(self, value: list[ToolCall] | None) -> None:
        if self._unparsed:
            self._parse()
        self._tool_calls = value

    @property
    def tool_call_id(self) -> str | None:
        if self._unparsed:
            self._parse()
        return self._tool_call_id  # type: ignore[no-any-return]

    @tool_call_id.setter
    def tool_call_id(self, value: str | None) -> None:
        if self._unparsed:
            self._parse()
        self._tool_call_id = value

    user_props = _MadeOnFirstUse()
    tags = _MadeOnFirstUse()
    metadata = _MadeOnFirstUse()
    feedback = _MadeOnFirstUse()
    feedback_history = _MadeOnFirstUse()
    calls = _MadeOnFirstUse()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.FIELDS)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclasses beside it

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in self.FIELDS) + ")"


class CustomEvent:
    """A custom event tracked with ``thread.track_event``.

    Built by replay with ``CustomEvent.recorded``: its ``lunary.metadata`` JSON is parsed
    when ``metadata`` is first read.
    """

    __slots__ = ("name", "time_ns", "span_id", "trace_id", "user_id", "_metadata", "_unparsed")
    FIELDS = ("name", "time_ns", "span_id", "trace_id", "user_id", "metadata")

    name: str
    time_ns: int
    span_id: str
    trace_id: str
    user_id: str | None

    def __init__(
        self, name: str, time_ns: int, span_id: str, trace_id: str, user_id: str | None = None, metadata: dict[str, Any] | None = None
    ) -> None:
        self.name = name
        self.time_ns = time_ns
        self.span_id = span_id
        self.trace_id = trace_id
        self.user_id = user_id
        self._unparsed = False
        self._metadata = metadata

    @classmethod
    def recorded(cls, name: str, time_ns: int, span_id: str, trace_id: str, user_id: str | None, metadata_json: Any) -> CustomEvent:
        """An event whose metadata is ``json_object(metadata_json)``, parsed when first read (empty for None)."""
        event = cls.__new__(cls)
        event.name = name
        event.time_ns = time_ns
        event.span_id = span_id
        event.trace_id = trace_id
        event.user_id = user_id
        event._unparsed = metadata_json is not None
        event._metadata = metadata_json
        return event

    @property
    def metadata(self) -> dict[str, Any]:
        if self._unparsed:
            self._unparsed = False
            self._metadata = json_object(self._metadata)
        if self._metadata is None:
            self._metadata = {}
        return self._metadata  # type: ignore[no-any-return]

    @metadata.setter
    def metadata(self, value: dict[str, Any] | None) -> None:
        self._unparsed = False
        self._metadata = value

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.FIELDS)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in self.FIELDS) + ")"


Item = Message | CustomEvent


@dataclass(slots=True)
class Conversation:
    """One thread (``gen_ai.conversation.id``): its items in time order."""

    id: str
    items: list[Item] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    unplaced_calls: list[CallRecord] = field(default_factory=list)

    @property
    def messages(self) -> list[Message]:
        return [item for item in self.items if isinstance(item, Message)]

    @property
    def events(self) -> list[CustomEvent]:
        return [item for item in self.items if isinstance(item, CustomEvent)]

    @property
    def users(self) -> list[str]:
        seen: dict[str, None] = {}
        for item in self.items:
            if item.user_id:
                seen.setdefault(item.user_id, None)
        return list(seen)

    @property
    def all_tags(self) -> list[str]:
        """Thread tags then message tags, each once."""
        seen: dict[str, None] = dict.fromkeys(self.tags)
        for message in self.messages:
            for tag in message._tags or ():  # not .tags: that would make an empty list for each message
                seen.setdefault(tag, None)
        return list(seen)

    @property
    def start_ns(self) -> int:
        return self.items[0].time_ns if self.items else 0

    @property
    def end_ns(self) -> int:
        return self.items[-1].time_ns if self.items else 0

    def first_message(self, role: str | None = "user") -> Message | None:
        """The first message of ``role`` (any role when None)."""
        return next((m for m in self.messages if role is None or m.role == role), None)

    def feedback_summary(self) -> Counter[str]:
        """Latest feedback across messages, counted as ``key=value``."""
        counts: Counter[str] = Counter()
        for message in self.messages:
            if message._feedback:  # not .feedback: that would make an empty dict for each message
                for key, value in message._feedback.items():
                    counts[f"{key}={value}"] += 1
        return counts
