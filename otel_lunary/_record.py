"""The recording layer: what each Lunary span carries, and how it is emitted.

The public calls (``Thread``, ``track_feedback``, ``monitor``, the run decorators) and the
bridge only translate their inputs into the functions here, so a message recorded by
``track_message`` and one that came through the bridge carry the same attributes, and
the rules live once:

- span names, from the conventions' templates;
- attributes of threads, messages, events, feedback, LLM calls and agent/tool/chain runs,
  including the per-call Lunary options (user, tags, metadata) and the enclosing
  ``identify``/``tags`` blocks;
- the content policy: content passes through a fresh ``ContentPolicy`` per span, and the
  function that applied it marks what it returns with ``lunary.content.truncated`` when
  something was cut, so no caller can forget the marker;
- errors: ``error.type``, the status and an ``exception`` event, for a Python exception
  or for an error a Lunary SDK reported;
- emission: instant spans (``emit``), and ``Operation`` for a span around the
  application's own work. Dialect attributes are added at emission.
"""

from __future__ import annotations

import itertools
import operator
import re
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.semconv.attributes.exception_attributes import EXCEPTION_MESSAGE, EXCEPTION_STACKTRACE, EXCEPTION_TYPE
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode

from otel_lunary import _bounds, _health, _state
from otel_lunary._content import (
    ContentPolicy,
    content_attributes,
    genai_message,
    messages_text,
    genai_message_json,
    json_string,
    text_message_json,
    text_message_json_ends,
    to_json,
    to_string_list,
)
from otel_lunary._health import never_raises
from otel_lunary._state import Runtime
from otel_lunary.attributes import (
    ERROR_TYPE,
    EVENT_NAME_GEN_AI_EVALUATION_RESULT,
    GEN_AI_AGENT_NAME,
    GEN_AI_CONVERSATION_ID,
    GEN_AI_EVALUATION_EXPLANATION,
    GEN_AI_EVALUATION_NAME,
    GEN_AI_EVALUATION_SCORE_LABEL,
    GEN_AI_EVALUATION_SCORE_VALUE,
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OPERATION_NAME,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_OUTPUT_TYPE,
    GEN_AI_REQUEST_CHOICE_COUNT,
    GEN_AI_REQUEST_FREQUENCY_PENALTY,
    GEN_AI_REQUEST_MAX_TOKENS,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_REQUEST_PRESENCE_PENALTY,
    GEN_AI_REQUEST_SEED,
    GEN_AI_REQUEST_STOP_SEQUENCES,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_REQUEST_TEMPERATURE,
    GEN_AI_REQUEST_TOP_P,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_TOOL_CALL_ARGUMENTS,
    GEN_AI_TOOL_CALL_RESULT,
    GEN_AI_TOOL_NAME,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_WORKFLOW_NAME,
    INPUT_MIME_TYPE,
    INPUT_VALUE,
    LUNARY_CONTENT_TRUNCATED,
    LUNARY_EVENT_NAME,
    LUNARY_FEEDBACK,
    LUNARY_FEEDBACK_MESSAGE_ID,
    LUNARY_FEEDBACK_REMOVED,
    LUNARY_MESSAGE_ID,
    LUNARY_MESSAGE_CONTENT,
    LUNARY_MESSAGE_IS_RETRY,
    LUNARY_MESSAGE_ROLE,
    LUNARY_MESSAGE_TOOL_CALL_ID,
    LUNARY_METADATA,
    LUNARY_RUN_NAME,
    LUNARY_SPAN_TYPE,
    LUNARY_TAGS,
    LUNARY_THREAD_METADATA,
    LUNARY_THREAD_TAGS,
    LUNARY_USER_PROPS,
    SPAN_NAME_GEN_AI_EXECUTE_TOOL_INTERNAL,
    SPAN_NAME_GEN_AI_INFERENCE_CLIENT,
    SPAN_NAME_GEN_AI_INVOKE_AGENT_INTERNAL,
    SPAN_NAME_GEN_AI_INVOKE_WORKFLOW_INTERNAL,
    SPAN_NAME_LUNARY_CHAIN,
    SPAN_NAME_LUNARY_EVENT,
    SPAN_NAME_LUNARY_FEEDBACK,
    SPAN_NAME_LUNARY_MESSAGE,
    OUTPUT_MIME_TYPE,
    OUTPUT_VALUE,
    USER_ID,
    GenAiOperationNameValues,
    GenAiOutputTypeValues,
    LunaryMessageRoleValues,
    LunarySpanTypeValues,
)
from otel_lunary.dialects import translate
from otel_lunary.ids import format_message_id

_INTERNAL = SpanKind.INTERNAL
time_ns = time.time_ns


def span_name(template: str, values: Mapping[str, str]) -> str:
    """Fill a span-name template from the conventions (placeholders are attribute ids)."""
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template


def _mark(attributes: dict[str, Any], policy: ContentPolicy) -> dict[str, Any]:
    """Mark ``attributes`` when ``policy`` (fresh for them) cut some of their content."""
    if policy.truncated:
        attributes[LUNARY_CONTENT_TRUNCATED] = True
    return attributes


def text_of(value: Any) -> str:
    """A run's input or output as text: a string as it is, anything else as JSON."""
    return value if isinstance(value, str) else to_json(value)


# --- emission ---------------------------------------------------------------------------------


class ReportedError(NamedTuple):
    """An error a Lunary SDK reported (the bridge): its class name, message and stack."""

    type: str
    message: str
    stacktrace: str | None = None


# What stands for content that was not captured (capture off): a feedback comment, an
# exception's message.
NOT_CAPTURED = "[content not captured]"
_UNKNOWN_TYPE = "_OTHER"  # the OTel spec's error.type for an unknown class
_TYPE_NAME = re.compile(r"[A-Za-z_][\w.$]*")


def _python_error(error: BaseException) -> ReportedError:
    """A Python exception as the type name the SDK uses, its message and its stack trace."""
    kind = type(error)
    module = kind.__module__
    name = f"{module}.{kind.__qualname__}" if module and module != "builtins" else kind.__qualname__
    try:
        message = str(error)
    except Exception:  # noqa: BLE001 - the application's __str__ can raise anything
        message = f"<unprintable {kind.__qualname__}>"
    return ReportedError(name, message, "".join(traceback.format_exception(kind, error, error.__traceback__)))


def record_error(span: Span, error: BaseException | ReportedError, policy: ContentPolicy, timestamp: int | None = None) -> None:
    """``error.type``, an ERROR status and the ``exception`` event, for a Python exception or
    a reported one; the same attributes whichever producer saw the error.

    An exception's message and stack trace usually quote what the code was working on
    (``ValueError(f"bad card {card}")``), so they are content: with capture off, only the
    type leaves the process (a reported type that does not look like a class name becomes
    ``_OTHER``), with ``NOT_CAPTURED`` as the message and no stack trace; with capture on,
    both go through ``policy`` (the redaction hook and the content bound).
    """
    error_type = type(error).__qualname__ if isinstance(error, BaseException) else None
    reported = _python_error(error) if isinstance(error, BaseException) else error
    exception_type = _bounds.name(reported.type, "error type")
    if policy.capture:
        policy = policy.fresh()
        message = policy.text(reported.message)[:1024]
        stacktrace = policy.text(reported.stacktrace)[:16384] if reported.stacktrace else None
        if policy.truncated:
            span.set_attribute(LUNARY_CONTENT_TRUNCATED, True)
    else:
        if _TYPE_NAME.fullmatch(exception_type) is None:
            exception_type = _UNKNOWN_TYPE
        message, stacktrace = NOT_CAPTURED, None
    span.set_attribute(ERROR_TYPE, exception_type if error_type is None else error_type)
    span.set_status(Status(StatusCode.ERROR, message))
    exception = {EXCEPTION_TYPE: exception_type, EXCEPTION_MESSAGE: message}
    if stacktrace:
        exception[EXCEPTION_STACKTRACE] = stacktrace
    span.add_event("exception", exception, timestamp=timestamp)


def emit(
    runtime: Runtime,
    name: str,
    attributes: dict[str, Any],
    parent: Context | None,
    links: Sequence[Link] | None = None,
    stamp_message_id: bool = False,
    events: Sequence[tuple[str, dict[str, Any]]] = (),
    start_ns: int | None = None,
    end_ns: int | None = None,
    kind: SpanKind = _INTERNAL,
    error: ReportedError | None = None,
) -> tuple[SpanContext, str | None]:
    """Record one finished span; ``parent`` None means the current context.

    Messages, events and feedback are instants (``end_ns`` defaults to the start, which
    defaults to now; the bridge passes the client's times). With ``stamp_message_id`` and
    no ``lunary.message.id`` in ``attributes``, the span's own traceparent becomes it (known
    only once the span has started) and is returned beside the span context; else None.
    """
    start = time_ns() if start_ns is None else start_ns
    dialects = runtime.settings.dialects
    if dialects:
        attributes.update(translate(dialects, attributes))
    span = runtime.tracer.start_span(name, parent, kind, attributes, links or None, start)
    span_context = span.get_span_context()
    stamped = None
    if stamp_message_id and LUNARY_MESSAGE_ID not in attributes:
        stamped = format_message_id(span_context)
        span.set_attribute(LUNARY_MESSAGE_ID, stamped)
    for event_name, event_attributes in events:
        span.add_event(event_name, event_attributes, timestamp=start)
    end = start if end_ns is None else end_ns
    if error is not None:
        record_error(span, error, runtime.policy, end)
    span.end(end_time=end)
    return span_context, stamped


_START = never_raises("could not start a span; the work runs unrecorded")
_SET = never_raises("could not record attributes")
_FAIL = never_raises("could not record an error")
_END = never_raises("could not end a span")


class Operation:
    """One span around the application's own work (an LLM call, an agent, a tool); every
    method is safe to call in any state, and the application's exceptions pass unchanged."""

    __slots__ = ("span", "runtime", "_context", "_conversation", "_explicit", "_finished")

    def __init__(self, name: str, kind: SpanKind, attributes: dict[str, Any], parent_id: Any = None) -> None:
        """Start the span with ``attributes`` (which it takes over), plus the user and tags of
        enclosing ``identify``/``tags`` blocks; ``parent_id`` is a message id (``parent=``)."""
        self.span: Span | None = None
        self._finished = False
        self._explicit = False
        self._conversation: str | None = None
        with _START:
            with_ambient_identity(attributes)
            self.runtime = _state.get()
            target = _state.resolve(parent_id) if parent_id is not None else None
            if parent_id is not None and target is None:
                _health.report("unknown_parent", "otel_lunary: parent=%r is not a message id this process can link to", parent_id)
            parent_context = _state.context_of(target.span_context) if target is not None else None
            self._explicit = target is not None
            conversation = (target.conversation_id if target else None) or _state.current_conversation.get()
            if conversation is not None:
                conversation = attributes[GEN_AI_CONVERSATION_ID] = _bounds.identifier(conversation, "thread id")
            self._conversation = conversation
            dialects = self.runtime.settings.dialects
            if dialects:
                attributes.update(translate(dialects, attributes))
            self.span = self.runtime.tracer.start_span(name, context=parent_context, kind=kind, attributes=attributes)
            self._context = trace.set_span_in_context(self.span, parent_context)

    @classmethod
    def unrecorded(cls) -> Operation:
        """An operation with no span: the work runs, nothing is recorded."""
        operation = cls.__new__(cls)
        operation.span = None
        operation._finished = True
        operation._explicit = False
        operation._conversation = None
        return operation

    @property
    def policy(self) -> ContentPolicy | None:
        """The content policy to build this span's attributes with; None when nothing is
        recorded (no span, or it has ended), so the caller can skip building them."""
        if self.span is None or self._finished:
            return None
        return self.runtime.policy

    @contextmanager
    def active(self) -> Iterator[None]:
        """Make the span current so work inside (HTTP calls, nested LLM calls) nests under it."""
        stack = _state.ContextStack()
        if self.span is not None:
            stack.enter(self._context, self._conversation, self._explicit)
        try:
            yield
        finally:
            stack.exit()

    @contextmanager
    def running(self) -> Iterator[None]:
        """``active()``, and an exception from the work is recorded, then re-raised unchanged."""
        with self.active():
            try:
                yield
            except BaseException as error:
                self.fail(error)
                raise

    def set(self, attributes: dict[str, Any]) -> None:
        if self.span is None or self._finished:
            return
        with _SET:
            dialects = self.runtime.settings.dialects
            if dialects:
                attributes.update(translate(dialects, attributes))
            self.span.set_attributes(attributes)

    def fail(self, error: BaseException) -> None:
        if self.span is None or self._finished:
            return
        with _FAIL:
            record_error(self.span, error, self.runtime.policy)
        self.finish()

    def finish(self) -> None:
        if self.span is None or self._finished:
            return
        self._finished = True
        with _END:
            self.span.end()


class Handover:
    """An LLM call that another instrumentation records, so ``lunary.monitor`` records no span
    of its own (one call, one LLM span). The call still runs under ``parent=`` (the other
    span nests under the message) and the other span gets what monitor's would have had:
    the conversation and the call's Lunary options. It is the first span started inside
    the call (the conversation stamper adds them), or, when it encloses the call (a
    LangChain span around a monitored client), ``enclosing``, which gets them at once."""

    __slots__ = ("_attributes", "_context", "_conversation", "_enclosing")

    def __init__(self, attributes: dict[str, Any], parent_id: Any = None, enclosing: Span | None = None) -> None:
        self._attributes: dict[str, Any] | None = None
        self._context: Context | None = None
        self._conversation: str | None = None
        self._enclosing = enclosing
        with _START:
            with_ambient_identity(attributes)
            runtime = _state.get()  # also puts the stamper on the provider in use
            target = _state.resolve(parent_id) if parent_id is not None else None
            if parent_id is not None and target is None:
                _health.report("unknown_parent", "otel_lunary: parent=%r is not a message id this process can link to", parent_id)
            self._context = _state.context_of(target.span_context) if target is not None else None
            conversation = (target.conversation_id if target else None) or _state.current_conversation.get()
            self._conversation = conversation
            if conversation is not None:
                attributes[GEN_AI_CONVERSATION_ID] = conversation
            dialects = runtime.settings.dialects
            if dialects:
                attributes.update(translate(dialects, attributes))
            self._attributes = attributes

    def enter(self) -> _state.ContextStack:
        """Enter the call's context (parent, conversation, attributes for the other span);
        the caller exits the returned stack when the call is over."""
        stack = _state.ContextStack()
        attributes = self._attributes
        if attributes is not None:
            if self._context is not None:
                stack.enter(self._context, self._conversation, explicit=True)
            elif self._conversation is not None:
                stack.push(_state.current_conversation, self._conversation)
            if self._enclosing is not None:
                with _SET:
                    self._enclosing.set_attributes(attributes)
            elif attributes:
                stack.push(_state.pending_call, [attributes])
        return stack


# --- who and what: options every producer accepts the same way --------------------------------


def with_user(attributes: dict[str, Any], user_id: Any, user_props: Any) -> dict[str, Any]:
    if user_id is not None:
        attributes[USER_ID] = _bounds.identifier(str(user_id), "user id")
    if user_props is not None:
        attributes[LUNARY_USER_PROPS] = _bounds.json_value(user_props, "user props")
    return attributes


def with_run_options(attributes: dict[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """Add Lunary's per-call ``user_id``, ``user_props``, ``tags`` and ``metadata`` options,
    which LLM calls, agent/tool/chain runs and the bridge's runs all accept the same way."""
    with_user(attributes, options.get("user_id"), options.get("user_props"))
    tags = to_string_list(options.get("tags"))
    if tags:
        attributes[LUNARY_TAGS] = _bounds.tags(tags)
    if options.get("metadata") is not None:
        attributes[LUNARY_METADATA] = _bounds.json_value(options["metadata"])
    return attributes


def with_ambient_identity(attributes: dict[str, Any]) -> dict[str, Any]:
    """Add the user and tags of enclosing ``identify``/``tags`` blocks; explicit values win."""
    identity = _state.identity.get()
    if identity is not None:
        user_id, user_props = identity
        if user_id is not None and USER_ID not in attributes:
            attributes[USER_ID] = _bounds.identifier(str(user_id), "user id")
        if user_props is not None and LUNARY_USER_PROPS not in attributes:
            attributes[LUNARY_USER_PROPS] = _bounds.json_value(user_props, "user props")
    ambient_tags = _state.ambient_tags.get()
    if ambient_tags:
        attributes[LUNARY_TAGS] = _bounds.tags(list(dict.fromkeys([*attributes.get(LUNARY_TAGS, ()), *ambient_tags])))
    return attributes


# --- threads, messages, events ----------------------------------------------------------------

USER = LunaryMessageRoleValues.USER.value
ASSISTANT = LunaryMessageRoleValues.ASSISTANT.value
TOOL_ROLE = LunaryMessageRoleValues.TOOL.value
SYSTEM = LunaryMessageRoleValues.SYSTEM.value
ROLES = frozenset(role.value for role in LunaryMessageRoleValues)
MESSAGE_SPAN_NAMES = {role: span_name(SPAN_NAME_LUNARY_MESSAGE, {LUNARY_MESSAGE_ROLE: role}) for role in ROLES}
_MESSAGE = LunarySpanTypeValues.MESSAGE.value
_EVENT = LunarySpanTypeValues.EVENT.value
# The event span name's template around its one placeholder (what ``span_name`` fills in),
# or None if the template has it more than once.
_EVENT_SPAN_NAME_ENDS = tuple(parts) if len(parts := SPAN_NAME_LUNARY_EVENT.split("{" + LUNARY_EVENT_NAME + "}")) == 2 else None
# Per role, for a text message: the content attribute and the JSON around the text.
_TEXT_SHAPES = {role: (content_attributes(role)[0], *text_message_json_ends(role)) for role in ROLES}


# Each role in every letter case ("User", "ASSISTANT"...) -> the role.
_ROLE_SPELLINGS: dict[Any, str] = {
    "".join(letters): role for role in ROLES for letters in itertools.product(*({c, c.upper()} for c in role))
}
# Lunary's role in lower case, or None when it is not one of the four (any letter case).
# A dict lookup, not a function: track_message calls it first, on the hot path.
normalise_role: Callable[[Any], str | None] = _ROLE_SPELLINGS.get


def conversation_id(thread_id: Any) -> str:
    """A thread's id as every span of the thread carries it (``gen_ai.conversation.id``):
    bounded like any id, so the same long id gives the same value in every process."""
    return _bounds.identifier(str(thread_id), "thread id")


def thread_attributes(thread_id: str, tags: list[str], metadata: Any, user_id: Any, user_props: Any) -> dict[str, Any]:
    """What every span of a thread carries; computed once per thread."""
    base: dict[str, Any] = {GEN_AI_CONVERSATION_ID: conversation_id(thread_id)}
    if tags:
        base[LUNARY_THREAD_TAGS] = _bounds.tags(tags)
    if metadata is not None:
        base[LUNARY_THREAD_METADATA] = _bounds.json_value(metadata, "thread metadata")
    return with_user(base, user_id, user_props)


def message_base(thread_base: Mapping[str, Any], role: str) -> dict[str, Any]:
    """What every message span of one role in a thread starts from; computed once per thread and role."""
    attributes = dict(thread_base)
    attributes[LUNARY_SPAN_TYPE] = _MESSAGE
    attributes[LUNARY_MESSAGE_ROLE] = role
    return attributes


def message_attributes(
    policy: ContentPolicy,
    role_base: dict[str, Any],
    message: Mapping[str, Any],
    role: str,
    user_id: Any = None,
    user_props: Any = None,
) -> dict[str, Any]:
    """The attributes of a message span (conventions: span.lunary.message) from
    ``message_base(thread_base, role)``, which it does not change; ``role`` is valid."""
    return message_record(policy, role_base, message, role, user_id, user_props)[0]


def message_record(
    policy: ContentPolicy,
    role_base: dict[str, Any],
    message: Mapping[str, Any],
    role: str,
    user_id: Any = None,
    user_props: Any = None,
) -> tuple[dict[str, Any], str | None]:
    """``message_attributes``, and the text a turn span shows of the message (its
    ``input.value`` or ``output.value``: ``messages_text`` of the content attribute) when it
    is known without parsing that JSON back; None when it is not.

    A plain ``{"role", "content": str}`` dict is most of the traffic: it skips the lookups
    of the optional keys, and its content JSON is written around the text directly (the
    same characters ``genai_message`` gives), so the text is the one written.
    """
    attributes = role_base.copy()
    if user_id is not None or user_props is not None:
        with_user(attributes, user_id, user_props)
    if type(message) is dict and len(message) == 2 and role != TOOL_ROLE and "role" in message and isinstance(content := message.get("content"), str):
        if policy.capture:
            key, head, tail = _TEXT_SHAPES[role]
            if len(content) <= policy.untouched_up_to:  # the policy would return it as is
                attributes[key] = head + json_string(content) + tail
            else:
                policy = policy.fresh()
                content = policy.text(content)
                attributes[key] = head + json_string(content) + tail
                _mark(attributes, policy)
            return attributes, content
    else:
        _message_details(attributes, message, role, policy)
    return attributes, None


def emit_message(
    runtime: Runtime, attributes: dict[str, Any], role: str, parent: Context | None, links: Sequence[Link] | None = None, timestamp_ns: int | None = None
) -> tuple[SpanContext, str]:
    """Record a message span with ``message_attributes``; returns the span context and the
    message id: ``message["id"]`` when given, else the span's traceparent."""
    span_context, stamped = emit(runtime, MESSAGE_SPAN_NAMES[role], attributes, parent, links, True, (), timestamp_ns)
    return span_context, stamped if stamped is not None else attributes[LUNARY_MESSAGE_ID]


def message(
    runtime: Runtime,
    role_base: dict[str, Any],
    message: Mapping[str, Any],
    role: str,
    parent: Context | None,
    links: Sequence[Link] | None = None,
    user_id: Any = None,
    user_props: Any = None,
    timestamp_ns: int | None = None,
) -> tuple[SpanContext, str]:
    """Record a message span: ``message_attributes`` then ``emit_message``."""
    attributes = message_attributes(runtime.policy, role_base, message, role, user_id, user_props)
    return emit_message(runtime, attributes, role, parent, links, timestamp_ns)


def _message_details(attributes: dict[str, Any], message: Mapping[str, Any], role: str, policy: ContentPolicy) -> None:
    """What a message other than plain text adds: its own id, retry flag, tags, metadata,
    tool call id, and its content in the GenAI structured shape."""
    custom_id = message.get("id")
    if custom_id is not None:
        attributes[LUNARY_MESSAGE_ID] = _bounds.identifier(str(custom_id), "message id")
    if message.get("is_retry", message.get("isRetry")):
        attributes[LUNARY_MESSAGE_IS_RETRY] = True
    tags = to_string_list(message.get("tags"))
    if tags:
        attributes[LUNARY_TAGS] = _bounds.tags(tags)
    if message.get("metadata") is not None:
        attributes[LUNARY_METADATA] = _bounds.json_value(message["metadata"])
    tool_call_id = message.get("tool_call_id", message.get("toolCallId"))
    if tool_call_id is not None:
        attributes[LUNARY_MESSAGE_TOOL_CALL_ID] = _bounds.identifier(str(tool_call_id), "tool call id")
    if policy.capture:
        policy = policy.fresh()
        structured = genai_message({**message, "role": role}, policy)
        attributes[content_attributes(role)[0]] = genai_message_json(structured)
        _mark(attributes, policy)


def event(
    runtime: Runtime,
    thread_base: Mapping[str, Any],
    event_name: str,
    parent: Context | None,
    user_id: Any = None,
    user_props: Any = None,
    metadata: Any = None,
    timestamp_ns: int | None = None,
) -> SpanContext:
    """Record a custom-event span (conventions: span.lunary.event)."""
    attributes = dict(thread_base)
    attributes[LUNARY_SPAN_TYPE] = _EVENT
    attributes[LUNARY_EVENT_NAME] = event_name = _bounds.name(event_name, "event name")
    if user_id is not None or user_props is not None:
        with_user(attributes, user_id, user_props)
    if metadata is not None:
        attributes[LUNARY_METADATA] = _bounds.json_value(metadata)
    if _EVENT_SPAN_NAME_ENDS is None:
        name = span_name(SPAN_NAME_LUNARY_EVENT, {LUNARY_EVENT_NAME: event_name})
    else:
        name = _EVENT_SPAN_NAME_ENDS[0] + event_name + _EVENT_SPAN_NAME_ENDS[1]
    return emit(runtime, name, attributes, parent, None, False, (), timestamp_ns)[0]


# --- turns ------------------------------------------------------------------------------------

TURN = LunarySpanTypeValues.TURN.value
# gen_ai.workflow.name of otel-lunary's workflow: the handling of one user message.
TURN_WORKFLOW = "turn"
TURN_SPAN_NAME = span_name(SPAN_NAME_GEN_AI_INVOKE_WORKFLOW_INTERNAL, {GEN_AI_WORKFLOW_NAME: TURN_WORKFLOW})
_INVOKE_WORKFLOW = GenAiOperationNameValues.INVOKE_WORKFLOW.value
_TEXT_MIME = "text/plain"
# What the question's message span says of the user that the turn span repeats.
_QUESTION_USER = (USER_ID, LUNARY_USER_PROPS)


def has_tool_calls(message: Mapping[str, Any]) -> bool:
    """An assistant message asking for tool calls: the turn's answer is still to come."""
    return bool(message.get("tool_calls") or message.get("toolCalls"))


def _text_copy(attributes: dict[str, Any], messages_json: Any, value_key: str, mime_key: str, text: str | None) -> None:
    """The messages' text as a reader's one text field (``text``, when the caller knows it)."""
    if text is None:
        text = messages_text(messages_json)
    if text:
        attributes[value_key] = text
        attributes[mime_key] = _TEXT_MIME


def turn_attributes(thread_base: Mapping[str, Any], question: Mapping[str, Any], text: str | None = None) -> dict[str, Any]:
    """The attributes a turn span (conventions: span.gen_ai.invoke_workflow.internal) starts
    with, from ``question``, the attributes of the user message's span (and its text, from
    ``message_record``, when known: the JSON is not parsed back for it)."""
    attributes = dict(thread_base)
    for key in _QUESTION_USER:
        if key in question:
            attributes[key] = question[key]
    attributes[LUNARY_SPAN_TYPE] = TURN
    attributes[GEN_AI_OPERATION_NAME] = _INVOKE_WORKFLOW
    attributes[GEN_AI_WORKFLOW_NAME] = TURN_WORKFLOW
    content = question.get(LUNARY_MESSAGE_CONTENT)
    if content is not None:
        attributes[GEN_AI_INPUT_MESSAGES] = content
        _text_copy(attributes, content, INPUT_VALUE, INPUT_MIME_TYPE, text)
    if question.get(LUNARY_CONTENT_TRUNCATED):
        attributes[LUNARY_CONTENT_TRUNCATED] = True
    return attributes


def start_turn(
    runtime: Runtime,
    thread_base: Mapping[str, Any],
    question: Mapping[str, Any],
    parent: Context | None,
    links: Sequence[Link] | None,
    start_ns: int,
    text: str | None = None,
) -> Span:
    """Start the turn span a user message opens (``parent`` is a new trace, or None: the
    current span; ``text``: the question's, when known, see ``turn_attributes``); the caller
    (``_turns``) ends it, with ``turn_output`` when the reply comes."""
    attributes = turn_attributes(thread_base, question, text)
    dialects = runtime.settings.dialects
    if dialects:
        attributes.update(translate(dialects, attributes))
    return runtime.tracer.start_span(TURN_SPAN_NAME, parent, _INTERNAL, attributes, links or None, start_ns)


def turn_output(reply: Mapping[str, Any], text: str | None = None) -> dict[str, Any]:
    """What the turn span gets from its reply, ``reply`` being the reply span's attributes
    (and ``text`` its text from ``message_record``, when known)."""
    attributes: dict[str, Any] = {}
    content = reply.get(LUNARY_MESSAGE_CONTENT)
    if content is not None:
        attributes[GEN_AI_OUTPUT_MESSAGES] = content
        _text_copy(attributes, content, OUTPUT_VALUE, OUTPUT_MIME_TYPE, text)
    if reply.get(LUNARY_CONTENT_TRUNCATED):
        attributes[LUNARY_CONTENT_TRUNCATED] = True
    return attributes


# --- feedback ---------------------------------------------------------------------------------

_FEEDBACK = LunarySpanTypeValues.FEEDBACK.value
# Keys whose values are the user's words: captured and redacted like message content.
FEEDBACK_CONTENT_KEYS = frozenset({"comment"})
THUMB = "thumb"
THUMB_SCORES = {"up": 1.0, "down": -1.0}
# The evaluation of a thumb up or down, the usual feedback: always the same (copied per use).
_THUMB_EVALUATIONS = {
    label: {GEN_AI_EVALUATION_NAME: THUMB, GEN_AI_EVALUATION_SCORE_LABEL: label, GEN_AI_EVALUATION_SCORE_VALUE: score}
    for label, score in THUMB_SCORES.items()
}
_second = operator.itemgetter(1)


def _feedback_key(key: Any, value: Any) -> str | None:
    """The name to record ``key`` under, or None (reported) when the pair is not feedback a
    reader could use: a thumb that is not up, down or None, a key whose ``str`` raises. One
    bad key must not cost the call its other keys."""
    try:
        name = key if isinstance(key, str) else str(key)
    except Exception:  # noqa: BLE001 - the application's __str__ can raise anything
        _health.report("invalid_arguments", "otel_lunary: track_feedback got a key that cannot be a string; left out")
        return None
    if name == THUMB and value is not None and not (isinstance(value, str) and value in THUMB_SCORES):
        _health.report("invalid_arguments", "otel_lunary: track_feedback got thumb=%r (use 'up', 'down' or None); left out", value, key="feedback thumb")
        return None
    return _bounds.name(name, "feedback key")


def evaluation_attributes(key: str, value: Any, policy: ContentPolicy) -> dict[str, Any]:
    """The ``gen_ai.evaluation.result`` attributes for one feedback key (None: a removal)."""
    attributes: dict[str, Any] = {GEN_AI_EVALUATION_NAME: key}
    if value is None:
        attributes[LUNARY_FEEDBACK_REMOVED] = True
    elif key in FEEDBACK_CONTENT_KEYS:
        if policy.capture:
            attributes[GEN_AI_EVALUATION_EXPLANATION] = policy.text(value)
    elif key == THUMB and value in THUMB_SCORES:
        return dict(_THUMB_EVALUATIONS[value])
    elif isinstance(value, bool):
        attributes[GEN_AI_EVALUATION_SCORE_VALUE] = 1.0 if value else 0.0
    elif isinstance(value, (int, float)):
        attributes[GEN_AI_EVALUATION_SCORE_VALUE] = float(value)
    else:
        attributes[GEN_AI_EVALUATION_SCORE_LABEL] = policy.bound(text_of(value))
    return attributes


def feedback_record(values: Mapping[Any, Any], policy: ContentPolicy) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """The raw feedback as it may leave the process (content keys redacted or withheld) and
    one ``gen_ai.evaluation.result`` event per key: what a feedback span carries, and what
    the Phoenix annotations are made from."""
    raw: dict[str, Any] = {}
    events = []
    for key, value in values.items():
        if type(key) is str and key == THUMB and type(value) is str and value in _THUMB_EVALUATIONS:
            # the usual feedback: what the general path below gives it, without its calls
            raw[THUMB] = value
            events.append((EVENT_NAME_GEN_AI_EVALUATION_RESULT, dict(_THUMB_EVALUATIONS[value])))
            continue
        name = _feedback_key(key, value)
        if name is None:
            continue
        evaluation = evaluation_attributes(name, value, policy)
        if name in FEEDBACK_CONTENT_KEYS and value is not None:
            raw[name] = evaluation.get(GEN_AI_EVALUATION_EXPLANATION, NOT_CAPTURED)
        else:
            raw[name] = value
        events.append((EVENT_NAME_GEN_AI_EVALUATION_RESULT, evaluation))
    return raw, events


def feedback(
    runtime: Runtime,
    message_id: str,
    values: Mapping[Any, Any],
    conversation: str | None,
    parent: Context | None,
    timestamp_ns: int | None = None,
) -> tuple[SpanContext, list[dict[str, Any]]]:
    """Record a feedback span (conventions: span.lunary.feedback): the raw feedback as JSON
    (content keys redacted or withheld) and one ``gen_ai.evaluation.result`` event per key.
    Returns the span context and the events' attributes (what Phoenix annotations mirror)."""
    policy = runtime.policy.fresh()
    raw, events = feedback_record(values, policy)
    attributes: dict[str, Any] = {
        LUNARY_SPAN_TYPE: _FEEDBACK,
        LUNARY_FEEDBACK_MESSAGE_ID: _bounds.identifier(message_id, "message id"),
        LUNARY_FEEDBACK: _bounds.json_value(raw, "feedback"),
    }
    if conversation is not None:
        attributes[GEN_AI_CONVERSATION_ID] = conversation
    if policy.truncated:  # _mark, inline
        attributes[LUNARY_CONTENT_TRUNCATED] = True
    span_context = emit(runtime, SPAN_NAME_LUNARY_FEEDBACK, attributes, parent, None, False, events, timestamp_ns)[0]
    return span_context, list(map(_second, events))


# --- LLM calls --------------------------------------------------------------------------------

OPENAI = "openai"
CHAT = GenAiOperationNameValues.CHAT.value
_REQUEST_NUMBERS = (
    ("temperature", GEN_AI_REQUEST_TEMPERATURE, float),
    ("top_p", GEN_AI_REQUEST_TOP_P, float),
    ("max_tokens", GEN_AI_REQUEST_MAX_TOKENS, int),
    ("max_completion_tokens", GEN_AI_REQUEST_MAX_TOKENS, int),
    ("seed", GEN_AI_REQUEST_SEED, int),
    ("frequency_penalty", GEN_AI_REQUEST_FREQUENCY_PENALTY, float),
    ("presence_penalty", GEN_AI_REQUEST_PRESENCE_PENALTY, float),
)
# OpenAI's response_format types -> gen_ai.output.type (a pydantic class given to
# ``.parse()`` asks for JSON too).
_OUTPUT_TYPES = {
    "json_object": GenAiOutputTypeValues.JSON.value,
    "json_schema": GenAiOutputTypeValues.JSON.value,
    "text": GenAiOutputTypeValues.TEXT.value,
}
# The registry's finish reason for a generation that ended without one from the model
# (a stream closed early or dropped): gen-ai-output-messages.json's FinishReason.
NO_FINISH_REASON = "error"


def _output_type(response_format: Any) -> str | None:
    if isinstance(response_format, type):
        return GenAiOutputTypeValues.JSON.value
    kind = response_format.get("type") if isinstance(response_format, Mapping) else getattr(response_format, "type", None)
    return _OUTPUT_TYPES.get(kind) if isinstance(kind, str) else None


def _request_details(attributes: dict[str, Any], params: Mapping[str, Any]) -> None:
    """What the request asked for beyond the model: sampling, stop, choices, format, streaming."""
    for key, attribute, cast in _REQUEST_NUMBERS:
        value = params.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            attributes[attribute] = cast(value)
    choices = params.get("n")
    if isinstance(choices, int) and not isinstance(choices, bool) and choices != 1:
        attributes[GEN_AI_REQUEST_CHOICE_COUNT] = choices
    stop = params.get("stop")
    stop_sequences = [stop] if isinstance(stop, str) else to_string_list(stop) if isinstance(stop, (list, tuple)) else []
    if stop_sequences:
        attributes[GEN_AI_REQUEST_STOP_SEQUENCES] = stop_sequences
    output_type = _output_type(params.get("response_format"))
    if output_type is not None:
        attributes[GEN_AI_OUTPUT_TYPE] = output_type
    if params.get("stream") is True:
        attributes[GEN_AI_REQUEST_STREAM] = True


def as_dict(value: Any) -> dict[str, Any]:
    """A message as a dict, whether the app passed a mapping or an SDK (pydantic) object."""
    if isinstance(value, Mapping):
        return dict(value)
    dump = getattr(value, "model_dump", None)
    return dump() if callable(dump) else {}


def inference(model: str, params: Mapping[str, Any], options: Mapping[str, Any], provider: str = OPENAI) -> tuple[str, dict[str, Any]]:
    """The span name and request attributes of an LLM chat call (``params``: the call's
    keyword arguments, ``options``: Lunary's per-call options)."""
    model = _bounds.name(model, "model name")
    attributes: dict[str, Any] = {
        GEN_AI_OPERATION_NAME: CHAT,
        GEN_AI_PROVIDER_NAME: provider,
        GEN_AI_REQUEST_MODEL: model,
    }
    _request_details(attributes, params)
    name = span_name(SPAN_NAME_GEN_AI_INFERENCE_CLIENT, {GEN_AI_OPERATION_NAME: CHAT, GEN_AI_REQUEST_MODEL: model}).strip()
    return name, with_run_options(attributes, options)


def inference_input(messages: Any, policy: ContentPolicy) -> dict[str, Any]:
    """``gen_ai.input.messages`` of a list of OpenAI-style messages ({} when content is off)."""
    if not policy.capture or not isinstance(messages, list):
        return {}
    policy = policy.fresh()
    structured = [genai_message(as_dict(m), policy) for m in messages]
    return _mark({GEN_AI_INPUT_MESSAGES: to_json(structured)}, policy)


def inference_result(
    policy: ContentPolicy,
    outputs: Sequence[Mapping[str, Any]] = (),
    finish_reasons: Sequence[str] | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    response_model: str | None = None,
    response_id: str | None = None,
    time_to_first_chunk_s: float | None = None,
) -> dict[str, Any]:
    """What an LLM call returned: the response, usage and (content on) its output messages,
    one per choice; each choice's finish reason goes in ``finish_reasons`` only (the output
    schema deprecates a message's own)."""
    attributes: dict[str, Any] = {}
    if response_model:
        attributes[GEN_AI_RESPONSE_MODEL] = _bounds.name(response_model, "model name")
    if response_id:
        attributes[GEN_AI_RESPONSE_ID] = _bounds.identifier(response_id, "response id")
    if finish_reasons:
        attributes[GEN_AI_RESPONSE_FINISH_REASONS] = list(finish_reasons)
    if time_to_first_chunk_s is not None:
        attributes[GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = time_to_first_chunk_s
    if input_tokens is not None:
        attributes[GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
    if output_tokens is not None:
        attributes[GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
    if policy.capture and outputs:
        policy = policy.fresh()
        structured = [genai_message({"role": ASSISTANT, **output}, policy) for output in outputs]
        attributes[GEN_AI_OUTPUT_MESSAGES] = to_json(structured)
        _mark(attributes, policy)
    return attributes


# --- agent, tool and chain runs ---------------------------------------------------------------


class RunKind:
    """What differs between run spans: fixed attributes, the name, where input/output go."""

    def __init__(
        self,
        fixed: dict[str, Any],
        name_attribute: str,
        template: str,
        record_input: Callable[[str], dict[str, Any]] | None,
        record_output: Callable[[str], dict[str, Any]] | None,
    ) -> None:
        self.fixed = fixed
        self.name_attribute = name_attribute
        self.template = template
        self._input = record_input
        self._output = record_output

    def start(self, run_name: str, options: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The span name and the attributes a run span starts with."""
        run_name = _bounds.name(run_name, "run name")
        attributes = with_run_options({**self.fixed, self.name_attribute: run_name}, options)
        return span_name(self.template, {self.name_attribute: run_name}), attributes

    def input(self, value: Any, policy: ContentPolicy) -> dict[str, Any]:
        """The run's input (arguments) as attributes; {} when content is off or has no place."""
        return self._content(self._input, value, policy)

    def output(self, value: Any, policy: ContentPolicy) -> dict[str, Any]:
        """The run's output (result) as attributes; {} when content is off or has no place."""
        return self._content(self._output, value, policy)

    @staticmethod
    def _content(record: Callable[[str], dict[str, Any]] | None, value: Any, policy: ContentPolicy) -> dict[str, Any]:
        if record is None or not policy.capture:
            return {}
        policy = policy.fresh()
        return _mark(record(policy.text(text_of(value))), policy)


AGENT = RunKind(
    {GEN_AI_OPERATION_NAME: GenAiOperationNameValues.INVOKE_AGENT.value},
    GEN_AI_AGENT_NAME,
    SPAN_NAME_GEN_AI_INVOKE_AGENT_INTERNAL,
    lambda text: {GEN_AI_INPUT_MESSAGES: text_message_json(USER, text)},
    lambda text: {GEN_AI_OUTPUT_MESSAGES: text_message_json(ASSISTANT, text)},
)
TOOL = RunKind(
    {GEN_AI_OPERATION_NAME: GenAiOperationNameValues.EXECUTE_TOOL.value},
    GEN_AI_TOOL_NAME,
    SPAN_NAME_GEN_AI_EXECUTE_TOOL_INTERNAL,
    lambda text: {GEN_AI_TOOL_CALL_ARGUMENTS: text},
    lambda text: {GEN_AI_TOOL_CALL_RESULT: text},
)
# GenAI has no chain operation and no attribute for a chain's input or output.
CHAIN = RunKind({LUNARY_SPAN_TYPE: LunarySpanTypeValues.CHAIN.value}, LUNARY_RUN_NAME, SPAN_NAME_LUNARY_CHAIN, None, None)
RUN_KINDS = {"agent": AGENT, "tool": TOOL, "chain": CHAIN}
