"""LLM call, agent and tool spans as ``CallRecord``.

Recognised by ``gen_ai.operation.name`` (the GenAI conventions), so calls recorded by
other instrumentations (OpenAI's own OTel package, an agent framework) replay too, and by
``openinference.span.kind`` (Arize's OpenInference instrumentations), whose model, tokens,
indexed messages and tool input/output are mapped to the same ``CallRecord``.
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
    INPUT_VALUE,
    LLM_INPUT_MESSAGES,
    LLM_MODEL_NAME,
    LLM_OUTPUT_MESSAGES,
    LLM_TOKEN_COUNT_COMPLETION,
    LLM_TOKEN_COUNT_PROMPT,
    LUNARY_METADATA,
    LUNARY_TAGS,
    MESSAGE_CONTENT,
    MESSAGE_ROLE,
    OPENINFERENCE_SPAN_KIND,
    OUTPUT_VALUE,
    TOOL_NAME,
    GenAiOperationNameValues,
    OpeninferenceSpanKindValues,
)
from otel_lunary.replay.content import json_object, load_json
from otel_lunary.replay.model import CallKind, CallRecord
from otel_lunary.replay.records import STATUS_ERROR, SpanAttributes, SpanRecord

_AGENT_OPERATIONS = {GenAiOperationNameValues.INVOKE_AGENT.value, "create_agent"}
_TOOL_OPERATIONS = {GenAiOperationNameValues.EXECUTE_TOOL.value}
_NOT_CALLS = {GenAiOperationNameValues.INVOKE_WORKFLOW.value}
# OpenInference span kinds replay shows as calls; RETRIEVER, EMBEDDING, EVALUATOR... are not.
_OPENINFERENCE_KINDS: dict[str, CallKind] = {
    OpeninferenceSpanKindValues.LLM.value: "llm",
    OpeninferenceSpanKindValues.TOOL.value: "tool",
    OpeninferenceSpanKindValues.AGENT.value: "agent",
    OpeninferenceSpanKindValues.CHAIN.value: "other",
}
_LIMIT_MESSAGES = 10_000  # indexed messages read per span: a bound, never reached by real prompts


def call_kind(span: SpanRecord) -> CallKind | None:
    """What kind of call a span is, or None when it is not a GenAI call (no operation, or a
    workflow: otel-lunary's turn span, whose question and answer are the turn's messages)."""
    operation = span.attributes.get(GEN_AI_OPERATION_NAME)
    if operation is None:  # maybe recorded by an OpenInference instrumentation
        foreign = span.attributes.get(OPENINFERENCE_SPAN_KIND)
        return _OPENINFERENCE_KINDS.get(foreign) if type(foreign) is str else None
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


def _indexed_messages(a: SpanAttributes, prefix: str) -> str | None:
    """OpenInference's flattened messages (``<prefix>.<i>.message.role`` / ``.content``) as
    GenAI messages JSON, the form replay keeps for every call; None when there are none."""
    messages = []
    for i in range(_LIMIT_MESSAGES):
        role = a.get(f"{prefix}.{i}.{MESSAGE_ROLE}")
        content = a.get(f"{prefix}.{i}.{MESSAGE_CONTENT}")
        if role is None and content is None:
            break
        parts = [] if content is None else [{"type": "text", "content": content if isinstance(content, str) else json.dumps(content)}]
        messages.append({"role": str(role) if role is not None else "unknown", "parts": parts})
    return json.dumps(messages) if messages else None


def _openinference_record(span: SpanRecord, kind: CallKind) -> CallRecord:
    """A call recorded by an OpenInference instrumentation, in replay's terms."""
    a = span.attributes
    model = a.get(LLM_MODEL_NAME)
    tool = kind == "tool"
    return CallRecord(
        kind=kind,
        name=span.name,
        span_id=span.span_id,
        trace_id=span.trace_id,
        start_ns=span.start_ns,
        end_ns=span.end_ns,
        model=str(model) if model else None,
        agent_name=span.name if kind == "agent" else None,
        tool_name=str(a.get(TOOL_NAME) or span.name) if tool else None,
        input_tokens=_int(a.get(LLM_TOKEN_COUNT_PROMPT)),
        output_tokens=_int(a.get(LLM_TOKEN_COUNT_COMPLETION)),
        error=(span.status_message or "error") if span.status_code == STATUS_ERROR else None,
        input_messages_json=_indexed_messages(a, LLM_INPUT_MESSAGES),
        output_messages_json=_indexed_messages(a, LLM_OUTPUT_MESSAGES),
        tool_arguments=load_json(a.get(INPUT_VALUE)) if tool else None,
        tool_result=load_json(a.get(OUTPUT_VALUE)) if tool else None,
        tags=_strings(a.get(LUNARY_TAGS)),
        metadata=json_object(a.get(LUNARY_METADATA)) if LUNARY_METADATA in a else {},
    )


def call_record(span: SpanRecord, kind: CallKind) -> CallRecord:
    """The parts of a GenAI (or OpenInference) span a replay shows."""
    a = span.attributes
    if GEN_AI_OPERATION_NAME not in a:
        return _openinference_record(span, kind)
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
