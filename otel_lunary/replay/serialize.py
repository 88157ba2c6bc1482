"""Conversations as plain JSON-able dicts: the JSON output's schema.

One function per model type, so the JSON output, the tests and any script that wants
dicts share one shape.
"""

from __future__ import annotations

from typing import Any

from otel_lunary.replay.model import CallRecord, Conversation, CustomEvent, FeedbackChange, Message, ToolCall
from otel_lunary.replay.times import iso


def tool_call_dict(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "name": call.name, "arguments": call.arguments}


def feedback_change_dict(change: FeedbackChange) -> dict[str, Any]:
    return {"time": iso(change.time_ns), "key": change.key, "value": change.value, "removed": change.removed}


def call_dict(call: CallRecord) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kind": call.kind,
        "name": call.name,
        "span_id": call.span_id,
        "trace_id": call.trace_id,
        "start": iso(call.start_ns),
        "latency_ms": round(call.latency_ms, 3),
    }
    optional = {
        "operation": call.operation,
        "model": call.model,
        "provider": call.provider,
        "agent_name": call.agent_name,
        "tool_name": call.tool_name,
        "input_tokens": call.input_tokens,
        "output_tokens": call.output_tokens,
        "finish_reasons": call.finish_reasons or None,
        "error": call.error,
        "input_messages": call.input_messages,
        "output_messages": call.output_messages,
        "tool_arguments": call.tool_arguments,
        "tool_result": call.tool_result,
        "tags": call.tags or None,
        "metadata": call.metadata or None,
    }
    data.update({k: v for k, v in optional.items() if v is not None})
    data["children"] = [call_dict(child) for child in call.children]
    return data


def message_dict(message: Message) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "message",
        "id": message.id,
        "role": message.role,
        "time": iso(message.time_ns),
        "content": message.content,
        "trace_id": message.trace_id,
        "span_id": message.span_id,
    }
    if message.tool_calls:
        data["tool_calls"] = [tool_call_dict(c) for c in message.tool_calls]
    optional = {
        "tool_call_id": message.tool_call_id,
        "user_id": message.user_id,
        "user_props": message.user_props or None,
        "tags": message.tags or None,
        "metadata": message.metadata or None,
        "is_retry": message.is_retry or None,
        "truncated": message.truncated or None,
    }
    data.update({k: v for k, v in optional.items() if v is not None})
    data["feedback"] = message.feedback
    data["feedback_history"] = [feedback_change_dict(c) for c in message.feedback_history]
    data["calls"] = [call_dict(c) for c in message.calls]
    return data


def event_dict(event: CustomEvent) -> dict[str, Any]:
    data: dict[str, Any] = {"type": "event", "name": event.name, "time": iso(event.time_ns)}
    if event.user_id:
        data["user_id"] = event.user_id
    if event.metadata:
        data["metadata"] = event.metadata
    return data


def conversation_dict(conversation: Conversation) -> dict[str, Any]:
    """The JSON output object of one conversation."""
    return {
        "conversation_id": conversation.id,
        "start": iso(conversation.start_ns) if conversation.items else None,
        "end": iso(conversation.end_ns) if conversation.items else None,
        "users": conversation.users,
        "tags": conversation.all_tags,
        "thread_tags": conversation.tags,
        "metadata": conversation.metadata,
        "message_count": len(conversation.messages),
        "feedback_summary": dict(conversation.feedback_summary()),
        "items": [message_dict(i) if isinstance(i, Message) else event_dict(i) for i in conversation.items],
        "unplaced_calls": [call_dict(c) for c in conversation.unplaced_calls],
    }
