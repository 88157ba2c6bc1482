"""Bridge helpers: a real bridge on 127.0.0.1 with an
in-memory exporter per project, and the structural view of a set of spans (trace trees
of span names and attribute keys) used to compare the bridge with the native SDK.
Polling goes through ``helpers.servers.poll_until``."""

from __future__ import annotations

import yaml
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_lunary._settings import resolve_settings
from otel_lunary.attributes import (
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    LUNARY_RUN_ID,
    SERVER_ADDRESS,
    SERVER_PORT,
)
from otel_lunary.bridge import Bridge, resolve_config

from helpers import REPO

CLIENTS = REPO / "tests" / "lunary_clients"
APP_KEY = "test-app-key"

# What the Lunary wire does not carry (the SDKs send the model name, not the response's
# id/model/finish reasons or the server address), so bridge LLM spans lack it.
# The Lunary SDKs send no time of first chunk either: only a stream wrapped in-process has it.
NOT_ON_THE_WIRE = frozenset(
    {SERVER_ADDRESS, SERVER_PORT, GEN_AI_RESPONSE_MODEL, GEN_AI_RESPONSE_ID, GEN_AI_RESPONSE_FINISH_REASONS, GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK}
)
# What only the bridge knows: the Lunary run id of a run span.
BRIDGE_ONLY = frozenset({LUNARY_RUN_ID})


class RunningBridge:
    """A Bridge serving on 127.0.0.1:<free port>, its spans captured in memory."""

    def __init__(
        self, state_path: Path, keys: str = f"{APP_KEY}=demo", capture_content: bool = True, turn_timeout: float | None = None, **options: Any
    ) -> None:
        self.exporter = InMemorySpanExporter()
        config = resolve_config(keys=keys, port=0, state_path=str(state_path), **options)
        settings = resolve_settings(capture_content=capture_content, turn_timeout=turn_timeout)
        self.bridge = Bridge(config, [self.exporter], settings=settings).start()
        self.url = self.bridge.url

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def close(self) -> None:
        self.bridge.close()


def llm_span(span: ReadableSpan) -> bool:
    return span.name.startswith("chat ")


def comparable_keys(span: ReadableSpan) -> tuple[str, ...]:
    """The span's attribute keys, minus what one side cannot have (see the two sets above)."""
    keys = set(span.attributes or {}) - BRIDGE_ONLY
    if llm_span(span):
        keys -= NOT_ON_THE_WIRE
    return tuple(sorted(keys))


def shape(spans: Iterable[ReadableSpan]) -> list[Any]:
    """Every trace as a tree of (span name, attribute keys, children), order-free."""
    spans = list(spans)
    by_id = {span.context.span_id: span for span in spans}
    children: dict[int, list[ReadableSpan]] = defaultdict(list)
    roots = []
    for span in spans:
        if span.parent is not None and span.parent.span_id in by_id:
            assert by_id[span.parent.span_id].context.trace_id == span.context.trace_id
            children[span.parent.span_id].append(span)
        else:
            roots.append(span)

    def node(span: ReadableSpan) -> tuple[Any, ...]:
        return (span.name, comparable_keys(span), tuple(sorted(node(child) for child in children[span.context.span_id])))

    return sorted(node(root) for root in roots)


def keys_by_name(spans: Iterable[ReadableSpan]) -> dict[str, set[str]]:
    union: dict[str, set[str]] = defaultdict(set)
    for span in spans:
        union[span.name].update(comparable_keys(span))
    return union


_SPAN_GROUPS = {
    "invoke_workflow ": "span.gen_ai.invoke_workflow.internal",
    "message ": "span.lunary.message",
    "event ": "span.lunary.event",
    "feedback": "span.lunary.feedback",
    "chat ": "span.gen_ai.inference.client",
    "invoke_agent ": "span.gen_ai.invoke_agent.internal",
    "execute_tool ": "span.gen_ai.execute_tool.internal",
    "chain ": "span.lunary.chain",
}


def convention_problems(span: ReadableSpan) -> list[str]:
    """What in ``span`` its span definition in conventions/model/spans.yaml does not allow or lacks."""
    groups = {group["id"]: group for group in yaml.safe_load((REPO / "conventions" / "model" / "spans.yaml").read_text())["groups"]}
    group_id = next((gid for prefix, gid in _SPAN_GROUPS.items() if span.name.startswith(prefix)), None)
    if group_id is None:
        return [f"{span.name}: no span definition"]
    refs = groups[group_id]["attributes"]
    allowed = {ref["ref"] for ref in refs}
    required = {ref["ref"] for ref in refs if ref.get("requirement_level") == "required"}
    keys = set(span.attributes or {})
    return [f"{span.name}: {key} not in {group_id}" for key in sorted(keys - allowed)] + [
        f"{span.name}: required {key} missing" for key in sorted(required - keys)
    ]
