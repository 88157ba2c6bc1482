"""Recording before the application has set its TracerProvider, and moving to it when it does.

Tracking must never take over an application's tracing, and an application often sets
its provider after a first tracking call (a system message tracked at import, a call
made before the startup code ran). So otel-lunary never installs a global provider: until
the application sets one it records into a private provider of its own whose finished
spans are held back for a few seconds. When the application's provider appears, the
runtime moves to it and the held spans go to the application's processors (under the
application's resource, as if recorded there); when it does not, they go to
otel-lunary's own exporters, late by at most ``HOLD_S``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import ClassVar

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.environment_variables import OTEL_PYTHON_TRACER_PROVIDER
from opentelemetry.sdk.resources import SERVICE_NAME
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import TracerProvider

_logger = logging.getLogger("otel_lunary")

HOLD_S = 5.0
MAX_HELD = 2048  # the BatchSpanProcessor's default queue: beyond it, spans go out unheld


def _provider_env_key() -> Callable[[], bool]:
    """A check for ``OTEL_PYTHON_TRACER_PROVIDER in os.environ`` without its cost when the
    variable is absent (``os.environ`` answers a miss by raising and catching KeyError
    twice, ~1 us, which otel-lunary's own provider would pay on every tracking call):
    the same lookup in the environment's own dict, where CPython keeps it."""
    data = getattr(os.environ, "_data", None)
    try:
        key = os.environ.encodekey(OTEL_PYTHON_TRACER_PROVIDER)  # type: ignore[attr-defined]
    except AttributeError:  # pragma: no cover - not CPython's os._Environ
        data = None
    if not isinstance(data, dict):  # pragma: no cover
        return lambda: OTEL_PYTHON_TRACER_PROVIDER in os.environ
    return lambda: key in data


_provider_in_env = _provider_env_key()


def application_provider() -> TracerProvider | None:
    """The global provider the application (or ``opentelemetry-instrument``) set, if any."""
    if getattr(trace, "_TRACER_PROVIDER", trace) is None and not _provider_in_env():
        return None  # what get_tracer_provider() would say (its proxy), answered faster
    provider = trace.get_tracer_provider()
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    return provider


def describe(provider: TracerProvider) -> str:
    """``service.name=...`` of a provider, for the one log line saying which provider records."""
    resource = getattr(provider, "resource", None)
    name = resource.attributes.get(SERVICE_NAME) if resource is not None else None
    return f"service.name={name}" if name else type(provider).__name__


def _rehomed(span: ReadableSpan, provider: SdkTracerProvider) -> ReadableSpan:
    """The same span under ``provider``'s resource: what it would have been, recorded there."""
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=provider.resource,
        attributes=span.attributes,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def slim(span: ReadableSpan) -> None:
    """Lets a finished span waiting in a queue hold fewer objects the garbage collector
    tracks: its events and links, when it has none and dropped none, become ``()``; its
    attributes, when none was dropped, the plain dict inside the bounded map.

    An ended span's empty BoundedList (with its deque and its lock) is three tracked
    objects, the bounded map's wrapper and lock two, of the ~15 a message span holds;
    queued spans live long enough to reach the oldest generation, which every full
    collection of the host app walks. ``attributes``, ``events``, ``links`` and their
    ``dropped_*`` counts read the same afterwards (a plain container counts 0 dropped).
    A light span (``otel_lunary.export.light_spans``) says it has nothing of the kind.
    """
    if getattr(span, "fields_plain", False):
        return
    events = getattr(span, "_events", None)
    if type(events) is BoundedList and not events.dropped and not len(events):
        span._events = ()  # type: ignore[assignment]
    links = getattr(span, "_links", None)
    if type(links) is BoundedList and not links.dropped and not len(links):
        span._links = ()  # type: ignore[assignment]
    attributes = getattr(span, "_attributes", None)
    if type(attributes) is BoundedAttributes and not attributes.dropped:
        span._attributes = attributes._dict  # the same values, without the map's lock and wrapper


class HoldingProcessor(SpanProcessor):
    """In front of the processors of otel-lunary's own provider while no application
    provider exists: finished spans wait here (at most ``hold_s`` seconds, at most
    ``max_held`` spans) so that they can still go to the application's provider."""

    # Ended spans only, read as ReadableSpans (export.light_spans); what starts goes to
    # otel-lunary's batch processors, which do nothing then.
    light_spans: ClassVar[str] = "end"

    def __init__(self, processors: Sequence[SpanProcessor], hold_s: float = HOLD_S, max_held: int = MAX_HELD) -> None:
        self._processors = list(processors)
        self._max_held = max_held
        self._lock = threading.Lock()
        self._held: list[ReadableSpan] | None = []
        self._target: SpanProcessor | None = None  # the application's, once handed over
        self._target_provider: SdkTracerProvider | None = None
        self._timer = threading.Timer(hold_s, self.release)
        self._timer.daemon = True
        self._timer.name = "otel-lunary-hold"
        self._timer.start()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for processor in self._processors:
            processor.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        # Read without the lock first: once the hold is full or over it stays so (``_held``
        # only ever grows, then becomes None), and every span after the first ``max_held``
        # goes on at once, without the lock. ``hand_over`` sets the target before it takes
        # the held spans, so a span that finds them taken finds the target too.
        held = self._held
        if held is not None and len(held) < self._max_held:
            slim(span)  # held spans wait seconds: the oldest GC generation
            with self._lock:
                held = self._held
                if held is not None and len(held) < self._max_held:
                    held.append(span)
                    return
        target = provider = None
        if self._target is not None:
            with self._lock:  # the pair as hand_over set it
                target, provider = self._target, self._target_provider
        if target is not None and provider is not None:
            target.on_end(_rehomed(span, provider))  # started here, ended after the move
            return
        for processor in self._processors:
            processor.on_end(span)

    def _take(self) -> list[ReadableSpan]:
        with self._lock:
            held, self._held = self._held, None
        self._timer.cancel()
        return held or []

    def release(self) -> int:
        """Stop holding: the held spans go to otel-lunary's own exporters."""
        spans = self._take()
        for span in spans:
            for processor in self._processors:
                processor.on_end(span)
        return len(spans)

    def hand_over(self, provider: TracerProvider) -> int:
        """The held spans, and any span of this provider that ends from now on, go to
        ``provider``'s processors; how many were held. A provider that is not the SDK's
        cannot take finished spans: they go to otel-lunary's own exporters."""
        target = getattr(provider, "_active_span_processor", None)
        if not isinstance(provider, SdkTracerProvider) or target is None:
            self.release()
            return 0
        with self._lock:
            self._target, self._target_provider = target, provider
        spans = self._take()
        for span in spans:
            target.on_end(_rehomed(span, provider))
        return len(spans)

    def shutdown(self) -> None:
        self.release()
        for processor in self._processors:
            processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.release()
        return all(processor.force_flush(timeout_millis) for processor in self._processors)
