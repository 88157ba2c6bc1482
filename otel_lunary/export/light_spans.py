"""Spans without the SDK's general machinery, for a pipeline otel-lunary owns end to end.

When every span processor of a TracerProvider is one of otel-lunary's own (the batch
processors and the holding processor ``otel_lunary.export`` builds, the conversation
stamper, the bridge's outbox writer), the SDK's span object is mostly cost: a lock per
span, ``BoundedAttributes`` re-validating values otel-lunary built itself, a sampler
call, a copy of the span into a ``ReadableSpan`` at ``end()``, a fan-out to processors
that do nothing at start. ``LightTracer`` starts ``LightSpan``\\ s instead: records with
the same fields (``LightSpan`` is a ``ReadableSpan``, so the encoders, the file and
OTLP exporters and the batch processor read it as they read the SDK's), handed at
``end()`` to the processors that act on ended spans, the span itself, no copy.

What stays the SDK's, so that nothing a user sees changes (tests/test_light_spans.py
exports the same conversation through both and compares the decoded OTLP):

- ids from the provider's id generator, in the same order; trace flags (sampled, and
  the W3C random-trace-id flag where the SDK sets it), trace state and parent as the
  SDK's default sampler (``ParentBased(ALWAYS_ON)``) gives them;
- the span limits of the provider (``OTEL_SPAN_*``/``OTEL_ATTRIBUTE_*``): counts applied
  the same way, oldest attribute evicted; a value that is not a plain ``str``, ``bool``,
  ``int``, ``float`` (or a tuple of ``str``), a key that is not a non-empty ``str``, a
  length limit, or more attributes than the limit: the SDK's own ``BoundedAttributes``
  takes the attributes over, so its cleaning and counting apply unchanged. Events and
  links always go through ``BoundedAttributes``/``BoundedList``, as in the SDK;
- the span API (``set_attribute(s)``, ``add_event``, ``add_link``, ``set_status``,
  ``record_exception``, ``update_name``, context manager, ``use_span``) with the SDK's
  rules and warnings for ended spans. A ``LightSpan`` is an ``opentelemetry.trace.Span``:
  spans of other providers started under it nest by its span context.

The SDK's tracer does the work instead (same provider, same ids) whenever its answer could
differ: a sampler other than the default (``OTEL_TRACES_SAMPLER``), a parent that is not
sampled, a disabled tracer, the SDK's internal metrics on, or any span processor on the
provider that is not marked as reading spans only as ``ReadableSpan``\\ s (a processor
the application adds to the provider later switches it over from then on).

Not the SDK's: no lock. A span is recorded by one thread at a time in otel-lunary; two
threads changing one span while a third ends it could, at worst, change its attributes
while the exporter reads them (that batch is then counted as failed).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from time import time_ns
from types import TracebackType
from typing import Any, ClassVar

from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context, get_current
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, Tracer, TracerProvider, sampling
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import _Span as _SdkRecordingSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.trace.span import DEFAULT_TRACE_STATE
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util import types

from otel_lunary.export._span_batch import ID_FIELD_CLASSES, UNSET_STATUS

__all__ = ["LightSpan", "LightTracer", "SPAN_USE", "light_tracer"]

# The SDK's logger and messages for calls on ended spans: an application's log filters apply as before.
_sdk_logger = logging.getLogger("opentelemetry.sdk.trace")

# How a span processor uses the spans it is given, declared by the processor's class as
# ``light_spans = "end"`` (only ended spans matter, read as ReadableSpans) or ``"start"``
# (only ``on_start`` acts, through the span API). Undeclared: the SDK's spans.
SPAN_USE = "light_spans"

_UNSET_STATUS = UNSET_STATUS  # the one the SDK's spans start with too
_PLAIN = frozenset((str, bool, int, float))
_PLAIN_OR_SEQUENCE = _PLAIN | {tuple, list}
_STR = frozenset((str,))
_TRACE_ID_MAX = 2**128 - 1
_SPAN_ID_MAX = 2**64 - 1
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_RANDOM_TRACE_ID = getattr(TraceFlags, "RANDOM_TRACE_ID", 0)
_SAMPLED_RANDOM = TraceFlags(TraceFlags.SAMPLED | _RANDOM_TRACE_ID)
# Whether this SDK's tracer sets the random-trace-id flag (1.45 does; older ones do not).
_start_code = getattr(Tracer.start_span, "__code__", None)
_SETS_RANDOM_FLAG = bool(_RANDOM_TRACE_ID) and _start_code is not None and "is_trace_id_random" in _start_code.co_names
_new_tuple = tuple.__new__
_sdk_record_exception = SdkSpan.record_exception
# Span classes whose get_span_context() is known: looked up by type, not the ABC's isinstance.
_SPAN_TYPES: set[type] = {NonRecordingSpan}


def _plain_copy(attributes: Mapping[str, Any], limit: int | None) -> dict[str, Any] | None:
    """``attributes`` as the SDK would keep them (a list of strings becomes a tuple), when it
    keeps all of them in order as given; None when its cleaning could do anything else."""
    if limit is not None and len(attributes) > limit:
        return None
    if not _STR.issuperset(map(type, attributes)) or "" in attributes:
        return None
    kinds = set(map(type, attributes.values()))
    copy = dict(attributes)
    if kinds <= _PLAIN:
        return copy
    if not kinds <= _PLAIN_OR_SEQUENCE:
        return None
    for key, value in copy.items():
        kind = type(value)
        if kind is tuple or kind is list:
            if not _STR.issuperset(map(type, value)):
                return None
            if kind is list:
                copy[key] = tuple(value)  # replacing a value: the dict's size is unchanged
    return copy


class _Route:
    """The processors of one provider as light spans use them, for one tuple of processors."""

    __slots__ = ("processors", "starters", "enders")

    def __init__(self, processors: tuple[SpanProcessor, ...], starters: tuple[SpanProcessor, ...], enders: tuple[SpanProcessor, ...]) -> None:
        self.processors = processors
        self.starters = starters
        self.enders = enders


# The SDK's own processors (exactly these classes, not subclasses, which may override
# ``on_start``/``on_end``): they do nothing at start and hand the ended span, as a
# ReadableSpan, to their exporter. So an application's standard pipeline
# (``BatchSpanProcessor(OTLPSpanExporter())``, what ``opentelemetry-instrument`` builds) gets
# light spans too; its exporter reads them as it reads the SDK's.
_STOCK_ENDERS = frozenset((BatchSpanProcessor, SimpleSpanProcessor))


def _route(processors: tuple[SpanProcessor, ...]) -> _Route | None:
    """The route through ``processors``, or None when one of them needs the SDK's spans."""
    starters, enders = [], []
    for processor in processors:
        use = "end" if type(processor) in _STOCK_ENDERS else getattr(type(processor), SPAN_USE, None)
        if use == "start":
            starters.append(processor)
        elif use == "end":
            enders.append(processor)
        else:
            return None
    return _Route(processors, tuple(starters), tuple(enders))


class LightTracer(trace_api.Tracer):
    """Starts ``LightSpan``\\ s for ``provider`` while its processors allow it, else is the SDK's tracer."""

    def __init__(self, provider: TracerProvider, sdk_tracer: Tracer) -> None:
        self._sdk = sdk_tracer
        self._multi = provider._active_span_processor
        self._limits = sdk_tracer._span_limits
        self._scope = sdk_tracer._instrumentation_scope
        self._info = sdk_tracer.instrumentation_info
        self._current: _Route | None = _route(self._multi._span_processors)

    # The SDK tracer's public attribute, where ``otel_lunary.ids`` puts its generator: both
    # tracers draw from the same one.
    @property
    def id_generator(self) -> Any:
        return self._sdk.id_generator

    @id_generator.setter
    def id_generator(self, value: Any) -> None:
        self._sdk.id_generator = value

    @property
    def resource(self) -> Any:
        return self._sdk.resource

    @property
    def lightweight(self) -> bool:
        """Whether spans started now are light ones (False: the SDK's)."""
        return self._route() is not None

    def _route(self) -> _Route | None:
        current = self._current
        processors = self._multi._span_processors
        if current is None or current.processors is not processors:
            current = self._current = _route(processors)
        return current

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace_api.Span:
        route = self._current
        if route is None or route.processors is not self._multi._span_processors:
            route = self._route()
            if route is None:
                return self._sdk.start_span(name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception)
        current: Any = (context if context is not None else get_current()).get(_SPAN_KEY)
        parent: Any = None
        if current is not None and (type(current) in _SPAN_TYPES or isinstance(current, trace_api.Span)):
            parent = current.get_span_context()
            if type(parent) is not SpanContext:  # None, or a subclass: as the SDK sees it
                return self._sdk.start_span(name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception)
        ids = self._sdk.id_generator
        # A SpanContext is the tuple (trace_id, span_id, is_remote, trace_flags, trace_state, is_valid).
        if parent is None or not parent[5]:
            parent = None
            trace_id = ids.generate_trace_id()
            trace_state = DEFAULT_TRACE_STATE
            flags = _SAMPLED_RANDOM if _SETS_RANDOM_FLAG and ids.is_trace_id_random() else _SAMPLED
        else:
            parent_flags = parent[3]
            if not parent_flags & TraceFlags.SAMPLED:
                # ParentBased drops it: the SDK's non-recording span (it draws the span id too)
                return self._sdk.start_span(name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception)
            trace_id = parent[0]
            trace_state = parent[4]
            if trace_state is None:
                trace_state = DEFAULT_TRACE_STATE
            flags = _SAMPLED_RANDOM if _SETS_RANDOM_FLAG and parent_flags & _RANDOM_TRACE_ID else _SAMPLED
        span_id = ids.generate_span_id()
        valid = 0 < trace_id <= _TRACE_ID_MAX and 0 < span_id <= _SPAN_ID_MAX
        span_context = _new_tuple(SpanContext, (trace_id, span_id, False, flags, trace_state, valid))
        span = LightSpan(self, route, name, span_context, parent, kind, attributes, links, start_time)
        if not record_exception or not set_status_on_exception:
            span._record_exception = record_exception
            span._set_status_on_exception = set_status_on_exception
        for starter in route.starters:
            starter.on_start(span, parent_context=context)  # type: ignore[arg-type]  # a Span by the API, as on_start uses it
        return span

    @contextmanager
    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace_api.Span]:
        span = self.start_span(name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception)
        with trace_api.use_span(
            span, end_on_exit=end_on_exit, record_exception=record_exception, set_status_on_exception=set_status_on_exception
        ) as current:
            yield current

    def _finish(self, span: LightSpan, route: _Route) -> None:
        processors = self._multi._span_processors
        if route.processors is not processors:
            found = self._route()
            if found is None:  # a processor that needs the SDK's spans came in meanwhile
                self._multi.on_end(span.readable())
                return
            route = found
        for processor in route.enders:
            processor.on_end(span)


class LightSpan(trace_api.Span, ReadableSpan):
    """A recording span as a plain record: the fields of a ReadableSpan, set in place."""

    __slots__ = (
        "_tracer",
        "_route_at_start",
        "_name",
        "_live_context",
        "_trace_id",
        "_span_id",
        "_flags",
        "_trace_state",
        "_parent",
        "_kind",
        "_attributes",
        "_events",
        "_links",
        "_status",
        "_start_time",
        "_end_time",
        "_resource",
        "_instrumentation_scope",
        "_instrumentation_info",
    )

    # Its events and links are () until it has some, its attributes a plain dict unless the
    # SDK's limits needed its BoundedAttributes: nothing for otel_lunary._adoption.slim to do.
    fields_plain: ClassVar[bool] = True

    # Rarely False (start_span(record_exception=False...)): then set on the instance.
    _record_exception: bool
    _set_status_on_exception: bool

    def __init__(
        self,
        tracer: LightTracer,
        route: _Route,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: types.Attributes,
        links: Sequence[Link] | None,
        start_time: int | None,
    ) -> None:
        self._tracer = tracer
        self._route_at_start = route
        self._name = name
        # The SpanContext while the span records; once it has ended, its ids only (see
        # ``_context``). ``context`` is (trace_id, span_id, is_remote, flags, state, valid).
        self._live_context: SpanContext | None = context
        self._trace_id, self._span_id, _, self._flags, self._trace_state, _ = context
        self._parent = parent
        self._kind = kind
        limits = tracer._limits
        plain: dict[str, Any] | None = {}
        if attributes:
            plain = _plain_copy(attributes, limits.max_span_attributes) if limits.max_span_attribute_length is None else None
        if plain is not None:
            self._attributes: Any = plain
        else:
            self._attributes = BoundedAttributes(limits.max_span_attributes, attributes, immutable=False, max_value_len=limits.max_span_attribute_length)
        self._events: Any = ()
        self._links: Any = _links(links, limits) if links else ()
        self._status = _UNSET_STATUS
        self._start_time = start_time if start_time is not None else time_ns()
        self._end_time: int | None = None
        self._resource = tracer._sdk.resource
        self._instrumentation_scope = tracer._scope
        self._instrumentation_info = tracer._info

    def readable(self) -> ReadableSpan:
        """The SDK's own ReadableSpan of this span, for processors that want nothing else."""
        return ReadableSpan(
            name=self._name,
            context=self._context,
            parent=self._parent,
            resource=self._resource,
            attributes=self._attributes,
            events=self._events,
            links=self._links,
            kind=self._kind,
            status=self._status,
            start_time=self._start_time,
            end_time=self._end_time,
            instrumentation_info=self._instrumentation_info,
            instrumentation_scope=self._instrumentation_scope,
        )

    def __repr__(self) -> str:
        return f'{type(self).__name__}(name="{self._name}", context={self._context})'

    # --- the span API ---------------------------------------------------------------------

    @property
    def _context(self) -> SpanContext:  # type: ignore[override]  # ReadableSpan's field, read by its properties
        """The span's SpanContext: the one it started with while it records; after ``end()``
        an equal one made on each read. An ended span waits in the batch queue until its
        batch is exported, and a SpanContext is one more object the garbage collector tracks
        (its TraceFlags and TraceState are tracked objects, so CPython never untracks it):
        a third of what queued chat spans made full collections walk."""
        live = self._live_context
        if live is not None:
            return live
        trace_id, span_id = self._trace_id, self._span_id
        valid = 0 < trace_id <= _TRACE_ID_MAX and 0 < span_id <= _SPAN_ID_MAX
        return _new_tuple(SpanContext, (trace_id, span_id, False, self._flags, self._trace_state, valid))  # type: ignore[no-any-return]

    def get_span_context(self) -> SpanContext:
        live = self._live_context
        return live if live is not None else self._context

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if self._end_time is not None:
            _sdk_logger.warning("Setting attribute on ended span.")
            return
        attributes = self._attributes
        if type(attributes) is dict and type(key) is str and key and type(value) in _PLAIN:
            if key in attributes:
                del attributes[key]  # the SDK moves a set key to the end
            elif self._tracer._limits.max_span_attributes is not None and len(attributes) >= self._tracer._limits.max_span_attributes:
                self._bounded()[key] = value
                return
            attributes[key] = value
            return
        self._bounded()[key] = value

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if self._end_time is not None:
            _sdk_logger.warning("Setting attribute on ended span.")
            return
        if not attributes:
            return
        own = self._attributes
        limit = self._tracer._limits.max_span_attributes
        plain = _plain_copy(attributes, None) if type(own) is dict and self._tracer._limits.max_span_attribute_length is None else None
        if plain is not None and (limit is None or len(own) + len(plain) <= limit):
            for key, value in plain.items():
                if key in own:
                    del own[key]
                own[key] = value
            return
        self._bounded()._set_items(attributes)

    def _bounded(self) -> BoundedAttributes:
        """The attributes as the SDK's map, from now on (values already clean: kept as they are)."""
        attributes = self._attributes
        if type(attributes) is not BoundedAttributes:
            limits = self._tracer._limits
            attributes = self._attributes = BoundedAttributes(
                limits.max_span_attributes, attributes, immutable=False, max_value_len=limits.max_span_attribute_length
            )
        return attributes  # type: ignore[no-any-return]

    def add_event(self, name: str, attributes: types.Attributes = None, timestamp: int | None = None) -> None:
        limits = self._tracer._limits
        bounded = BoundedAttributes(limits.max_event_attributes, attributes, max_value_len=limits.max_attribute_length, immutable=True)
        if self._end_time is not None:
            _sdk_logger.warning("Tried calling %s on an ended span.", "_add_event")
            return
        events = self._events
        if type(events) is not BoundedList:
            events = self._events = BoundedList(limits.max_events)
        events.append(Event(name=name, attributes=bounded, timestamp=timestamp))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if not _valid_link(context, attributes):
            return
        limits = self._tracer._limits
        bounded = BoundedAttributes(limits.max_link_attributes, attributes, max_value_len=limits.max_attribute_length, immutable=True)
        if self._end_time is not None:
            _sdk_logger.warning("Tried calling %s on an ended span.", "_add_link")
            return
        links = self._links
        if type(links) is not BoundedList:
            links = self._links = BoundedList(limits.max_links)
        links.append(Link(context=context, attributes=bounded))

    def update_name(self, name: str) -> None:
        if self._end_time is not None:
            _sdk_logger.warning("Tried calling %s on an ended span.", "update_name")
            return
        self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._end_time is not None:
            _sdk_logger.warning("Tried calling %s on an ended span.", "set_status")
            return
        # As the SDK: OK is final, UNSET is ignored, a description goes with ERROR only (Status says).
        if isinstance(status, Status):
            if self._status.status_code is StatusCode.OK or status.status_code is StatusCode.UNSET:
                return
            if description is not None:
                _sdk_logger.warning("Description %s ignored. Use either `Status` or `(StatusCode, Description)`", description)
            self._status = status
        elif isinstance(status, StatusCode):
            if self._status.status_code is StatusCode.OK or status is StatusCode.UNSET:
                return
            self._status = Status(status, description)

    def record_exception(
        self, exception: BaseException, attributes: types.Attributes = None, timestamp: int | None = None, escaped: bool = False
    ) -> None:
        # The SDK's own code: it only builds the event's attributes and calls self.add_event.
        _sdk_record_exception(self, exception, attributes, timestamp, escaped)  # type: ignore[arg-type]

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            _sdk_logger.warning("Calling end() on an ended span.")
            return
        self._end_time = end_time if end_time is not None else time_ns()
        self._live_context = None  # read from the ids from now on (``_context``)
        self._tracer._finish(self, self._route_at_start)

    def __exit__(self, exc_type: type[BaseException] | None, exc_val: BaseException | None, exc_tb: TracebackType | None) -> None:
        if exc_val is not None and self._end_time is None:
            if getattr(self, "_record_exception", True):
                self.record_exception(exception=exc_val, escaped=True)
            if getattr(self, "_set_status_on_exception", True):
                self.set_status(Status(status_code=StatusCode.ERROR, description=f"{type(exc_val).__name__}: {exc_val}"))
        self.end()


_SPAN_TYPES.update((LightSpan, _SdkRecordingSpan))
ID_FIELD_CLASSES.add(LightSpan)  # the encoders read its ids from its fields


def _valid_link(context: SpanContext, attributes: types.Attributes) -> bool:
    """The SDK's rule: a link needs a valid context, or at least attributes or a trace state."""
    return bool(context and (context.is_valid or (attributes or context.trace_state)))


def _links(links: Sequence[Link], limits: Any) -> Any:
    """The links a span starts with, as the SDK keeps them (its attributes bounded in place)."""
    valid = []
    for link in links:
        if link and _valid_link(link.context, link.attributes):
            link._attributes = BoundedAttributes(limits.max_link_attributes, link.attributes, max_value_len=limits.max_attribute_length, immutable=True)
            valid.append(link)
    return BoundedList.from_seq(limits.max_links, valid) if valid else ()


def light_tracer(provider: Any, tracer: Any) -> LightTracer | None:
    """A ``LightTracer`` in front of ``tracer`` (``provider``'s), when its spans would be the
    SDK's in every respect; None when the SDK's tracer must record (see the module docstring)."""
    if type(provider) is not TracerProvider or type(tracer) is not Tracer:
        return None
    if tracer.sampler is not sampling.DEFAULT_ON:
        return None
    enabled = getattr(tracer, "_is_enabled", None)
    if enabled is not None and not enabled():
        return None
    metrics = getattr(tracer, "_tracer_metrics", None)
    if metrics is not None and type(metrics).__name__ != "NoOpTracerMetrics":
        return None
    multi = getattr(provider, "_active_span_processor", None)
    if not isinstance(getattr(multi, "_span_processors", None), tuple) or not hasattr(tracer, "_span_limits"):
        return None  # pragma: no cover - another SDK's internals
    light = LightTracer(provider, tracer)
    return light if light.lightweight else None

