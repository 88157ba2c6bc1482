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

from binascii import unhexlify
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any

from otel_lunary.attributes import (
    EVENT_NAME_GEN_AI_EVALUATION_RESULT,
    GEN_AI_CONVERSATION_ID,
    GEN_AI_EVALUATION_NAME,
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
from otel_lunary._content import content_attributes, tool_call_id_attributes
from otel_lunary.ids import parse_message_id
from otel_lunary.replay.calls import call_kind, call_record
from otel_lunary.replay.content import json_object, load_json, parse_content
from otel_lunary.replay.decode import (
    DecodeError,
    _status,
    decode_value,
    event_records,
    iter_raw_spans,
    span_fields,
)
from otel_lunary.replay.feedback import changes_of, merge
from otel_lunary.replay.model import (
    CallRecord,
    Conversation,
    CustomEvent,
    FeedbackChange,
    LazyCustomEvent,
    LazyMessage,
    Message,
)
from otel_lunary.replay.records import EventRecord, Problem, SpanRecord

_MESSAGE = LunarySpanTypeValues.MESSAGE.value
_EVENT = LunarySpanTypeValues.EVENT.value
_FEEDBACK = LunarySpanTypeValues.FEEDBACK.value
_USER = LunaryMessageRoleValues.USER.value
# A tool message's call id: where 0.2 writes it, then where 0.1 did.
_TOOL_CALL_ID, _LEGACY_TOOL_CALL_ID = tool_call_id_attributes()
_TIME_THEN_ARRIVAL = itemgetter(0, 1)
_TIME = attrgetter("time_ns")
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
_NOT_SET: Any = object()
_SEEN: Any = object()
# What a malformed raw span can raise on the fast path; any of them sends it the general way.
_IRREGULAR = (KeyError, TypeError, ValueError, AttributeError, ArithmeticError, DecodeError)


def _decoded(value: Any) -> Any:
    """One raw OTLP ``AnyValue`` (or None when the attribute is absent) as ``decode_attributes`` gives it."""
    if type(value) is dict and len(value) == 1:
        text = value.get("stringValue")
        if text is not None:
            return text
    return decode_value(value)


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
    metadata_source: Any = _NOT_SET  # the latest lunary.thread.metadata value, parsed by finish
    metadata_time: int = -1
    last_tags: Any = None
    last_raw_tags: Any = None  # the same, undecoded (file path)

    @property
    def metadata(self) -> dict[str, Any]:
        return {} if self.metadata_source is _NOT_SET else json_object(self.metadata_source)


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
        self._threads: dict[str, _Thread] = defaultdict(_Thread)
        self._keys: dict[str, str] = {}
        self._strings: dict[str, str] = {}
        self.spans_read = 0
        self.problems: list[Problem] = []

    def add(self, span: SpanRecord) -> None:
        """Keep what replay needs from one span."""
        self._add(
            span.trace_id, span.span_id, span.parent_span_id, span.name, span.start_ns, span.end_ns,
            span.attributes, span.events, span.status_code, span.status_message, span,
        )

    def add_request(self, request: Any, on_error: Callable[[str], None]) -> int:
        """Keep what replay needs from every span of one OTLP JSON request object.

        The same as ``add`` for each span ``iter_request_spans`` would yield, without
        building the ``SpanRecord``s: a span of the usual shape goes through ``_add_raw``,
        which decodes only the attributes it uses; any other goes through ``span_fields``
        and ``_add``. Returns the number of spans added.
        """
        added = 0
        fast = self._add_raw
        add = self._add
        trace_ids: dict[str, str] = {}  # one string per trace id in this request
        for raw in iter_raw_spans(request, on_error):
            if not fast(raw, trace_ids):
                try:
                    fields = span_fields(raw)
                except DecodeError as exc:
                    on_error(str(exc))
                    continue
                add(*fields, None)
            added += 1
        return added

    def _add_raw(self, raw: dict[str, Any], trace_ids: dict[str, str]) -> bool:
        """``_add`` for one undecoded span of the usual shape; False (having changed nothing) for any other.

        Messages, custom events, feedback and spans that are no part of a conversation
        are handled here, reading from the raw ``KeyValue`` list only the attributes they
        use. Anything unusual (snake_case fields, base64 or zero ids, odd times, values
        that do not decode, events on a message, GenAI calls) returns False, and the caller
        takes the general path, which reads it the way ``span_fields`` always has.
        """
        try:
            attributes = {item["key"]: item["value"] for item in raw["attributes"]}
            trace_hex = raw["traceId"]
            trace_id = trace_ids.get(trace_hex)
            if trace_id is None:
                if len(trace_hex) != 32 or unhexlify(trace_hex) == _ZERO_TRACE:
                    return False
                trace_id = trace_ids[trace_hex] = trace_hex.lower()
            span_id = raw["spanId"]
            if len(span_id) != 16 or unhexlify(span_id) == _ZERO_SPAN:
                return False
            span_id = span_id.lower()
            name = raw["name"]
            if type(name) is not str:
                return False
            start = raw["startTimeUnixNano"]
            start_ns = int(start)
            end = raw["endTimeUnixNano"]
            if end != start:  # checked like span_fields does; replay does not use it here
                int(end)
            if raw.get("status"):
                _status(raw)  # the same: what span_fields would refuse goes the general way
            # ``x["stringValue"] if ... else _decoded(x)`` is ``_decoded`` inlined for the usual case
            value = attributes.get(LUNARY_SPAN_TYPE)
            span_type = value["stringValue"] if type(value) is dict and len(value) == 1 and "stringValue" in value else _decoded(value)
            value = attributes.get(GEN_AI_CONVERSATION_ID)
            conversation = value["stringValue"] if type(value) is dict and len(value) == 1 and "stringValue" in value else _decoded(value)
            raw_events = raw.get("events")
            if span_type == _FEEDBACK:
                parent = raw.get("parentSpanId")
                if parent is None:
                    if "parent_span_id" in raw:
                        return False
                elif type(parent) is str and len(parent) == 16:
                    parent = None if unhexlify(parent) == _ZERO_SPAN else parent.lower()
                else:
                    return False
                feedback_message_id = _decoded(attributes.get(LUNARY_FEEDBACK_MESSAGE_ID))
                changes = self._raw_feedback_changes(_decoded(attributes.get(LUNARY_FEEDBACK)), raw_events, start_ns)
            elif raw_events:
                return False
            elif span_type == _MESSAGE or span_type == _EVENT:
                raw_tags = attributes.get(LUNARY_THREAD_TAGS)
                thread = self._threads.get(conversation) if raw_tags is not None else None
                thread_tags = _SEEN if thread is not None and raw_tags == thread.last_raw_tags else _decoded(raw_tags)
                thread_metadata = _decoded(attributes[LUNARY_THREAD_METADATA]) if LUNARY_THREAD_METADATA in attributes else _NOT_SET
                value = attributes.get(USER_ID)
                user_id = value["stringValue"] if type(value) is dict and len(value) == 1 and "stringValue" in value else _decoded(value)
                metadata = _decoded(attributes[LUNARY_METADATA]) if LUNARY_METADATA in attributes else _NOT_SET
                if span_type == _MESSAGE:
                    value = attributes.get(LUNARY_MESSAGE_ROLE)
                    role = value["stringValue"] if type(value) is dict and len(value) == 1 and "stringValue" in value else _decoded(value)
                    role = role if type(role) is str and role else str(role or "user")
                    first, second = content_attributes(role)
                    value = attributes[first] if first in attributes else attributes.get(second)
                    content = value["stringValue"] if type(value) is dict and len(value) == 1 and "stringValue" in value else _decoded(value)
                    value = attributes.get(LUNARY_MESSAGE_ID)
                    message_id = value["stringValue"] if type(value) is dict and len(value) == 1 and "stringValue" in value else _decoded(value)
                    # usually absent: decoding None gives None, so these only decode what is there
                    value = attributes.get(_TOOL_CALL_ID, attributes.get(_LEGACY_TOOL_CALL_ID))
                    tool_call_id = _decoded(value) if value is not None else None
                    is_retry = LUNARY_MESSAGE_IS_RETRY in attributes and bool(_decoded(attributes[LUNARY_MESSAGE_IS_RETRY]))
                    truncated = LUNARY_CONTENT_TRUNCATED in attributes and bool(_decoded(attributes[LUNARY_CONTENT_TRUNCATED]))
                    user_props = _decoded(attributes[LUNARY_USER_PROPS]) if LUNARY_USER_PROPS in attributes else _NOT_SET
                    tags = _decoded(attributes[LUNARY_TAGS]) if LUNARY_TAGS in attributes else None
                else:
                    event_name = _decoded(attributes.get(LUNARY_EVENT_NAME))
            elif span_type is not None or isinstance(_decoded(attributes.get(GEN_AI_OPERATION_NAME)), str):
                return False  # another lunary span type or a GenAI call: the general path
        except _IRREGULAR:
            return False
        # From here on the span is taken: nothing below fails on any input.
        self.spans_read += 1
        self._seq += 1
        if conversation is not None and conversation != "":
            conversation = self._keys.setdefault(conversation, conversation) if type(conversation) is str else self._thread_key(conversation)
            if self._only and conversation not in self._only:
                return True
        else:
            conversation = None
        if span_type == _MESSAGE or span_type == _EVENT:
            if conversation is None:
                self._orphan(span_id, span_type)
                return True
            if (thread_tags is not _SEEN and thread_tags is not None) or thread_metadata is not _NOT_SET:
                self._note_raw_thread(conversation, start_ns, raw_tags, thread_tags, thread_metadata)
            strings = self._strings
            if type(user_id) is str:
                user_id = strings.setdefault(user_id, user_id)
            elif user_id is not None:  # another producer sent a number: users are strings
                user_id = str(user_id)
            if span_type == _MESSAGE:
                message = LazyMessage.of(
                    message_id if type(message_id) is str and message_id else str(message_id or span_id),
                    strings.setdefault(role, role),
                    start_ns,
                    span_id,
                    trace_id,
                    (parse_content, content, tool_call_id),
                    user_id,
                    is_retry,
                    truncated,
                )
                if user_props is not _NOT_SET or tags is not None or metadata is not _NOT_SET:
                    self._message_extras(message, user_props, tags, metadata)
                if span_id in self._messages:
                    self._replaced = True
                self._messages[span_id] = (conversation, self._seq, message)
                item: Message | CustomEvent = message
            else:
                event = LazyCustomEvent.of(
                    str(event_name or name),
                    start_ns,
                    span_id,
                    trace_id,
                    user_id,
                    None if metadata is _NOT_SET else (json_object, metadata),
                )
                self._events.append((conversation, self._seq, event))
                item = event
            items = self._items.get(conversation)
            if items is None:
                self._items[conversation] = [item]
            else:
                items.append(item)
        elif span_type == _FEEDBACK:
            self._feedback.append(
                _Feedback(
                    conversation,
                    parent,
                    str(feedback_message_id) if feedback_message_id else None,
                    self._seq,
                    changes,
                )
            )
        return True

    def _add(
        self,
        trace_id: str,
        span_id: str,
        parent_span_id: str | None,
        name: str,
        start_ns: int,
        end_ns: int,
        attributes: dict[str, Any],
        events: tuple[EventRecord, ...],
        status_code: int,
        status_message: str,
        span: SpanRecord | None,
    ) -> None:
        self.spans_read += 1
        self._seq += 1
        conversation = attributes.get(GEN_AI_CONVERSATION_ID)
        span_type = attributes.get(LUNARY_SPAN_TYPE)
        if conversation is not None and conversation != "":
            conversation = self._thread_key(conversation)
            if self._only and conversation not in self._only:
                return
        else:
            conversation = None
        if span_type == _MESSAGE:
            if conversation is None:
                self._orphan(span_id, span_type)
                return
            self._note_thread(conversation, start_ns, attributes)
            message = self._message(trace_id, span_id, start_ns, attributes)
            if span_id in self._messages:
                self._replaced = True
            self._messages[span_id] = (conversation, self._seq, message)
            self._items.setdefault(conversation, []).append(message)
            return
        if span_type == _EVENT:
            if conversation is None:
                self._orphan(span_id, span_type)
                return
            self._note_thread(conversation, start_ns, attributes)
            event = LazyCustomEvent.of(
                str(attributes.get(LUNARY_EVENT_NAME) or name),
                start_ns,
                span_id,
                trace_id,
                self._user(attributes.get(USER_ID)),
                (json_object, attributes[LUNARY_METADATA]) if LUNARY_METADATA in attributes else None,
            )
            self._events.append((conversation, self._seq, event))
            self._items.setdefault(conversation, []).append(event)
            return
        if span_type != _FEEDBACK and not isinstance(attributes.get(GEN_AI_OPERATION_NAME), str):
            return  # neither a lunary span nor a GenAI call: not part of a conversation
        if span is None:
            span = SpanRecord(trace_id, span_id, parent_span_id, name, start_ns, end_ns, attributes, events, status_code, status_message)
        if span_type == _FEEDBACK:
            self._add_feedback(span, conversation)
            return
        kind = call_kind(span)
        if kind is not None:
            self._calls[span_id] = _Call(conversation, parent_span_id, call_record(span, kind))

    @staticmethod
    def _raw_feedback_changes(feedback: Any, raw_events: Any, start_ns: int) -> list[FeedbackChange]:
        """``changes_of`` for a feedback span's undecoded events; raises what ``event_records`` would.

        When ``lunary.feedback`` holds the object, the events only give each key's time, so
        only their names, times and ``gen_ai.evaluation.name`` are read (all times checked).
        """
        loaded = load_json(feedback)
        if not isinstance(loaded, dict) or not raw_events:
            return changes_of(feedback, event_records(raw_events, start_ns) if raw_events else (), start_ns)
        event_times: dict[Any, int] = {}
        for event in raw_events:
            if type(event) is not dict:
                continue
            time_ns = int(event["timeUnixNano"]) or start_ns
            if event.get("name") == EVENT_NAME_GEN_AI_EVALUATION_RESULT:
                value = {item["key"]: item["value"] for item in event["attributes"]}.get(GEN_AI_EVALUATION_NAME)
                event_times[_decoded(value)] = time_ns
        return [FeedbackChange(event_times.get(key, start_ns), str(key), value, value is None) for key, value in loaded.items()]

    def _thread_key(self, conversation: Any) -> str:
        """The conversation id as a string, one shared object per conversation."""
        if type(conversation) is not str:
            conversation = str(conversation)
        return self._keys.setdefault(conversation, conversation)

    def _intern(self, value: Any) -> Any:
        if type(value) is str:
            return self._strings.setdefault(value, value)
        return value

    def _user(self, value: Any) -> str | None:
        """``user.id`` as a string whatever type the producer gave it (renderers join users)."""
        if value is None:
            return None
        return self._intern(value if type(value) is str else str(value))  # type: ignore[no-any-return]

    def _orphan(self, span_id: str, span_type: str) -> None:
        self.problems.append(Problem(f"span {span_id}", None, f"{span_type} span without {GEN_AI_CONVERSATION_ID}; skipped"))

    def _note_thread(self, conversation: str, start_ns: int, attributes: dict[str, Any]) -> None:
        """Note the thread tags and metadata of a decoded span (the general path)."""
        # No raw value: the file path's next span of this thread decodes its tags again.
        self._note_raw_thread(
            conversation, start_ns, None, attributes.get(LUNARY_THREAD_TAGS), attributes.get(LUNARY_THREAD_METADATA, _NOT_SET)
        )

    def _note_raw_thread(self, conversation: str, start_ns: int, raw_tags: Any, tags: Any, metadata: Any) -> None:
        """Add ``tags`` (decoded) to the thread's and keep the newest ``metadata`` (``_NOT_SET`` if absent).

        On the file path ``tags`` is ``_SEEN`` when ``raw_tags`` is the undecoded value this
        thread's previous span had (so decoded and noted already).
        """
        thread = self._threads[conversation]
        if tags is not _SEEN:
            if tags is not None and tags != thread.last_tags:
                for tag in _tags(tags):
                    thread.tags.setdefault(tag, None)
                thread.last_tags = tags
            thread.last_raw_tags = raw_tags
        if metadata is not _NOT_SET and start_ns >= thread.metadata_time:
            thread.metadata_source = metadata
            thread.metadata_time = start_ns

    def _message(self, trace_id: str, span_id: str, start_ns: int, a: dict[str, Any]) -> Message:
        role = a.get(LUNARY_MESSAGE_ROLE)
        role = self._intern(role if type(role) is str and role else str(role or "user"))
        first, second = content_attributes(role)
        message_id = a.get(LUNARY_MESSAGE_ID)
        message = LazyMessage.of(
            message_id if type(message_id) is str and message_id else str(message_id or span_id),
            role,
            start_ns,
            span_id,
            trace_id,
            (parse_content, a.get(first, a.get(second)), a.get(_TOOL_CALL_ID, a.get(_LEGACY_TOOL_CALL_ID))),
            self._user(a.get(USER_ID)),
            bool(a.get(LUNARY_MESSAGE_IS_RETRY)),
            bool(a.get(LUNARY_CONTENT_TRUNCATED)),
        )
        self._message_extras(
            message,
            a.get(LUNARY_USER_PROPS, _NOT_SET),
            a.get(LUNARY_TAGS),
            a.get(LUNARY_METADATA, _NOT_SET),
        )
        return message

    @staticmethod
    def _message_extras(message: Message, user_props: Any, tags: Any, metadata: Any) -> None:
        if user_props is not _NOT_SET:
            message.user_props = json_object(user_props)
        if tags is not None:
            message.tags = _tags(tags)
        if metadata is not _NOT_SET:
            message.metadata = json_object(metadata)

    def _add_feedback(self, span: SpanRecord, conversation: str | None) -> None:
        message_id = span.attributes.get(LUNARY_FEEDBACK_MESSAGE_ID)
        self._feedback.append(
            _Feedback(
                conversation,
                span.parent_span_id,
                str(message_id) if message_id else None,
                self._seq,
                changes_of(span.attributes.get(LUNARY_FEEDBACK), span.events, span.start_ns),
            )
        )

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
        from otel_lunary.replay.reader import deferred_full_collections

        with deferred_full_collections():  # joining makes many containers, all kept: see reader.py
            return self._finish()

    def _finish(self) -> list[Conversation]:
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
        if unplaced_feedback and not self._only:  # with a filter, the others' feedback is expected
            self.problems.append(Problem("input", None, f"{unplaced_feedback} feedback span(s) name a message not in the input; skipped"))

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
            return sorted(conversations.values(), key=lambda c: (c.start_ns, c.id))
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
        return sorted(conversations.values(), key=lambda c: (c.start_ns, c.id))

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


def assemble(spans: Iterable[SpanRecord], *, conversation_ids: Iterable[str] = ()) -> list[Conversation]:
    """Conversations from spans (any iterable; consumed once)."""
    assembler = Assembler(conversation_ids=conversation_ids)
    for span in spans:
        assembler.add(span)
    return assembler.finish()


def assemble_file(path: str | Path, *, on_problem: Callable[[Problem], None] | None = None) -> list[Conversation]:
    """Conversations from one OTLP JSON Lines file and its rotated backups."""
    from otel_lunary.replay.reader import feed_sources

    problems: list[Problem] = []
    assembler = Assembler()
    feed_sources([Path(path)], assembler, on_problem or problems.append)
    return assembler.finish()
