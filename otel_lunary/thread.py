"""Threads: Lunary's conversation object, recorded as one trace per turn.

A thread is not a span (see conventions/README.md): its id, tags, metadata and user ride
on every span it records, precomputed once here so each tracking call only adds what is
specific to the message or event. Where a span goes follows decision 2 in conventions/:
a user message opens a turn, a new trace whose root is the turn span (``_turns`` keeps
it open until the reply); other messages and events join the current turn; a system
message before the thread's first user message waits for that turn.
"""

from __future__ import annotations

import contextvars
import uuid
from time import time_ns
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from opentelemetry.context import Context
from opentelemetry.trace import SpanContext, TraceFlags, get_current_span

from otel_lunary import _health, _record, _state, _turns
from otel_lunary._ambient import mark_conversation, turn_start
from otel_lunary._content import to_string_list
from otel_lunary._health import never_raises
from otel_lunary._settings import CURRENT_SPAN
from otel_lunary._record import ASSISTANT, SYSTEM, USER, normalise_role
from otel_lunary.attributes import LUNARY_MESSAGE_ID
from otel_lunary.ids import format_message_id

T = TypeVar("T")
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)  # a held message's id: its turn is sampled, as almost all are


def _usable(field: str, value: Callable[[], T], fallback: T) -> T:
    """``value()``, or ``fallback`` when the app's object cannot be read (its ``str`` raises)."""
    with never_raises(f"open_thread got an unusable {field}; left out", kind="invalid_arguments"):
        return value()
    return fallback


class Thread:
    """A conversation. Open one with ``open_thread()``; resume it anywhere with its id."""

    def __init__(
        self,
        id: str | None = None,  # noqa: A002 - Lunary's parameter name
        tags: list[str] | None = None,
        user_id: str | None = None,
        user_props: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        # Each field degrades on its own (a tag whose str() raises must not cost the
        # thread its id): the app's values are never allowed to raise from here.
        given = None if id is None else _usable("id", lambda: _record.conversation_id(id), None)
        self.id: str = str(uuid.uuid4()) if given is None else given
        self.tags: list[str] = _usable("tags", lambda: to_string_list(tags), [])
        self.user_id: str | None = _usable("user_id", lambda: None if user_id is None else str(user_id), None)
        self.user_props = user_props
        self.metadata = metadata
        self._base = _record.thread_attributes(self.id, self.tags, metadata, self.user_id, user_props)
        # _record.message_base(self._base, role) per role, built at the role's first message.
        self._message_bases: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"Thread(id={self.id!r}, tags={self.tags!r})"

    def _reply_parent(self, current: SpanContext, turn: _turns.Turn | None) -> Context | None:
        """Where a non-user message or an event goes, given the current span's context and
        the thread's current turn: see decision 2 in conventions/README.md."""
        if current.is_valid and (_state.explicit_parent.get() or (turn is not None and current.trace_id == turn.span_context.trace_id)):
            return None
        if turn is not None:
            return turn.context
        return _state.NEW_TRACE

    @never_raises("Thread.track_message failed and was skipped")
    def track_message(
        self,
        message: Mapping[str, Any],
        user_id: str | None = None,
        user_props: Mapping[str, Any] | None = None,
        feedback: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Record one message; returns its id (for feedback and ``parent``), None if invalid."""
        if type(message) is not dict and not isinstance(message, Mapping):
            _health.report("invalid_arguments", "otel_lunary: track_message needs a dict, got %s", type(message).__name__)
            return None
        role = normalise_role(message.get("role"))
        if role is None:
            _health.report("invalid_arguments", "otel_lunary: track_message got unknown role %r (use user, assistant, system or tool)", message.get("role"))
            return None
        runtime = _state.current or _state.get()
        role_base = self._message_bases.get(role)
        if role_base is None:
            role_base = self._message_bases[role] = _record.message_base(self._base, role)
        ambient_span = get_current_span()
        ambient = ambient_span.get_span_context()
        if ambient.is_valid:
            mark_conversation(ambient_span, self.id, runtime.settings.dialects)
        attributes, text = _record.message_record(runtime.policy, role_base, message, role, user_id, user_props)
        now = time_ns()
        if role == USER:
            span_context, message_id = self._ask(runtime, attributes, text, now, ambient)
        else:
            turn = _turns.registry.current(self.id)
            parent = self._reply_parent(ambient, turn)
            if parent is _state.NEW_TRACE and role == SYSTEM:
                held = self._hold(runtime, attributes, now)
                if held is not None:
                    return held
            span_context, message_id = _record.emit_message(runtime, attributes, role, parent, None, now)
            # a plain-text message (text known) asks for no tool call
            if role == ASSISTANT and turn is not None and (text is not None or not _record.has_tool_calls(message)):
                if turn.span is not None and turn.span_context.trace_id == span_context.trace_id:
                    # the turn's answer (``answer`` checks the thread's turn as it is now,
                    # under the registry's lock: another may have opened meanwhile)
                    _turns.registry.answer(self.id, span_context.trace_id, _record.turn_output(attributes, text), now)
        # without an id of its own, the message's id is its span's traceparent (stamped)
        _state.messages.remember(message_id, span_context, self.id, LUNARY_MESSAGE_ID not in attributes)
        if feedback is not None and isinstance(feedback, Mapping) and feedback:
            from otel_lunary.feedback import track_feedback

            track_feedback(message_id, feedback)
        return message_id

    def _ask(self, runtime: _state.Runtime, attributes: dict[str, Any], text: str | None, now: int, ambient: SpanContext) -> tuple[SpanContext, str]:
        """A user message: its turn span (a new trace linked to the application's current
        span, or under it with ``turn_parent="current_span"``; with the ids reserved for it
        when a system message was held for it), the held messages, then the message span as
        the turn's first child."""
        parent, links = turn_start(runtime.settings.turn_parent, ambient)
        reservation = _turns.registry.take_held(self.id)
        if reservation is not None and runtime.ids is not None:
            with runtime.ids.forced(reservation.trace_id, reservation.span_id):
                span = _record.start_turn(runtime, self._base, attributes, parent, links, now, text)
        else:
            span = _record.start_turn(runtime, self._base, attributes, parent, links, now, text)
        turn = _turns.registry.open(self.id, span, _state.context_of(span.get_span_context()), runtime.settings.turn_timeout, now)
        for _, release in reservation.held if reservation is not None else ():
            release(turn.context)
        return _record.emit_message(runtime, attributes, USER, turn.context, None, now)

    def _hold(self, runtime: _state.Runtime, attributes: dict[str, Any], now: int) -> str | None:
        """Keep a system message for the thread's first turn; its id, or None if not held.

        The turn's ids are reserved at the first held message and the message's span id is
        drawn now, so the id is its final traceparent already; the span is recorded in the
        turn when the user message comes, or on its own (same ids) if none comes in time."""
        ids = runtime.ids
        if ids is None or runtime.settings.turn_parent == CURRENT_SPAN:
            # Not the SDK's tracer (no ids in advance), or turns nest under the application's
            # span (their trace is not known in advance): recorded at once, on its own.
            return None
        thread_id = self.id

        def make(trace_id: int, turn_span_id: int) -> tuple[_turns.Release, str]:
            span_id = ids.generate_span_id()
            message_id: str = attributes.get(LUNARY_MESSAGE_ID) or format_message_id(SpanContext(trace_id, span_id, False, _SAMPLED))
            attributes[LUNARY_MESSAGE_ID] = message_id

            # Recorded later, but in the context it was tracked in: span processors that
            # read context variables at span start see what they would have seen then.
            tracked_in = contextvars.copy_context()

            def record(parent: Context | None) -> None:
                # Through the runtime of the moment: the application may have set its
                # provider since (otel_lunary._adoption), and the turn span went there.
                recording = _state.recording() or runtime
                with (recording.ids or ids).forced(trace_id, span_id):
                    span_context, _ = _record.emit_message(recording, attributes, SYSTEM, parent or _state.NEW_TRACE, None, now)
                _state.messages.remember(message_id, span_context, thread_id)

            def release(parent: Context | None) -> None:
                tracked_in.run(record, parent)

            return release, message_id

        return _turns.registry.hold(thread_id, ids, make, runtime.settings.turn_timeout)

    @never_raises("Thread.track_event failed and was skipped")
    def track_event(
        self,
        event_name: str,
        user_id: str | None = None,
        user_props: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        parent: str | None = None,
    ) -> None:
        """Record a custom event (a document opened, a button clicked) in the current turn, or
        under the message ``parent`` (a message id, from this process or any other)."""
        if not isinstance(event_name, str) or not event_name:
            _health.report("invalid_arguments", "otel_lunary: track_event needs a non-empty event name, got %r", type(event_name).__name__)
            return
        runtime = _state.current or _state.get()
        ambient_span = get_current_span()
        ambient = ambient_span.get_span_context()
        if ambient.is_valid:
            mark_conversation(ambient_span, self.id, runtime.settings.dialects)
        target = _state.resolve(parent) if parent is not None else None
        if parent is not None and target is None:
            _health.report("unknown_parent", "otel_lunary: track_event parent=%r is not a message id; the event goes to the current turn", parent)
        context = _state.context_of(target.span_context) if target is not None else self._reply_parent(ambient, _turns.registry.current(self.id))
        _record.event(runtime, self._base, event_name, context, user_id, user_props, metadata)


def open_thread(
    id: str | None = None,  # noqa: A002 - Lunary's parameter name
    tags: list[str] | None = None,
    user_id: str | None = None,
    user_props: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    **_lunary_options: Any,
) -> Thread:
    """Open a new thread, or resume one by id (from any process: the id is all it needs).

    Lunary's client options (``app_id``, ``api_url``) are accepted and ignored.
    """
    return Thread(id, tags=tags, user_id=user_id, user_props=user_props, metadata=metadata)
