"""A span around the application's own work (an LLM call, an agent, a tool).

Shared by ``monitor`` and the agent/tool decorators so that sync, async and streaming
paths start, activate and finish spans the same way: recording problems are counted
and swallowed, the application's own exceptions pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from otel_lunary import _health, _index, _runtime
from otel_lunary._content import ContentPolicy
from otel_lunary._context_stack import ContextStack
from otel_lunary._conversation import current_conversation
from otel_lunary._spans import context_of, with_dialects
from otel_lunary.attributes import ERROR_TYPE, GEN_AI_CONVERSATION_ID
from otel_lunary.context import with_ambient_identity


class Operation:
    """One span of application work; every method is safe to call in any state."""

    __slots__ = ("span", "runtime", "policy", "_context", "_conversation", "_explicit", "_finished")

    def __init__(self, name: str, kind: SpanKind, attributes: dict[str, Any], parent_id: Any = None) -> None:
        """Start the span with ``attributes`` (which it takes over), plus the user and tags of
        enclosing ``identify``/``tags`` blocks, inside this boundary: their values are the app's."""
        self.span: Span | None = None
        self._finished = False
        self._explicit = False
        try:
            with_ambient_identity(attributes)
            self.runtime = _runtime.get()
            self.policy: ContentPolicy = self.runtime.policy.fresh()
            target = _index.resolve(parent_id) if parent_id is not None else None
            if parent_id is not None and target is None:
                _health.report("unknown_parent", "otel_lunary: parent=%r is not a message id this process can link to", parent_id)
            parent_context = context_of(target.span_context) if target is not None else None
            self._explicit = target is not None
            conversation = (target.conversation_id if target else None) or current_conversation.get()
            self._conversation = conversation
            if conversation is not None:
                attributes[GEN_AI_CONVERSATION_ID] = conversation
            self.span = self.runtime.tracer.start_span(
                name, context=parent_context, kind=kind, attributes=with_dialects(self.runtime, attributes)
            )
            self._context = trace.set_span_in_context(self.span, parent_context)
        except Exception:  # noqa: BLE001 - tracking never raises into the app
            _health.report("internal_errors", "otel_lunary: could not start span %s", name, exc_info=True)
            self.span = None

    @classmethod
    def unrecorded(cls) -> Operation:
        """An operation with no span: the work runs, nothing is recorded."""
        operation = cls.__new__(cls)
        operation.span = None
        operation._finished = True
        operation._explicit = False
        operation._conversation = None
        return operation

    @contextmanager
    def active(self) -> Iterator[None]:
        """Make the span current so work inside (HTTP calls, nested LLM calls) nests under it."""
        stack = ContextStack()
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
        try:
            self.span.set_attributes(with_dialects(self.runtime, attributes))
        except Exception:  # noqa: BLE001
            _health.report("internal_errors", "otel_lunary: could not record attributes", exc_info=True)

    def fail(self, error: BaseException) -> None:
        if self.span is None or self._finished:
            return
        try:
            self.span.set_attribute(ERROR_TYPE, type(error).__qualname__)
            self.span.set_status(Status(StatusCode.ERROR, str(error)[:1024]))
            self.span.record_exception(error)
        except Exception:  # noqa: BLE001
            _health.report("internal_errors", "otel_lunary: could not record an error", exc_info=True)
        self.finish()

    def finish(self) -> None:
        if self.span is None or self._finished:
            return
        self._finished = True
        try:
            self.span.end()
        except Exception:  # noqa: BLE001
            _health.report("internal_errors", "otel_lunary: could not end span", exc_info=True)
