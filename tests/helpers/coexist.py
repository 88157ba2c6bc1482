"""Helpers for the tests of otel-lunary inside applications with their own OTel setup.

``SpanRecord`` is a span as received over OTLP (by ``servers.OtlpSink``), flattened to
what the assertions read; ``Spans`` adds the lookups (LLM spans, trace of a message id);
``Recipe`` is one runnable recipe of docs/integrations.md (files to write, the shell
block to run).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from helpers import REPO

from otel_lunary.attributes import GEN_AI_OPERATION_NAME, GenAiOperationNameValues

ROOT = REPO
INTEGRATIONS = REPO / "docs" / "integrations.md"
# OpenInference's span kind attribute: read from other instrumentations' spans only.
OPENINFERENCE_SPAN_KIND = "openinference.span.kind"
CHAT = GenAiOperationNameValues.CHAT.value


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(item) for item in any_value.array_value.values)
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind) if kind else None


@dataclass
class SpanRecord:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str
    links: list[tuple[str, str]] = field(default_factory=list)

    @property
    def is_llm(self) -> bool:
        """A span standing for one LLM call, in GenAI or OpenInference terms."""
        return self.attributes.get(GEN_AI_OPERATION_NAME) == CHAT or self.attributes.get(OPENINFERENCE_SPAN_KIND) == "LLM"


class Spans(list[SpanRecord]):
    """Spans received by a sink, with the lookups the tests need."""

    @classmethod
    def from_sink(cls, sink: Any) -> Spans:
        """Every span the sink received, parsed again from the request bodies (the sink
        keeps spans without their instrumentation scope)."""
        with sink._lock:
            bodies = list(sink.bodies)
        spans = cls()
        for body in bodies:
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            for resource_spans in request.resource_spans:
                resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        spans.append(
                            SpanRecord(
                                name=span.name,
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_id=span.parent_span_id.hex(),
                                attributes={kv.key: _value(kv.value) for kv in span.attributes},
                                resource=resource,
                                scope=scope_spans.scope.name,
                                links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                            )
                        )
        return spans

    def named(self, name: str) -> list[SpanRecord]:
        return [span for span in self if span.name == name]

    def llm(self) -> list[SpanRecord]:
        return [span for span in self if span.is_llm]

    def by_id(self, span_id: str) -> SpanRecord | None:
        return next((span for span in self if span.span_id == span_id), None)

    def in_trace(self, trace_id: str) -> list[SpanRecord]:
        return [span for span in self if span.trace_id == trace_id]

    def ancestors(self, span: SpanRecord) -> list[SpanRecord]:
        chain, parent = [], self.by_id(span.parent_id)
        while parent is not None:
            chain.append(parent)
            parent = self.by_id(parent.parent_id)
        return chain


def message_trace_and_span(message_id: str) -> tuple[str, str]:
    """The trace and span a generated message id (a W3C traceparent) points to."""
    _, trace_id, span_id, _ = message_id.split("-")
    return trace_id, span_id


@dataclass
class Recipe:
    name: str
    files: dict[str, str]
    script: str  # the shell block that runs it: export lines, then the command


_RECIPE = re.compile(r"<!-- recipe: ([\w-]+) -->")
_BLOCK = re.compile(r"```(\w+)([^\n]*)\n(.*?)```", re.S)


def recipes(path: Path = INTEGRATIONS) -> dict[str, Recipe]:
    """The recipes of docs/integrations.md: each ``<!-- recipe: name -->`` section's
    ``python file=...`` blocks and its shell block with ``export`` lines."""
    found: dict[str, Recipe] = {}
    for section in re.split(r"\n(?=## )", path.read_text()):
        marker = _RECIPE.search(section)
        if marker is None:
            continue
        files: dict[str, str] = {}
        script = ""
        for language, info, body in _BLOCK.findall(section):
            file_name = re.search(r"file=(\S+)", info)
            if language == "python" and file_name:
                files[file_name.group(1)] = body
            elif language == "sh" and re.search(r"^export ", body, re.M):
                script = body
        found[marker.group(1)] = Recipe(marker.group(1), files, script)
    return found
