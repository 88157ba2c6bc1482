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


class CallMessages:
    """What a call dict holds under ``input_messages`` and ``output_messages`` (None: the
    key is left out): the parsed messages. The JSON output passes one that gives the lists'
    text, which it writes itself (``message_json.ThreadMessages``, ``item_json``)."""

    __slots__ = ()

    def input(self, call: CallRecord) -> Any:
        return call.input_messages

    def output(self, call: CallRecord) -> Any:
        return call.output_messages


PARSED = CallMessages()


def call_dict(call: CallRecord, messages: CallMessages = PARSED) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kind": call.kind,
        "name": call.name,
        "span_id": call.span_id,
        "trace_id": call.trace_id,
        "start": iso(call.start_ns),
        "latency_ms": round(max(0, call.end_ns - call.start_ns) / 1e6, 3),  # latency_ms, inline
    }
    # the optional fields, each when set, in this order (written out: one test each
    # instead of a dict of them all filtered; calls and messages are most of a thread)
    if call.operation is not None:
        data["operation"] = call.operation
    if call.model is not None:
        data["model"] = call.model
    if call.provider is not None:
        data["provider"] = call.provider
    if call.agent_name is not None:
        data["agent_name"] = call.agent_name
    if call.tool_name is not None:
        data["tool_name"] = call.tool_name
    if call.input_tokens is not None:
        data["input_tokens"] = call.input_tokens
    if call.output_tokens is not None:
        data["output_tokens"] = call.output_tokens
    if call.finish_reasons:
        data["finish_reasons"] = call.finish_reasons
    if call.error is not None:
        data["error"] = call.error
    input_messages = messages.input(call)
    if input_messages is not None:
        data["input_messages"] = input_messages
    output_messages = messages.output(call)
    if output_messages is not None:
        data["output_messages"] = output_messages
    if call.tool_arguments is not None:
        data["tool_arguments"] = call.tool_arguments
    if call.tool_result is not None:
        data["tool_result"] = call.tool_result
    if call.tags:
        data["tags"] = call.tags
    if call.metadata:
        data["metadata"] = call.metadata
    # an empty list without a comprehension (a function call each): most calls have no children
    children = call.children
    data["children"] = [call_dict(child, messages) for child in children] if children else []
    return data


def message_dict(message: Message, messages: CallMessages = PARSED) -> dict[str, Any]:
    content, tool_calls, tool_call_id = message.body()
    data: dict[str, Any] = {
        "type": "message",
        "id": message.id,
        "role": message.role,
        "time": iso(message.time_ns),
        "content": content,
        "trace_id": message.trace_id,
        "span_id": message.span_id,
    }
    if tool_calls:
        data["tool_calls"] = [tool_call_dict(c) for c in tool_calls]
    # the optional fields, each when set, in this order (see call_dict)
    # the slots, not the fields (but the parsed ones): most messages have none of these,
    # and reading a field makes its empty container
    user_props, tags, metadata = message._user_props, message._tags, message._metadata
    if tool_call_id is not None:
        data["tool_call_id"] = tool_call_id
    if message.user_id is not None:
        data["user_id"] = message.user_id
    if user_props:
        data["user_props"] = user_props
    if tags:
        data["tags"] = tags
    if metadata:
        data["metadata"] = metadata
    if message.is_retry:
        data["is_retry"] = message.is_retry
    if message.truncated:
        data["truncated"] = message.truncated
    feedback = message._feedback
    data["feedback"] = feedback if feedback is not None else {}
    # empty lists without a comprehension (a function call each): most messages have neither
    history, calls = message._feedback_history, message._calls
    data["feedback_history"] = [feedback_change_dict(c) for c in history] if history else []
    data["calls"] = [call_dict(c, messages) for c in calls] if calls else []
    return data


def event_dict(event: CustomEvent) -> dict[str, Any]:
    data: dict[str, Any] = {"type": "event", "name": event.name, "time": iso(event.time_ns)}
    if event.user_id:
        data["user_id"] = event.user_id
    if event.metadata:
        data["metadata"] = event.metadata
    return data


def conversation_head_dict(conversation: Conversation) -> dict[str, Any]:
    """A conversation's fields before its items (the JSON output writes the rest itself)."""
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
    }


def conversation_dict(conversation: Conversation, messages: CallMessages = PARSED) -> dict[str, Any]:
    """The JSON output object of one conversation (``messages``: see ``CallMessages``)."""
    data = conversation_head_dict(conversation)
    data["items"] = [message_dict(i, messages) if isinstance(i, Message) else event_dict(i) for i in conversation.items]
    data["unplaced_calls"] = [call_dict(c, messages) for c in conversation.unplaced_calls]
    return data
