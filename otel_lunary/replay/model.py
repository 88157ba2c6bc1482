"""What replay rebuilds: conversations of messages, custom events, feedback and calls.

Plain dataclasses, close to Lunary's own chat view: a thread is a list of messages and
events in time order; each message carries its latest feedback (with history) and the
LLM calls, agents and tools that ran for it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

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
        loaded = json.loads(text)
    except ValueError:
        return [{"role": "unknown", "parts": [{"type": "text", "content": text}]}]
    if isinstance(loaded, dict):
        loaded = [loaded]
    messages = [m for m in loaded if isinstance(m, dict)] if isinstance(loaded, list) else []
    return messages or None


@dataclass(slots=True)
class Message:
    """A tracked chat message with what happened around it."""

    id: str
    role: str
    time_ns: int
    span_id: str
    trace_id: str
    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    user_id: str | None = None
    user_props: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    is_retry: bool = False
    truncated: bool = False
    feedback: dict[str, Any] = field(default_factory=dict)
    feedback_history: list[FeedbackChange] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)


@dataclass(slots=True)
class CustomEvent:
    """A custom event tracked with ``thread.track_event``."""

    name: str
    time_ns: int
    span_id: str
    trace_id: str
    user_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


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
            for tag in message.tags:
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
            for key, value in message.feedback.items():
                counts[f"{key}={value}"] += 1
        return counts


_SLOT = {name: Message.__dict__[name] for name in ("content", "tool_calls", "tool_call_id", "user_props", "tags", "metadata", "feedback", "feedback_history", "calls")}
_NEW_CONTAINERS = {"tool_calls": list, "user_props": dict, "tags": list, "metadata": dict, "feedback": dict, "feedback_history": list, "calls": list}


def _lazy_container(name: str) -> property:
    slot = _SLOT[name]
    factory = _NEW_CONTAINERS[name]

    def get(self: Message) -> Any:
        try:
            return slot.__get__(self, Message)
        except AttributeError:  # never set: the empty default, made on first use
            value = factory()
            slot.__set__(self, value)
            return value

    def set_(self: Message, value: Any) -> None:
        slot.__set__(self, value)

    return property(get, set_)


def _lazy_content(name: str) -> property:
    slot = _SLOT[name]

    def get(self: LazyMessage) -> Any:
        if self._content_source is not None:
            self._parse_content()
        try:
            return slot.__get__(self, Message)
        except AttributeError:
            value: Any = [] if name == "tool_calls" else None
            slot.__set__(self, value)
            return value

    def set_(self: LazyMessage, value: Any) -> None:
        if self._content_source is not None:
            self._parse_content()
        slot.__set__(self, value)

    return property(get, set_)


class LazyMessage(Message):
    """A ``Message`` as replay assembles it: same fields and behaviour, less work up front.

    Its content is kept as the span's ``gen_ai.*.messages`` JSON text and parsed on first
    use of ``content``, ``tool_calls`` or ``tool_call_id`` (``--list`` parses one message
    per thread; counting and filtering parse none), and its empty lists and dicts are
    made only when something reads or fills them. Built by ``LazyMessage.of``.
    """

    __slots__ = ("_content_source",)
    _content_source: tuple[Any, Any, Any] | None  # (parse, raw, tool_call_id) until parsed

    content = _lazy_content("content")
    tool_calls = _lazy_content("tool_calls")
    tool_call_id = _lazy_content("tool_call_id")
    user_props = _lazy_container("user_props")
    tags = _lazy_container("tags")
    metadata = _lazy_container("metadata")
    feedback = _lazy_container("feedback")
    feedback_history = _lazy_container("feedback_history")
    calls = _lazy_container("calls")

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # dataclasses.replace and copies
        self._content_source = None
        Message.__init__(self, *args, **kwargs)

    @classmethod
    def of(
        cls,
        id: str,  # noqa: A002 - the field's name
        role: str,
        time_ns: int,
        span_id: str,
        trace_id: str,
        content_source: tuple[Any, Any, Any] | None,
        user_id: str | None,
        is_retry: bool,
        truncated: bool,
    ) -> LazyMessage:
        """A message whose content comes from ``content_source`` (``(parse, raw, tool_call_id)``) when read."""
        message = cls.__new__(cls)
        message.id = id
        message.role = role
        message.time_ns = time_ns
        message.span_id = span_id
        message.trace_id = trace_id
        message._content_source = content_source
        message.user_id = user_id
        message.is_retry = is_retry
        message.truncated = truncated
        return message

    def _parse_content(self) -> None:
        source = self._content_source
        if source is None:
            return
        parse, raw, tool_call_id = source
        self._content_source = None
        content, tool_calls, tool_call_id = parse(raw, tool_call_id)
        _SLOT["content"].__set__(self, content)
        _SLOT["tool_calls"].__set__(self, tool_calls)
        _SLOT["tool_call_id"].__set__(self, tool_call_id)


_EVENT_METADATA = CustomEvent.__dict__["metadata"]


def _event_metadata(self: LazyCustomEvent) -> dict[str, Any]:
    source = self._metadata_source
    if source is not None:
        self._metadata_source = None
        parse, raw = source
        _EVENT_METADATA.__set__(self, parse(raw))
    try:
        value: dict[str, Any] = _EVENT_METADATA.__get__(self, CustomEvent)
    except AttributeError:  # never set: the empty default, made on first use
        value = {}
        _EVENT_METADATA.__set__(self, value)
    return value


def _set_event_metadata(self: LazyCustomEvent, value: dict[str, Any]) -> None:
    self._metadata_source = None
    _EVENT_METADATA.__set__(self, value)


class LazyCustomEvent(CustomEvent):
    """A ``CustomEvent`` as replay assembles it: its ``lunary.metadata`` JSON is parsed on first read.

    Same fields and behaviour as a ``CustomEvent``; built by ``LazyCustomEvent.of``.
    """

    __slots__ = ("_metadata_source",)
    _metadata_source: tuple[Any, Any] | None  # (parse, raw) until parsed

    metadata = property(_event_metadata, _set_event_metadata)  # type: ignore[assignment]

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # dataclasses.replace and copies
        self._metadata_source = None
        CustomEvent.__init__(self, *args, **kwargs)

    @classmethod
    def of(
        cls,
        name: str,
        time_ns: int,
        span_id: str,
        trace_id: str,
        user_id: str | None,
        metadata_source: tuple[Any, Any] | None,
    ) -> LazyCustomEvent:
        """An event whose metadata is ``parse(raw)`` for ``metadata_source`` ``(parse, raw)``, or empty when None."""
        event = cls.__new__(cls)
        event.name = name
        event.time_ns = time_ns
        event.span_id = span_id
        event.trace_id = trace_id
        event.user_id = user_id
        event._metadata_source = metadata_source
        return event
