"""Backend dialects: extra copies of the canonical attributes for backends that need them.

The canonical data is always the GenAI / ``lunary.*`` attributes. A dialect adds the
attributes another backend reads (``conventions/model/dialects.yaml``):

- ``openinference`` (Arize Phoenix): ``session.id``, ``tag.tags``, ``metadata``,
  ``input.value``/``output.value`` with their mime types, ``openinference.span.kind``,
  ``llm.model_name``, ``llm.token_count.*``;
- ``langfuse``: ``langfuse.session.id``, ``langfuse.user.id``, ``langfuse.trace.tags``,
  ``langfuse.trace.metadata.<key>``, ``langfuse.observation.type`` for otel-lunary's own
  spans and ``langfuse.trace.name`` on the turn span.

The turn span's ``input.value`` / ``output.value`` are not a dialect's: the recording
layer always sets them (conventions/README.md, decision 2).

Dialects are off by default. ``configure(dialects=...)`` takes a name, a comma-separated
string or a list; else ``OTEL_LUNARY_DIALECTS`` (comma-separated) is read. An unknown name
passed to ``configure`` raises ``ValueError``; one in the environment logs a warning and
is ignored.

The core calls ``translate(dialects, attributes)`` on every attribute dict it sets on a
span and adds what it returns. Message spans must carry ``lunary.span.type`` in the same
dict for their content to map to text (otherwise it maps as LLM messages JSON).
``translate`` returns ``{}`` at once when no dialect is on, and never raises.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from otel_lunary import attributes as a
from otel_lunary._content import content_attributes, messages_text
from otel_lunary._health import never_raises
from otel_lunary._settings import DIALECTS, DIALECTS_ENV as ENV_DIALECTS, LANGFUSE, OPENINFERENCE, resolve_dialects

__all__ = ["DIALECTS", "ENV_DIALECTS", "LANGFUSE", "OPENINFERENCE", "resolve_dialects", "translate"]

MAX_LANGFUSE_METADATA_KEYS = 32

_TRANSLATION = never_raises("a dialect translation failed; its attributes are left out")
_TEXT = "text/plain"
_JSON = "application/json"
_Kind = a.OpeninferenceSpanKindValues
# Keyed by whatever value a span carries, so any attribute value can be looked up.
_Type = a.LunarySpanTypeValues
_KIND_BY_SPAN_TYPE: dict[object, str] = {
    _Type.TURN.value: _Kind.CHAIN.value,
    _Type.MESSAGE.value: _Kind.CHAIN.value,
    _Type.EVENT.value: _Kind.CHAIN.value,
    _Type.CHAIN.value: _Kind.CHAIN.value,
    _Type.FEEDBACK.value: _Kind.EVALUATOR.value,
}
_Observation = a.LangfuseObservationTypeValues
_OBSERVATION_BY_SPAN_TYPE: dict[object, str] = {
    _Type.TURN.value: _Observation.CHAIN.value,
    _Type.CHAIN.value: _Observation.CHAIN.value,
    _Type.MESSAGE.value: _Observation.EVENT.value,
    _Type.EVENT.value: _Observation.EVENT.value,
    _Type.FEEDBACK.value: _Observation.EVALUATOR.value,
}
_KIND_BY_OPERATION: dict[object, str] = {
    a.GenAiOperationNameValues.CHAT.value: _Kind.LLM.value,
    a.GenAiOperationNameValues.INVOKE_AGENT.value: _Kind.AGENT.value,
    a.GenAiOperationNameValues.EXECUTE_TOOL.value: _Kind.TOOL.value,
}
_MESSAGE = _Type.MESSAGE.value
_TURN = _Type.TURN.value
_ASSISTANT = a.LunaryMessageRoleValues.ASSISTANT.value


def translate(dialects: frozenset[str], attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The extra attributes ``dialects`` derive from ``attributes`` (never raises)."""
    if not dialects:
        return {}
    out: dict[str, Any] = {}
    with _TRANSLATION:  # dialects are a convenience: a failure keeps what was made so far
        if OPENINFERENCE in dialects:
            _openinference(attributes, out)
        if LANGFUSE in dialects:
            _langfuse(attributes, out)
    return out


def _openinference(attrs: Mapping[str, Any], out: dict[str, Any]) -> None:
    get = attrs.get
    conversation = get(a.GEN_AI_CONVERSATION_ID)
    if conversation is not None:
        out[a.SESSION_ID] = conversation
    tags = _tags(attrs)
    if tags:
        out[a.TAG_TAGS] = tags
    metadata = _metadata_json(attrs)
    if metadata is not None:
        out[a.METADATA] = metadata
    span_type = get(a.LUNARY_SPAN_TYPE)
    operation = get(a.GEN_AI_OPERATION_NAME)
    kind = _KIND_BY_SPAN_TYPE.get(span_type) if span_type is not None else _KIND_BY_OPERATION.get(operation)
    if kind is not None:
        out[a.OPENINFERENCE_SPAN_KIND] = kind
    inputs = get(a.GEN_AI_INPUT_MESSAGES)
    outputs = get(a.GEN_AI_OUTPUT_MESSAGES)
    if span_type == _MESSAGE:
        role = get(a.LUNARY_MESSAGE_ROLE)
        key, legacy = content_attributes(role)
        text = messages_text(get(key, get(legacy)))
        if role == _ASSISTANT:
            _set_value(out, a.OUTPUT_VALUE, a.OUTPUT_MIME_TYPE, text, _TEXT)
        else:
            _set_value(out, a.INPUT_VALUE, a.INPUT_MIME_TYPE, text, _TEXT)
    elif span_type is None:
        # tool spans: arguments and result (possibly set without the operation name)
        inputs = get(a.GEN_AI_TOOL_CALL_ARGUMENTS, inputs)
        outputs = get(a.GEN_AI_TOOL_CALL_RESULT, outputs)
        _set_value(out, a.INPUT_VALUE, a.INPUT_MIME_TYPE, inputs, _JSON)
        _set_value(out, a.OUTPUT_VALUE, a.OUTPUT_MIME_TYPE, outputs, _JSON)
    model = get(a.GEN_AI_RESPONSE_MODEL) or get(a.GEN_AI_REQUEST_MODEL)
    if model is not None:
        out[a.LLM_MODEL_NAME] = model
    prompt = get(a.GEN_AI_USAGE_INPUT_TOKENS)
    completion = get(a.GEN_AI_USAGE_OUTPUT_TOKENS)
    if prompt is not None:
        out[a.LLM_TOKEN_COUNT_PROMPT] = prompt
    if completion is not None:
        out[a.LLM_TOKEN_COUNT_COMPLETION] = completion
    if isinstance(prompt, int) and isinstance(completion, int):
        out[a.LLM_TOKEN_COUNT_TOTAL] = prompt + completion


def _langfuse(attrs: Mapping[str, Any], out: dict[str, Any]) -> None:
    conversation = attrs.get(a.GEN_AI_CONVERSATION_ID)
    if conversation is not None:
        out[a.LANGFUSE_SESSION_ID] = conversation
    user = attrs.get(a.USER_ID)
    if user is not None:
        out[a.LANGFUSE_USER_ID] = user
    tags = out.get(a.TAG_TAGS) or _tags(attrs)
    if tags:
        out[a.LANGFUSE_TRACE_TAGS] = tags
    span_type = attrs.get(a.LUNARY_SPAN_TYPE)
    observation = _OBSERVATION_BY_SPAN_TYPE.get(span_type) if span_type is not None else None
    if observation is not None:
        out[a.LANGFUSE_OBSERVATION_TYPE] = observation
    if span_type == _TURN and a.GEN_AI_WORKFLOW_NAME in attrs:
        out[a.LANGFUSE_TRACE_NAME] = attrs[a.GEN_AI_WORKFLOW_NAME]
    metadata = _metadata_dict(attrs)
    for key, value in list(metadata.items())[:MAX_LANGFUSE_METADATA_KEYS]:
        out[f"{a.LANGFUSE_TRACE_METADATA}.{key}"] = value if isinstance(value, str) else json.dumps(value, default=repr)


def _set_value(out: dict[str, Any], key: str, mime_key: str, value: Any, mime: str) -> None:
    if isinstance(value, str) and value:
        out[key] = value
        out[mime_key] = mime


def _tags(attrs: Mapping[str, Any]) -> list[str] | None:
    thread_tags = attrs.get(a.LUNARY_THREAD_TAGS)
    own_tags = attrs.get(a.LUNARY_TAGS)
    if not thread_tags:
        return list(own_tags) if own_tags else None
    if not own_tags:
        return list(thread_tags)
    return list(dict.fromkeys([*thread_tags, *own_tags]))


def _metadata_json(attrs: Mapping[str, Any]) -> str | None:
    thread_meta = attrs.get(a.LUNARY_THREAD_METADATA)
    own_meta = attrs.get(a.LUNARY_METADATA)
    if thread_meta is None or own_meta is None:
        return own_meta if own_meta is not None else thread_meta
    return json.dumps(_metadata_dict(attrs), ensure_ascii=False, default=repr)


def _metadata_dict(attrs: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for key in (a.LUNARY_THREAD_METADATA, a.LUNARY_METADATA):
        raw = attrs.get(key)
        if isinstance(raw, str):
            try:
                parsed = json.loads(raw)
            except ValueError:
                continue
            if isinstance(parsed, dict):
                merged.update(parsed)
    return merged
