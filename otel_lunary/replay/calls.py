"""LLM call, agent and tool spans as ``CallRecord``.

Recognised by ``gen_ai.operation.name`` (the GenAI conventions), so calls recorded by
other instrumentations (OpenAI's own OTel package, an agent framework) replay too.
"""

from __future__ import annotations

import json

from otel_lunary.attributes import (
    ERROR_TYPE,
    GEN_AI_AGENT_NAME,
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OPERATION_NAME,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_TOOL_CALL_ARGUMENTS,
    GEN_AI_TOOL_CALL_RESULT,
    GEN_AI_TOOL_NAME,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    LUNARY_METADATA,
    LUNARY_TAGS,
    GenAiOperationNameValues,
)
from otel_lunary.replay.content import json_object, load_json
from otel_lunary.replay.model import CallKind, CallRecord
from otel_lunary.replay.records import STATUS_ERROR, SpanRecord

_AGENT_OPERATIONS = {GenAiOperationNameValues.INVOKE_AGENT.value, "create_agent"}
_TOOL_OPERATIONS = {GenAiOperationNameValues.EXECUTE_TOOL.value}
_NOT_CALLS = {GenAiOperationNameValues.INVOKE_WORKFLOW.value}


def call_kind(span: SpanRecord) -> CallKind | None:
    """What kind of call a span is, or None when it is not a GenAI call (no operation, or a
    workflow: otel-lunary's turn span, whose question and answer are the turn's messages)."""
    operation = span.attributes.get(GEN_AI_OPERATION_NAME)
    if not isinstance(operation, str) or operation in _NOT_CALLS:
        return None
    if operation in _AGENT_OPERATIONS:
        return "agent"
    if operation in _TOOL_OPERATIONS:
        return "tool"
    return "llm"


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _strings(value: object) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [value] if isinstance(value, str) else []


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


def call_record(span: SpanRecord, kind: CallKind) -> CallRecord:
    """The parts of a GenAI span a replay shows."""
    a = span.attributes
    error = a.get(ERROR_TYPE)
    if span.status_code == STATUS_ERROR:
        error = ": ".join(str(p) for p in (error, span.status_message) if p) or "error"
    model = a.get(GEN_AI_RESPONSE_MODEL) or a.get(GEN_AI_REQUEST_MODEL)
    return CallRecord(
        kind=kind,
        name=span.name,
        span_id=span.span_id,
        trace_id=span.trace_id,
        start_ns=span.start_ns,
        end_ns=span.end_ns,
        operation=a.get(GEN_AI_OPERATION_NAME),
        model=str(model) if model else None,
        provider=a.get(GEN_AI_PROVIDER_NAME),
        agent_name=a.get(GEN_AI_AGENT_NAME),
        tool_name=a.get(GEN_AI_TOOL_NAME),
        input_tokens=_int(a.get(GEN_AI_USAGE_INPUT_TOKENS)),
        output_tokens=_int(a.get(GEN_AI_USAGE_OUTPUT_TOKENS)),
        finish_reasons=_strings(a.get(GEN_AI_RESPONSE_FINISH_REASONS)),
        error=str(error) if error else None,
        input_messages_json=_text(a.get(GEN_AI_INPUT_MESSAGES)),
        output_messages_json=_text(a.get(GEN_AI_OUTPUT_MESSAGES)),
        tool_arguments=load_json(a.get(GEN_AI_TOOL_CALL_ARGUMENTS)),
        tool_result=load_json(a.get(GEN_AI_TOOL_CALL_RESULT)),
        tags=_strings(a.get(LUNARY_TAGS)),
        metadata=json_object(a.get(LUNARY_METADATA)) if LUNARY_METADATA in a else {},
    )
