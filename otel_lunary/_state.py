"""Process state, all of it: the runtime, what is remembered of recent messages, and what
the current code runs under (conversation, chosen parent, user, tags).

The runtime is which tracer and settings tracking calls use. otel-lunary fits into an
existing OTel setup: it uses the application's TracerProvider when there is one (including
the one ``opentelemetry-instrument`` installs, or one set after the first tracking call)
and never installs a global provider of its own.

A caller-supplied message id (``message["id"]``) does not encode its span, so recent
messages are remembered, LRU-bounded so a long-running server does not grow. Each thread's
current turn, which decides where a reply goes and which the reply ends, is in ``_turns``.

What the current code runs under rides in context variables, so it is right across
threads and asyncio tasks; spans otel-lunary does not create (OpenAI, LangChain or HTTP
instrumentation) get the conversation id from a span processor at span start.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import INVALID_SPAN_CONTEXT, NonRecordingSpan, SpanContext, TraceFlags, Tracer, TracerProvider, set_span_in_context
from opentelemetry.trace.span import DEFAULT_TRACE_STATE, TraceState

from otel_lunary import _bounds, _turns, export
from otel_lunary._adoption import HoldingProcessor, application_provider, describe
from otel_lunary._content import ContentPolicy
from otel_lunary._health import never_raises, report
from otel_lunary._settings import Redactor, Settings, resolve_limits, resolve_settings
from otel_lunary._version import __version__
from otel_lunary.export.light_spans import light_tracer
from otel_lunary.export.processor import MAX_TIMEOUT_S
from otel_lunary.attributes import GEN_AI_CONVERSATION_ID
from otel_lunary.dialects import translate
from otel_lunary.ids import ForcedIdGenerator, parse_message_id

if TYPE_CHECKING:
    from otel_lunary.phoenix_feedback import PhoenixAnnotationSink

INSTRUMENTATION_NAME = "otel_lunary"
_logger = logging.getLogger("otel_lunary")

# A context with no span in it: starting a span here makes a new trace root.
NEW_TRACE = Context()
# The key ``set_span_in_context`` files the span under, as the API itself writes it.
_SPAN_KEY = next(iter(set_span_in_context(NonRecordingSpan(INVALID_SPAN_CONTEXT), NEW_TRACE)))
_get_current = otel_context.get_current
_set_item = dict.__setitem__  # Context forbids item assignment; only on a Context built here


def context_of(span_context: SpanContext) -> Context:
    """A context whose current span is ``span_context``: children started in it nest under it.

    ``set_span_in_context(NonRecordingSpan(span_context))``, the same Context (the current
    one plus the span), built with one copy instead of two: every message, feedback and
    event in a turn makes one.
    """
    context = Context(_get_current())
    _set_item(context, _SPAN_KEY, NonRecordingSpan(span_context))
    return context


# --- what the current code runs under ---------------------------------------------------------

current_conversation: ContextVar[str | None] = ContextVar("otel_lunary_conversation", default=None)
# True inside lunary.parent(...) / parent=: the current span was chosen by the caller.
explicit_parent: ContextVar[bool] = ContextVar("otel_lunary_explicit_parent", default=False)
# (user_id, user_props) of the enclosing lunary.identify(...) block.
identity: ContextVar[tuple[Any, Any] | None] = ContextVar("otel_lunary_identity", default=None)
# Tags of the enclosing lunary.tags(...) block.
ambient_tags: ContextVar[list[str] | None] = ContextVar("otel_lunary_tags", default=None)
# Inside an LLM call that another instrumentation records (``_record.Handover``): the
# attributes (conversation, the call's Lunary options) for the first span started in it,
# in a one-item list that the stamper empties.
pending_call: ContextVar[list[dict[str, Any]] | None] = ContextVar("otel_lunary_pending_call", default=None)

_ENTER = never_raises("could not enter a message's context")
_RESTORE = never_raises("could not restore the context")  # e.g. left from another task


class ContextStack:
    """Entering a message's context (OTel span, chosen parent, conversation) and leaving it
    in reverse order, never masking the application's own exception."""

    __slots__ = ("_entered",)

    def __init__(self) -> None:
        self._entered: list[tuple[ContextVar[Any] | None, Token[Any]]] = []

    def enter(self, context: Context, conversation: str | None, explicit: bool) -> None:
        with _ENTER:
            self._entered.append((None, otel_context.attach(context)))
            if explicit:
                self._entered.append((explicit_parent, explicit_parent.set(True)))
            if conversation is not None:
                self._entered.append((current_conversation, current_conversation.set(conversation)))

    def push(self, var: ContextVar[Any], value: Any) -> None:
        """Set one more context variable until ``exit``."""
        with _ENTER:
            self._entered.append((var, var.set(value)))

    def exit(self) -> None:
        while self._entered:
            var, token = self._entered.pop()
            with _RESTORE:
                if var is None:
                    otel_context.detach(token)
                else:
                    var.reset(token)


class SpanStartHook(SpanProcessor):
    """A span processor that only acts when a span starts (adding attributes from the
    context): ending, flushing and shutting down have nothing to do."""

    light_spans: ClassVar[str] = "start"  # acts through the span API only (export.light_spans)

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class ConversationStamper(SpanStartHook):
    """Adds the current conversation id to spans started inside a conversation context,
    and a deferred LLM call's attributes to the first span started in that call."""

    def __init__(self, dialects: frozenset[str] = frozenset()) -> None:
        self.dialects = dialects

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pending = pending_call.get()
        if pending and span.is_recording():
            span.set_attributes(pending.pop())  # already in the dialects
        conversation = current_conversation.get()
        if conversation is None or not span.is_recording():
            return
        attributes: Any = span.attributes or {}
        if GEN_AI_CONVERSATION_ID in attributes:
            return
        extra = {GEN_AI_CONVERSATION_ID: conversation}
        if self.dialects:
            extra.update(translate(self.dialects, extra))
        span.set_attributes(extra)


# --- recent messages and turns ----------------------------------------------------------------


MAX_MESSAGES = 50_000


class MessageRef(NamedTuple):
    span_context: SpanContext
    conversation_id: str | None


# (trace_id, span_id, is_remote, trace_flags as int, trace_state as its header or "", is_valid,
# conversation_id)
_PackedRef = tuple[int, int, bool, int, str, bool, "str | None"]
_TRACE_FLAGS = [TraceFlags(flags) for flags in range(256)]  # immutable ints: shared
_new_tuple = tuple.__new__  # SpanContext and MessageRef are tuples: rebuilt without their checks


class MessageIndex:
    """Message id -> MessageRef, LRU-bounded, holding each entry as a flat tuple of ints and
    strings. CPython's collector stops tracking such tuples at their first collection, so
    the index (up to ``MAX_MESSAGES`` entries, long-lived by design) never reaches the
    oldest generation, which every full collection of the host app would otherwise walk:
    a SpanContext (its TraceFlags, its TraceState) is a tracked object. ``get`` rebuilds an
    equal MessageRef, field for field what was stored.

    Most ids are their span's own traceparent (``remember(..., is_traceparent=True)``):
    such an entry keeps only the conversation id, a string the thread already holds, and
    ``get`` reads the span context back from the id. Nothing is allocated per message
    beyond the index's own slot, and evicting the oldest entry at capacity frees no
    long-cold objects besides the id (what the clock, not an instruction count, shows).
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: OrderedDict[str, _PackedRef | str] = OrderedDict()
        self._lock = threading.Lock()  # orders the writers; a lookup is one atomic dict get

    def put(self, message_id: str, ref: MessageRef) -> None:
        self.remember(message_id, ref.span_context, ref.conversation_id)

    def remember(self, message_id: str, span_context: SpanContext, conversation_id: str | None, is_traceparent: bool = False) -> None:
        """``put(message_id, MessageRef(span_context, conversation_id))``, without the
        MessageRef; ``is_traceparent``: ``message_id`` is ``format_message_id(span_context)``."""
        trace_id, span_id, is_remote, trace_flags, trace_state, is_valid = span_context
        packed: _PackedRef | str
        if is_traceparent and is_valid and not is_remote and trace_state is DEFAULT_TRACE_STATE and type(conversation_id) is str:
            packed = conversation_id  # the rest is in the id
        else:
            # the header of a trace state, not a nested tuple (which would stay tracked)
            state = "" if trace_state is DEFAULT_TRACE_STATE or not trace_state else trace_state.to_header()
            packed = (trace_id, span_id, is_remote, trace_flags + 0, state, is_valid, conversation_id)
        items = self._items
        with self._lock:
            if message_id in items:
                items.move_to_end(message_id)
            items[message_id] = packed  # a new key goes to the end by itself
            if len(items) > self._capacity:
                items.popitem(last=False)

    def get(self, message_id: str) -> MessageRef | None:
        packed = self._items.get(message_id)
        if packed is None:
            return None
        if isinstance(packed, str):  # "00-<trace id>-<span id>-<flags>", a local valid span's
            span_context = _new_tuple(
                SpanContext,
                (int(message_id[3:35], 16), int(message_id[36:52], 16), False, _TRACE_FLAGS[int(message_id[53:55], 16)], DEFAULT_TRACE_STATE, True),
            )
            return _new_tuple(MessageRef, (span_context, packed))  # type: ignore[no-any-return]
        trace_id, span_id, is_remote, flags, state, is_valid, conversation_id = packed
        trace_state = TraceState.from_header([state]) if state else DEFAULT_TRACE_STATE
        span_context = _new_tuple(SpanContext, (trace_id, span_id, is_remote, _TRACE_FLAGS[flags], trace_state, is_valid))
        return _new_tuple(MessageRef, (span_context, conversation_id))  # type: ignore[no-any-return]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


messages = MessageIndex(MAX_MESSAGES)


def resolve(message_id: object) -> MessageRef | None:
    """The span (and conversation, when known here) a message id points to."""
    if not isinstance(message_id, str):
        return None
    known = messages.get(message_id)
    if known is not None:
        return known
    span_context = parse_message_id(message_id)
    return None if span_context is None else MessageRef(span_context, None)


# --- the runtime ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Runtime:
    provider: TracerProvider
    tracer: Tracer
    settings: Settings
    policy: ContentPolicy
    owns_provider: bool
    # Set while ``provider`` is otel-lunary's own and may still hand its spans over to the
    # application's provider (see otel_lunary._adoption).
    holding: HoldingProcessor | None = None
    # Where feedback is mirrored as Phoenix annotations (otel_lunary.phoenix_feedback), if anywhere.
    annotations: PhoenixAnnotationSink | None = None
    # The tracer's id generator, able to give a span ids drawn in advance (ids.py); None
    # when the tracer is not the SDK's.
    ids: ForcedIdGenerator | None = None


def _forced_ids(tracer: Tracer) -> ForcedIdGenerator | None:
    """Let ``tracer`` (ours: ``get_tracer`` makes a new one per call) start spans with ids
    drawn in advance; the SDK's ``Tracer.id_generator`` is where it draws them."""
    current = getattr(tracer, "id_generator", None)
    if isinstance(current, ForcedIdGenerator):
        return current
    if not isinstance(current, IdGenerator):
        return None
    forced = ForcedIdGenerator(current)
    tracer.id_generator = forced  # type: ignore[attr-defined]  # the SDK Tracer's public attribute
    return forced


def new_runtime(
    provider: TracerProvider,
    settings: Settings,
    *,
    owns_provider: bool,
    holding: HoldingProcessor | None = None,
    annotations: PhoenixAnnotationSink | None = None,
) -> Runtime:
    """A runtime recording into ``provider`` with ``settings`` (the bridge makes one per project)."""
    tracer = provider.get_tracer(INSTRUMENTATION_NAME, __version__)
    # Lighter spans where nothing needs the SDK's: otel-lunary's own pipeline, or the
    # application's when its processors are the SDK's stock ones (export.light_spans).
    tracer = light_tracer(provider, tracer) or tracer
    return Runtime(provider, tracer, settings, ContentPolicy(settings), owns_provider, holding, annotations, _forced_ids(tracer))


def _annotation_sink(phoenix_annotations: str | bool | None, previous: Runtime | None) -> PhoenixAnnotationSink | None:
    """The sink ``phoenix_annotations`` (or the environment) asks for; the running one is kept
    when it already writes there, and stopped (bounded) when it does not."""
    from otel_lunary import phoenix_feedback

    endpoint = phoenix_feedback.resolve_endpoint(phoenix_annotations)  # ValueError on a bad explicit URL
    old = previous.annotations if previous is not None else None
    if old is not None and old.endpoint == endpoint:
        return old
    if old is not None:
        old.shutdown(timeout=2.0)
    return None if endpoint is None else phoenix_feedback.PhoenixAnnotationSink(endpoint)


# Re-entrant: get() holds it while configure() (which takes it too) sets up the first
# runtime, so two threads' first tracking calls cannot build two providers.
_lock = threading.RLock()
# The runtime for good. While it is None and ``provisional`` is set, otel-lunary records
# into its own provider until the application sets one; get() checks for that.
current: Runtime | None = None
provisional: Runtime | None = None
_stampers: weakref.WeakKeyDictionary[Any, ConversationStamper] = weakref.WeakKeyDictionary()


def _install_stamper(provider: TracerProvider, dialects: frozenset[str]) -> None:
    add = getattr(provider, "add_span_processor", None)
    if add is None:
        return  # not the SDK's provider: foreign spans go without the conversation id
    stamper = _stampers.get(provider)
    if stamper is None:
        stamper = ConversationStamper(dialects)
        _stampers[provider] = stamper
        add(stamper)
    stamper.dialects = dialects


def configure(
    *,
    tracer_provider: TracerProvider | None = None,
    exporter: str | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: dict[str, str] | None = None,
    file_path: str | None = None,
    service_name: str | None = None,
    capture_content: bool | None = None,
    redact: Redactor | None = None,
    max_content_length: int | None = None,
    dialects: str | Iterable[str] | None = None,
    turn_parent: str | None = None,
    turn_timeout: float | None = None,
    phoenix_annotations: str | bool | None = None,
    max_name_length: int | None = None,
    max_tags: int | None = None,
    max_metadata_length: int | None = None,
) -> TracerProvider:
    """Set up tracking; every argument left out resolves from ``OTEL_*`` env, then defaults.

    With ``tracer_provider`` given, spans go there. Otherwise the application's global
    provider is used if it has one and no export option is passed. Else otel-lunary builds
    its own (OTLP or the local file, see ``otel_lunary.export``), never installed as the
    global provider: with no export option, it is only used until the application sets
    its provider, and the first spans move there (``otel_lunary._adoption``).
    ``turn_parent`` (``OTEL_LUNARY_TURN_PARENT``): ``new_trace`` (each turn is its own trace,
    linked to the current span) or ``current_span`` (a turn nests under the current span,
    for apps where one request is one turn). ``turn_timeout`` (``OTEL_LUNARY_TURN_TIMEOUT``):
    how long a turn waits for its reply. ``phoenix_annotations`` (Phoenix's base URL, or
    ``OTEL_LUNARY_PHOENIX_ANNOTATIONS``) also mirrors feedback as Phoenix annotations.
    ``max_name_length``, ``max_tags`` and ``max_metadata_length`` bound what callers control
    besides content (``otel_lunary._bounds``). Raises ``ValueError`` on a wrong argument.
    """
    global current, provisional
    settings = resolve_settings(
        capture_content=capture_content,
        redact=redact,
        max_content_length=max_content_length,
        dialects=dialects,
        turn_parent=turn_parent,
        turn_timeout=turn_timeout,
    )
    limits = resolve_limits(max_name_length, max_tags, max_metadata_length)
    options = export.ExportOptions(
        exporter=exporter, endpoint=endpoint, protocol=protocol, headers=headers, file_path=file_path, service_name=service_name
    )
    wants_export = options != export.ExportOptions()  # any export option given
    with _lock:
        annotations = _annotation_sink(phoenix_annotations, recording())
        _bounds.set_limits(limits)
        if provisional is not None and provisional.holding is not None:
            provisional.holding.release()  # replaced: what it held goes to its own exporters
        provisional = None
        if tracer_provider is not None:
            _install_stamper(tracer_provider, settings.dialects)
            current = new_runtime(tracer_provider, settings, owns_provider=False, annotations=annotations)
            _logger.info("otel-lunary records to the TracerProvider given to configure() (%s)", describe(tracer_provider))
        elif not wants_export and (existing := application_provider()) is not None:
            _install_stamper(existing, settings.dialects)
            current = new_runtime(existing, settings, owns_provider=False, annotations=annotations)
            _logger.info("otel-lunary records to the application's TracerProvider (%s)", describe(existing))
        elif wants_export:
            provider = export.build_tracer_provider(options)
            _install_stamper(provider, settings.dialects)
            current = new_runtime(provider, settings, owns_provider=True, annotations=annotations)
            _logger.info("otel-lunary records to its own TracerProvider (exporting to %s), as configure() asked", _exporters(options))
        else:
            provider, holding = export.build_provisional_provider(options)
            _install_stamper(provider, settings.dialects)
            current = None
            provisional = new_runtime(provider, settings, owns_provider=True, holding=holding, annotations=annotations)
            _logger.info(
                "otel-lunary records to its own TracerProvider (exporting to %s) until the application sets one; it sets no global provider",
                _exporters(options),
            )
            return provider
        return current.provider


def _exporters(options: export.ExportOptions) -> str:
    return ", ".join(export.resolve_exporters(options)) or "nowhere"


def _adopt(provider: TracerProvider) -> None:
    """Move from otel-lunary's own provider to the application's, which it has just set."""
    global current, provisional
    waiting = provisional
    if waiting is None:
        return
    _install_stamper(provider, waiting.settings.dialects)
    current = new_runtime(provider, waiting.settings, owns_provider=False, annotations=waiting.annotations)
    provisional = None
    moved = waiting.holding.hand_over(provider) if waiting.holding is not None else 0
    _logger.info(
        "otel-lunary records to the application's TracerProvider (%s), set after the first tracking call; "
        "%d spans recorded before moved to it",
        describe(provider),
        moved,
    )


def get() -> Runtime:
    """The runtime, set up from the environment at the first tracking call if needed."""
    runtime = current
    if runtime is not None:
        return runtime
    waiting = provisional
    if waiting is not None and application_provider() is None:
        return waiting
    with _lock:
        if current is None:
            application = application_provider()
            if provisional is not None and application is not None:
                _adopt(application)
            elif provisional is None:
                configure()
        found = current if current is not None else provisional
        return found  # type: ignore[return-value]  # configure() always sets one of them


def recording() -> Runtime | None:
    """The runtime tracking calls use now, without setting one up."""
    return current if current is not None else provisional


def drop_scope() -> str:
    """Whose losses ``dropped_spans()`` can count: ``otel_lunary`` (its own provider records)
    or ``application`` (the application's provider records, its losses are not visible)."""
    runtime = recording()
    return "application" if runtime is not None and not runtime.owns_provider else "otel_lunary"


DEFAULT_TIMEOUT_S = 5.0


def call_timeout(value: object, what: str) -> float:
    """The seconds ``flush``/``shutdown`` wait: None is the default; a non-number (a str, a
    bool...) or NaN is reported and the default used; inf and negatives are reported and
    clamped to [0, ``MAX_TIMEOUT_S``]. A tracking call's argument never raises."""
    if value is None:
        return DEFAULT_TIMEOUT_S
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        report("invalid_arguments", "otel_lunary: %s(timeout=%r) needs a number of seconds; waiting %ss", what, value, DEFAULT_TIMEOUT_S, key=(what, "timeout"))
        return DEFAULT_TIMEOUT_S
    if 0 <= value <= MAX_TIMEOUT_S:
        return float(value)
    bounded = min(max(float(value), 0.0), MAX_TIMEOUT_S)
    report("invalid_arguments", "otel_lunary: %s(timeout=%r) is out of [0, %s]; waiting %ss", what, value, MAX_TIMEOUT_S, bounded, key=(what, "timeout"))
    return bounded


@never_raises("flush failed", default=False)
def flush(timeout: float | None = DEFAULT_TIMEOUT_S) -> bool:
    """End the turns still waiting for their reply, then export what is queued (spans, then
    Phoenix annotations), giving up after ``timeout`` seconds (None: 5; clamped to 0-300);
    True when all of it was exported."""
    seconds = call_timeout(timeout, "flush")
    _turns.registry.end_all(_turns.FLUSH)
    runtime = recording()
    if runtime is None:
        return True
    deadline = time.monotonic() + seconds
    done = True
    if hasattr(runtime.provider, "force_flush"):
        done = export.flush(runtime.provider, seconds)  # type: ignore[arg-type]
    if runtime.annotations is not None:
        done = runtime.annotations.flush(max(0.0, deadline - time.monotonic())) and done
    return done


@never_raises("shutdown failed")
def shutdown(timeout: float | None = DEFAULT_TIMEOUT_S) -> None:
    """End the waiting turns, flush and stop within ``timeout`` seconds (None: 5; clamped to
    0-300). A provider the application owns is flushed, not shut down."""
    global current, provisional
    seconds = call_timeout(timeout, "shutdown")
    _turns.registry.end_all(_turns.SHUTDOWN)
    runtime = recording()
    if runtime is None:
        return
    deadline = time.monotonic() + seconds
    try:
        if runtime.owns_provider:
            export.shutdown(runtime.provider, seconds)  # type: ignore[arg-type]
        else:
            flush(seconds)
        if runtime.annotations is not None:
            runtime.annotations.shutdown(max(0.0, deadline - time.monotonic()))
    finally:
        with _lock:
            current = None
            provisional = None
        messages.clear()
        _turns.registry.clear()
