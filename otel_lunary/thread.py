"""Threads: Lunary's conversation object, recorded as one trace per turn.

A thread is not a span (see conventions/README.md): its id, tags, metadata and user ride
on every span it records, precomputed once here so each tracking call only adds what is
specific to the message or event.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from opentelemetry.context import Context
from opentelemetry.trace import Link, get_current_span

from otel_lunary import _health, _index, _runtime
from otel_lunary._content import ContentPolicy, content_attributes, genai_message, genai_message_json, text_message_json_ends
from otel_lunary._conversation import explicit_parent
from otel_lunary._guard import never_raises
from otel_lunary._serialize import json_string, to_json, to_string_list
from otel_lunary._spans import NEW_TRACE, context_of, emit_instant, emit_stamped, span_name
from otel_lunary.ids import format_message_id
from otel_lunary.attributes import (
    GEN_AI_CONVERSATION_ID,
    GEN_AI_TOOL_CALL_ID,
    LUNARY_CONTENT_TRUNCATED,
    LUNARY_EVENT_NAME,
    LUNARY_MESSAGE_ID,
    LUNARY_MESSAGE_IS_RETRY,
    LUNARY_MESSAGE_ROLE,
    LUNARY_METADATA,
    LUNARY_SPAN_TYPE,
    LUNARY_TAGS,
    LUNARY_THREAD_METADATA,
    LUNARY_THREAD_TAGS,
    LUNARY_USER_PROPS,
    SPAN_NAME_LUNARY_EVENT,
    SPAN_NAME_LUNARY_MESSAGE,
    USER_ID,
    LunaryMessageRoleValues,
    LunarySpanTypeValues,
)

USER = LunaryMessageRoleValues.USER.value
ASSISTANT = LunaryMessageRoleValues.ASSISTANT.value
TOOL = LunaryMessageRoleValues.TOOL.value
ROLES = frozenset(role.value for role in LunaryMessageRoleValues)
_MESSAGE_SPAN_NAMES = {role: span_name(SPAN_NAME_LUNARY_MESSAGE, {LUNARY_MESSAGE_ROLE: role}) for role in ROLES}
_MESSAGE = LunarySpanTypeValues.MESSAGE.value
_EVENT = LunarySpanTypeValues.EVENT.value
# A message with only these keys and text content is the common case: it skips the
# lookups of the optional keys and the generic content path (same attributes).
_PLAIN_MESSAGE_KEYS = frozenset({"role", "content"})
# Per role, for that common message: the content attribute and the JSON around the text.
_TEXT_SHAPES = {
    role: (content_attributes(role)[0], *text_message_json_ends(role, output=role == ASSISTANT))
    for role in ROLES
}
_TRACK_MESSAGE = "Thread.track_message"  # the name never_raises() would log
_MessageRef = _index.MessageRef
_new_tuple = tuple.__new__  # _new_tuple(_MessageRef, (a, b)) is _MessageRef(a, b) without its Python-level __new__


def _user_attributes(attributes: dict[str, Any], user_id: Any, user_props: Any) -> None:
    if user_id is not None:
        attributes[USER_ID] = str(user_id)
    if user_props is not None:
        attributes[LUNARY_USER_PROPS] = to_json(user_props)


def thread_attributes(thread_id: str, tags: list[str], metadata: Any, user_id: Any, user_props: Any) -> dict[str, Any]:
    """What every span of a thread carries; computed once per thread."""
    base: dict[str, Any] = {GEN_AI_CONVERSATION_ID: thread_id}
    if tags:
        base[LUNARY_THREAD_TAGS] = tags
    if metadata is not None:
        base[LUNARY_THREAD_METADATA] = to_json(metadata)
    _user_attributes(base, user_id, user_props)
    return base


def message_base(base: Mapping[str, Any], role: str) -> dict[str, Any]:
    """What every message span of one role in a thread starts from; computed once per thread and role."""
    attributes = dict(base)
    attributes[LUNARY_SPAN_TYPE] = _MESSAGE
    attributes[LUNARY_MESSAGE_ROLE] = role
    return attributes


def message_attributes(
    base: Mapping[str, Any], message: Mapping[str, Any], role: str, policy: ContentPolicy, user_id: Any = None, user_props: Any = None
) -> dict[str, Any]:
    """The attributes of a message span (conventions: span.lunary.message); role is validated."""
    return role_message_attributes(message_base(base, role), message, role, policy, user_id, user_props)


def role_message_attributes(
    role_base: dict[str, Any], message: Mapping[str, Any], role: str, policy: ContentPolicy, user_id: Any, user_props: Any
) -> dict[str, Any]:
    """``message_attributes`` from ``message_base(base, role)``, which it does not change."""
    attributes = role_base.copy()
    if user_id is not None or user_props is not None:
        _user_attributes(attributes, user_id, user_props)
    if type(message) is dict and role != TOOL and message.keys() <= _PLAIN_MESSAGE_KEYS:
        content = message.get("content")
        if isinstance(content, str):
            if policy.capture:
                key, head, tail = _TEXT_SHAPES[role]
                if len(content) <= policy.untouched_up_to:  # the policy would return it as is
                    attributes[key] = head + json_string(content) + tail
                else:
                    policy = policy.fresh()
                    attributes[key] = head + json_string(policy.text(content)) + tail
                    if policy.truncated:
                        attributes[LUNARY_CONTENT_TRUNCATED] = True
            return attributes
    custom_id = message.get("id")
    if custom_id is not None:
        attributes[LUNARY_MESSAGE_ID] = str(custom_id)
    if message.get("is_retry", message.get("isRetry")):
        attributes[LUNARY_MESSAGE_IS_RETRY] = True
    tags = to_string_list(message.get("tags"))
    if tags:
        attributes[LUNARY_TAGS] = tags
    if message.get("metadata") is not None:
        attributes[LUNARY_METADATA] = to_json(message["metadata"])
    tool_call_id = message.get("tool_call_id", message.get("toolCallId"))
    if tool_call_id is not None:
        attributes[GEN_AI_TOOL_CALL_ID] = str(tool_call_id)
    if policy.capture:
        policy = policy.fresh()
        structured = genai_message({**message, "role": role}, policy, output=role == ASSISTANT)
        attributes[content_attributes(role)[0]] = genai_message_json(structured)
        if policy.truncated:
            attributes[LUNARY_CONTENT_TRUNCATED] = True
    return attributes


def event_attributes(base: Mapping[str, Any], event_name: str, user_id: Any = None, user_props: Any = None, metadata: Any = None) -> dict[str, Any]:
    """The attributes of a custom-event span (conventions: span.lunary.event)."""
    attributes = dict(base)
    attributes[LUNARY_SPAN_TYPE] = _EVENT
    attributes[LUNARY_EVENT_NAME] = event_name
    _user_attributes(attributes, user_id, user_props)
    if metadata is not None:
        attributes[LUNARY_METADATA] = to_json(metadata)
    return attributes


def message_span_name(role: str) -> str:
    return _MESSAGE_SPAN_NAMES[role]


def event_span_name(event_name: str) -> str:
    return span_name(SPAN_NAME_LUNARY_EVENT, {LUNARY_EVENT_NAME: event_name})


def normalise_role(role: Any) -> str | None:
    """Lunary's role in lower case, or None when it is not one of the four."""
    role = role.lower() if isinstance(role, str) else role
    return role if role in ROLES else None


T = TypeVar("T")


def _usable(field: str, value: Callable[[], T], fallback: Callable[[], T]) -> T:
    try:
        return value()
    except Exception:  # noqa: BLE001 - the app's object; tracking never raises into the app
        _health.report("invalid_arguments", "otel_lunary: open_thread got an unusable %s; left out", field)
        return fallback()


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
        self.id = _usable("id", lambda: str(id) if id is not None else str(uuid.uuid4()), lambda: str(uuid.uuid4()))
        self.tags: list[str] = _usable("tags", lambda: to_string_list(tags), lambda: [])
        self.user_id: str | None = _usable("user_id", lambda: None if user_id is None else str(user_id), lambda: None)
        self.user_props = user_props
        self.metadata = metadata
        self._base = thread_attributes(self.id, self.tags, metadata, self.user_id, user_props)
        # The context of the current turn's span, built once per turn rather than per reply.
        self._turn_context: tuple[Any, Context] | None = None
        # message_base(self._base, role) per role, built at the role's first message.
        self._message_bases: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"Thread(id={self.id!r}, tags={self.tags!r})"

    def _reply_parent(self) -> Context | None:
        """Where a non-user message or an event goes: see 'Trace layout' in conventions/."""
        current = get_current_span().get_span_context()
        turn = _index.turns.get(self.id)
        if current.is_valid and (explicit_parent.get() or (turn is not None and current.trace_id == turn.trace_id)):
            return None
        if turn is not None:
            cached = self._turn_context
            if cached is not None and cached[0] is turn:
                return cached[1]
            context = context_of(turn)
            self._turn_context = (turn, context)
            return context
        return NEW_TRACE

    def track_message(
        self,
        message: Mapping[str, Any],
        user_id: str | None = None,
        user_props: Mapping[str, Any] | None = None,
        feedback: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Record one message; returns its id (for feedback and ``parent``), None if invalid."""
        # The never_raises boundary, inline: the hottest call saves the wrapper's frame.
        try:
            if type(message) is not dict and not isinstance(message, Mapping):
                _health.report("invalid_arguments", "otel_lunary: track_message needs a dict, got %s", type(message).__name__)
                return None
            role = message.get("role")
            if isinstance(role, str):  # normalise_role, inline
                role = role.lower()
            if role not in ROLES:
                _health.report("invalid_arguments", "otel_lunary: track_message got unknown role %r (use user, assistant, system or tool)", message.get("role"))
                return None
            runtime = _runtime._current or _runtime.get()  # get() without its call once configured
            policy = runtime.policy
            custom_id = message.get("id")
            role_base = self._message_bases.get(role)
            if role_base is None:
                role_base = self._message_bases[role] = message_base(self._base, role)
            if (
                type(message) is dict
                and len(message) == 2  # "role" is in it, so its keys are role and content
                and role != TOOL
                and user_id is None
                and user_props is None
                and isinstance(content := message.get("content"), str)
                and len(content) <= policy.untouched_up_to
            ):
                # The common message, as role_message_attributes builds it, without the call.
                attributes = role_base.copy()
                if policy.capture:
                    key, head, tail = _TEXT_SHAPES[role]
                    attributes[key] = head + json_string(content) + tail
            else:
                attributes = role_message_attributes(role_base, message, role, policy, user_id, user_props)
            links: list[Link] | None = None
            if role == USER:
                parent: Context | None = NEW_TRACE
                ambient = get_current_span().get_span_context()
                if ambient.is_valid:
                    links = [Link(ambient)]
            else:
                parent = self._reply_parent()
            span_context, stamped = emit_stamped(runtime, _MESSAGE_SPAN_NAMES[role], attributes, parent, links)
            message_id = str(custom_id) if custom_id is not None else (stamped or format_message_id(span_context))
            _index.messages.put(message_id, _new_tuple(_MessageRef, (span_context, self.id)))
            if role == USER:
                _index.turns.put(self.id, span_context)
            if feedback is not None and isinstance(feedback, Mapping) and feedback:
                from otel_lunary.feedback import track_feedback

                track_feedback(message_id, feedback)
            return message_id
        except Exception:  # noqa: BLE001 - what never_raises() does, without its frame
            _health.report("internal_errors", "otel_lunary: %s failed and was skipped", _TRACK_MESSAGE, exc_info=True)
            return None

    @never_raises()
    def track_event(
        self,
        event_name: str,
        user_id: str | None = None,
        user_props: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a custom event (a document opened, a button clicked) in the current turn."""
        if not isinstance(event_name, str) or not event_name:
            _health.report("invalid_arguments", "otel_lunary: track_event needs a non-empty event name, got %r", type(event_name).__name__)
            return
        runtime = _runtime.get()
        attributes = event_attributes(self._base, event_name, user_id, user_props, metadata)
        emit_instant(runtime, event_span_name(event_name), attributes, self._reply_parent())


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
