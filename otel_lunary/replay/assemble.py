"""Folding a stream of spans into conversations.

Spans arrive in export order (by end time, batched, several files and processes), so a
reply's LLM call can come before the message it belongs to and feedback can come days
later from another process. ``Assembler.add`` therefore keeps a compact record of every
span that matters (messages, events, feedback, GenAI calls) and drops the rest at once;
``finish`` joins them. Memory grows with the conversations, not with the input.

Joins, in order of preference:
- a call belongs to its parent call or parent message; failing that (an unrecorded span
  in between) to the first message of its trace, which is the turn's user message;
- feedback belongs to its parent span (the message span); failing that (a root feedback
  span from another process) to the message whose ``lunary.message.id`` it names.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any

from otel_lunary._content import content_attributes, tool_call_id_attributes
from otel_lunary.attributes import (
    GEN_AI_CONVERSATION_ID,
    GEN_AI_OPERATION_NAME,
    LUNARY_CONTENT_TRUNCATED,
    LUNARY_EVENT_NAME,
    LUNARY_FEEDBACK,
    LUNARY_FEEDBACK_MESSAGE_ID,
    LUNARY_MESSAGE_ID,
    LUNARY_MESSAGE_IS_RETRY,
    LUNARY_MESSAGE_ROLE,
    LUNARY_METADATA,
    LUNARY_SPAN_TYPE,
    LUNARY_TAGS,
    LUNARY_THREAD_METADATA,
    LUNARY_THREAD_TAGS,
    LUNARY_USER_PROPS,
    USER_ID,
    LunaryMessageRoleValues,
    LunarySpanTypeValues,
)
from otel_lunary.ids import parse_message_id
from otel_lunary.replay._gc import deferred_collections
from otel_lunary.replay.calls import call_kind, call_record
from otel_lunary.replay.content import json_object
from otel_lunary.replay.feedback import changes_of, merge
from otel_lunary.replay.model import CallRecord, Conversation, CustomEvent, FeedbackChange, Message
from otel_lunary.replay.records import Problem, SpanAttributes, SpanRecord
from otel_lunary.replay.sources import read_sources

_MESSAGE = LunarySpanTypeValues.MESSAGE.value
_EVENT = LunarySpanTypeValues.EVENT.value
_FEEDBACK = LunarySpanTypeValues.FEEDBACK.value
_USER = LunaryMessageRoleValues.USER.value
# A tool message's call id: where 0.2 writes it, then where 0.1 did.
_TOOL_CALL_ID, _LEGACY_TOOL_CALL_ID = tool_call_id_attributes()
_TIME_THEN_ARRIVAL = itemgetter(0, 1)
_TIME = attrgetter("time_ns")
_NOT_SET: Any = object()
_RARE = frozenset(  # read only when one of them is there
    {_TOOL_CALL_ID, _LEGACY_TOOL_CALL_ID, LUNARY_MESSAGE_IS_RETRY, LUNARY_CONTENT_TRUNCATED, LUNARY_USER_PROPS, LUNARY_TAGS, LUNARY_METADATA}
)


@dataclass(slots=True)
class _Feedback:
    conversation_id: str | None
    parent_span_id: str | None
    message_id: str | None
    seq: int
    changes: list[FeedbackChange]


@dataclass(slots=True)
class _Call:
    conversation_id: str | None
    parent_span_id: str | None
    record: CallRecord


@dataclass(slots=True)
class _Thread:
    tags: dict[str, None] = field(default_factory=dict)
    metadata_source: Any = None  # the latest lunary.thread.metadata value, parsed by finish
    metadata_time: int = -1

    @property
    def metadata(self) -> dict[str, Any]:
        return json_object(self.metadata_source)


_content_attributes = cache(content_attributes)  # the role -> attribute rule, once per role


def _tags(value: object) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [value] if isinstance(value, str) else []


class Assembler:
    """Collects spans with ``add`` and builds conversations with ``finish``."""

    def __init__(self, *, conversation_ids: Iterable[str] = ()) -> None:
        self._only = frozenset(conversation_ids)
        self._seq = 0
        self._messages: dict[str, tuple[str, int, Message]] = {}
        self._events: list[tuple[str, int, CustomEvent]] = []
        # each conversation's messages and events in arrival order (a stable sort by time
        # then gives finish its order), unless a message span came twice (_replaced)
        self._items: dict[str, list[Message | CustomEvent]] = {}
        self._replaced = False
        self._calls: dict[str, _Call] = {}
        self._feedback: list[_Feedback] = []
        self._unplaced_roots: list[CallRecord] = []
        self._threads: dict[str, _Thread] = defaultdict(_Thread)
        self._thread_tags: dict[str, Any] = {}  # each thread's latest tags
        self._keys: dict[str, str] = {}
        self._strings: dict[str, str] = {}  # roles and user ids, one object each
        self.problems: list[Problem] = []

    @property
    def spans_read(self) -> int:
        """Spans given to ``add`` so far."""
        return self._seq

    def add(self, span: SpanRecord) -> None:
        """Keep what replay needs from one span: most spans are dropped after two attributes.

        The hot path of replay: a million spans take a million calls, so the message and
        event cases are written out here rather than in helpers (see docs/performance.md).
        """
        self._seq += 1
        a = span.attributes
        get = a.get
        span_type = get(LUNARY_SPAN_TYPE)
        conversation = get(GEN_AI_CONVERSATION_ID)
        if conversation is not None and conversation != "":
            conversation = self._keys.setdefault(conversation, conversation) if type(conversation) is str else self._thread_key(conversation)
            if self._only and conversation not in self._only:
                return
        else:
            conversation = None
        if span_type == _MESSAGE or span_type == _EVENT:
            if conversation is None:
                self._orphan(span.span_id, span_type)
                return
            thread_tags = get(LUNARY_THREAD_TAGS)  # every span of a thread repeats them
            if thread_tags is not None and thread_tags != self._thread_tags.get(conversation):
                self._note_thread_tags(conversation, thread_tags)
            thread_metadata = get(LUNARY_THREAD_METADATA)  # repeated by every span of a thread that has some
            if thread_metadata is not None:  # the newest wins (written out: most spans of such a thread come here)
                thread = self._threads[conversation]
                if span.start_ns >= thread.metadata_time:
                    thread.metadata_source = thread_metadata
                    thread.metadata_time = span.start_ns
            extras = not _RARE.isdisjoint(a)  # a message's extras: most spans have none
            user_id = get(USER_ID)
            if user_id is not None:
                user_id = self._strings.setdefault(user_id, user_id) if type(user_id) is str else str(user_id)
            item: Message | CustomEvent
            if span_type == _MESSAGE:
                role = get(LUNARY_MESSAGE_ROLE)
                role = self._strings.setdefault(role, role) if type(role) is str and role else str(role or "user")
                first, second = _content_attributes(role)
                content = get(first, _NOT_SET)
                if content is _NOT_SET:
                    content = get(second)
                message_id = get(LUNARY_MESSAGE_ID)
                item = message = Message.recorded(
                    message_id if type(message_id) is str and message_id else str(message_id or span.span_id),
                    role,
                    span.start_ns,
                    span.span_id,
                    span.trace_id,
                    content,
                    user_id,
                    get(_TOOL_CALL_ID, get(_LEGACY_TOOL_CALL_ID)) if extras else None,
                )
                if extras:
                    self._message_extras(message, a)
                if span.span_id in self._messages:
                    self._replaced = True
                self._messages[span.span_id] = (conversation, self._seq, message)
            else:
                item = event = CustomEvent.recorded(
                    str(get(LUNARY_EVENT_NAME) or span.name), span.start_ns, span.span_id, span.trace_id, user_id, get(LUNARY_METADATA)
                )
                self._events.append((conversation, self._seq, event))
            items = self._items.get(conversation)
            if items is None:
                self._items[conversation] = [item]
            else:
                items.append(item)
        elif span_type == _FEEDBACK:
            message_id = get(LUNARY_FEEDBACK_MESSAGE_ID)
            changes = changes_of(get(LUNARY_FEEDBACK), span.events, span.start_ns)
            self._feedback.append(_Feedback(conversation, span.parent_span_id, str(message_id) if message_id else None, self._seq, changes))
        else:
            kind = call_kind(span)
            if kind is not None:
                self._calls[span.span_id] = _Call(conversation, span.parent_span_id, call_record(span, kind))

    def extend(self, spans: Iterable[SpanRecord]) -> None:
        """``add`` every span of ``spans``."""
        deque(map(self.add, spans), maxlen=0)  # the loop at C speed

    def _thread_key(self, conversation: Any) -> str:
        """The conversation id as a string, one shared object per conversation."""
        if type(conversation) is not str:
            conversation = str(conversation)
        return self._keys.setdefault(conversation, conversation)

    def _orphan(self, span_id: str, span_type: str) -> None:
        self.problems.append(Problem(f"span {span_id}", None, f"{span_type} span without {GEN_AI_CONVERSATION_ID}; skipped"))

    def _note_thread_tags(self, conversation: str, tags: Any) -> None:
        """Add the span's thread tags to the thread's: they differ from the previous span's
        of the thread (every span of a thread repeats them, so most spans skip this)."""
        self._thread_tags[conversation] = tags
        thread = self._threads[conversation]
        for tag in _tags(tags):
            thread.tags.setdefault(tag, None)

    @staticmethod
    def _message_extras(message: Message, a: SpanAttributes) -> None:
        message.is_retry = bool(a.get(LUNARY_MESSAGE_IS_RETRY))
        message.truncated = bool(a.get(LUNARY_CONTENT_TRUNCATED))
        user_props = a.get(LUNARY_USER_PROPS)
        if user_props is not None:
            message.user_props = json_object(user_props)
        tags = a.get(LUNARY_TAGS)
        if tags is not None:
            message.tags = _tags(tags)
        metadata = a.get(LUNARY_METADATA)
        if metadata is not None:
            message.metadata = json_object(metadata)

    def _feedback_target(self, feedback: _Feedback, by_id: dict[str, str]) -> str | None:
        if feedback.parent_span_id in self._messages:
            return feedback.parent_span_id
        if feedback.message_id is None:
            return None
        if feedback.message_id in by_id:
            return by_id[feedback.message_id]
        context = parse_message_id(feedback.message_id)
        span_id = f"{context.span_id:016x}" if context is not None else None
        return span_id if span_id in self._messages else None

    def finish(self) -> list[Conversation]:
        """The conversations, oldest first, each with its items in time order."""
        conversations, unplaced_feedback = self.finish_part()
        if unplaced_feedback and not self._only:  # with a filter, the others' feedback is expected
            self.problems.append(unplaced_feedback_problem(unplaced_feedback))
        return conversations

    def finish_part(self) -> tuple[list[Conversation], int]:
        """``finish`` for one part of the input (``streaming``): the conversations and how
        many feedback spans name no message here, which the caller reports for all parts."""
        with deferred_collections():  # joining makes many containers, all kept: see _gc
            return self._finish()

    def join_keys(self) -> tuple[set[str], set[str], list[tuple[str, str]]]:
        """What this assembler's spans join by besides their traces: the conversation ids
        (every state kept for one), the message ids feedback names, and the ids of the
        messages with their traces, for ``streaming`` to check against the scan's grouping."""
        conversations = set(self._items) | set(self._threads)
        conversations.update(call.conversation_id for call in self._calls.values() if call.conversation_id is not None)
        named = {feedback.message_id for feedback in self._feedback if feedback.message_id is not None}
        messages = [(message.id, message.trace_id) for _, _, message in self._messages.values()]
        return conversations, named, messages

    def _finish(self) -> tuple[list[Conversation], int]:
        messages = self._messages
        conversations: dict[str, Conversation] = {}

        def conversation(conversation_id: str) -> Conversation:
            if conversation_id not in conversations:
                thread = self._threads.get(conversation_id, _Thread())
                conversations[conversation_id] = Conversation(id=conversation_id, tags=list(thread.tags), metadata=thread.metadata)
            return conversations[conversation_id]

        unplaced_feedback = 0
        by_id: dict[str, str] | None = None  # made only for feedback that does not name its message's span
        pending: dict[str, list[_Feedback]] = {}
        for feedback in self._feedback:
            target = feedback.parent_span_id
            if target not in messages:
                if by_id is None:
                    by_id = {message.id: span_id for span_id, (_, _, message) in messages.items()}
                target = self._feedback_target(feedback, by_id)
                if target is None:
                    unplaced_feedback += 1
                    continue
            if target in pending:
                pending[target].append(feedback)
            else:
                pending[target] = [feedback]

        for span_id, feedbacks in pending.items():  # the others keep their (lazy) empty feedback
            message = messages[span_id][2]
            if len(feedbacks) == 1 and len(feedbacks[0].changes) == 1:  # what merge gives for one change
                change = feedbacks[0].changes[0]
                message.feedback = {} if change.removed else {change.key: change.value}
                message.feedback_history = [change]
            else:
                message.feedback, message.feedback_history = merge((f.seq, change) for f in feedbacks for change in f.changes)
        if self._calls:
            self._place_calls(conversation)

        if not self._replaced:  # arrival order sorted (stably) by time is (time, arrival) order
            for conversation_id, arrived in self._items.items():
                conversation(conversation_id).items = sorted(arrived, key=_TIME)
            return sorted(conversations.values(), key=lambda c: (c.start_ns, c.id)), unplaced_feedback
        entries: list[tuple[int, int, str, Message | CustomEvent]] = [
            (message.time_ns, seq, cid, message) for cid, seq, message in messages.values()
        ]
        entries.extend([(event.time_ns, seq, cid, event) for cid, seq, event in self._events])
        entries.sort(key=_TIME_THEN_ARRIVAL)
        items: dict[str, list[Message | CustomEvent]] = {}
        for _, _, conversation_id, item in entries:
            if conversation_id in items:
                items[conversation_id].append(item)
            else:
                items[conversation_id] = conversation(conversation_id).items
                items[conversation_id].append(item)
        return sorted(conversations.values(), key=lambda c: (c.start_ns, c.id)), unplaced_feedback

    def _turn_of_trace(self) -> dict[str, str]:
        """Each trace's user message (its first, by time then arrival), else its first message.
        (A system prompt held for a thread's first turn is in the trace before the question.)"""
        turn_of_trace: dict[str, str] = {}
        for _, _, _, trace_id, span_id in sorted(
            (message.role != _USER, message.time_ns, seq, message.trace_id, span_id) for span_id, (_, seq, message) in self._messages.items()
        ):
            if trace_id not in turn_of_trace:
                turn_of_trace[trace_id] = span_id
        return turn_of_trace

    def _place_calls(self, conversation: Callable[[str], Conversation]) -> None:
        self._join_calls(conversation)
        for _, _, message in self._messages.values():
            if message._calls:  # the slot: reading .calls would make an empty list for each message
                _flatten_below(message._calls, MAX_CALL_DEPTH)
        for record in self._unplaced_roots:
            _flatten_below([record], MAX_CALL_DEPTH)

    def _join_calls(self, conversation: Callable[[str], Conversation]) -> None:
        turn_of_trace: dict[str, str] | None = None  # made when a call needs it
        for call in sorted(self._calls.values(), key=lambda c: c.record.start_ns):
            parent = call.parent_span_id
            if parent in self._calls:
                self._calls[parent].record.children.append(call.record)
                continue
            if parent in self._messages:
                self._messages[parent][2].calls.append(call.record)
                continue
            if turn_of_trace is None:
                turn_of_trace = self._turn_of_trace()
            if call.record.trace_id in turn_of_trace:
                self._messages[turn_of_trace[call.record.trace_id]][2].calls.append(call.record)
            elif call.conversation_id is not None and (not self._only or call.conversation_id in self._only):
                conversation(call.conversation_id).unplaced_calls.append(call.record)
                self._unplaced_roots.append(call.record)


def unplaced_feedback_problem(count: int) -> Problem:
    """The problem reported once for all feedback spans that name no message of the input."""
    return Problem("input", None, f"{count} feedback span(s) name a message not in the input; skipped")


# Calls nested deeper than this are shown as children of their ancestor at this depth: a
# producer can nest spans without end, and every renderer walks the tree recursively.
MAX_CALL_DEPTH = 64


def _flatten_below(calls: list[CallRecord], max_depth: int) -> None:
    """Give each call at ``max_depth`` all its descendants as direct children, in start order."""
    stack = [(call, 1) for call in calls]
    while stack:
        call, depth = stack.pop()
        if depth < max_depth:
            stack.extend((child, depth + 1) for child in call.children)
            continue
        descendants, pending = [], list(call.children)
        while pending:
            child = pending.pop()
            descendants.append(child)
            pending.extend(child.children)
            child.children = []
        call.children = sorted(descendants, key=attrgetter("start_ns"))


def assemble(spans: Iterable[SpanRecord], *, conversation_ids: Iterable[str] = ()) -> list[Conversation]:
    """Conversations from spans (any iterable; consumed once)."""
    assembler = Assembler(conversation_ids=conversation_ids)
    assembler.extend(spans)
    return assembler.finish()


def assemble_file(path: str | Path, *, on_problem: Callable[[Problem], None] | None = None) -> list[Conversation]:
    """Conversations from one OTLP JSON Lines file and its rotated backups."""
    problems: list[Problem] = []
    assembler = Assembler()
    assembler.extend(read_sources([Path(path)], on_problem or problems.append))
    return assembler.finish()
