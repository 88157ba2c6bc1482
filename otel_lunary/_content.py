"""Message content as it may leave the process: captured or not, redacted, bounded.

Every piece of user or model text passes through one ``ContentPolicy`` before it becomes
an attribute, so the capture switch, the redaction hook and the size bound cannot be
forgotten by one code path; the recording layer (``_record``) marks a span whose policy
cut something. Lunary (OpenAI-style) messages become the GenAI conventions' structured
shape: ``role`` plus typed ``parts``; other application objects become JSON text,
without ever raising.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from otel_lunary import _health
from otel_lunary._settings import Settings
from otel_lunary.attributes import (
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_TOOL_CALL_ID,
    LUNARY_MESSAGE_CONTENT,
    LUNARY_MESSAGE_TOOL_CALL_ID,
    LunaryMessageRoleValues,
)

_ASSISTANT = LunaryMessageRoleValues.ASSISTANT.value

# --- JSON: OTel attributes cannot hold maps, so objects travel as JSON ----------------------
# Whatever the application hands us (sets, datetimes, its own classes, cycles) must turn
# into a string without raising; what JSON cannot represent becomes its ``repr``.

_encoder = json.JSONEncoder(ensure_ascii=False, default=repr, check_circular=True, separators=(",", ":"))
json_string = json.encoder.encode_basestring  # a str as JSON, exactly as ``_encoder`` writes it
# The C encoder that ``_encoder.encode`` builds on every call, built once: same output,
# without the per-call set-up (``encode`` -> ``iterencode`` -> a new encoder object, which
# costs as much as encoding a small dict). It keeps no cycle markers (a shared markers dict
# would be wrong across threads and after a failure): a cycle ends in RecursionError
# instead of ValueError, and both fall back to the repr below.
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_c_encode = None if _c_make_encoder is None else _c_make_encoder(None, repr, json_string, None, ":", ",", False, False, True)


def to_json(value: Any) -> str:
    try:
        if isinstance(value, str):
            return json_string(value)
        if _c_encode is None:  # pragma: no cover - interpreters without the C accelerator
            return _encoder.encode(value)
        return "".join(_c_encode(value, 0))
    except Exception:  # noqa: BLE001 - a cycle, or an application repr that raises anything
        # Fall back to something readable.
        try:
            return json.dumps(repr(value), ensure_ascii=False)
        except Exception:  # noqa: BLE001 - repr of user objects can raise anything
            return '"<unserialisable>"'


def to_string_list(value: Any) -> list[str]:
    """Tags as OTel wants them: a list of strings, from a list, tuple, set or one string."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [item if isinstance(item, str) else str(item) for item in value if item is not None]
    return [str(value)]


# --- which attribute holds a role's content -------------------------------------------------


def content_attributes(role: object) -> tuple[str, str]:
    """Where a message span keeps its content, then where versions before 0.2 kept it.

    The one rule shared by the writer and every reader. A message span keeps its content
    in ``lunary.message.content``: GenAI readers take ``gen_ai.input.messages`` /
    ``gen_ai.output.messages`` for a model call's prompt and completion (conventions/README.md,
    decision 2a). Before 0.2 what the assistant said was filed as model output
    (``gen_ai.output.messages``) and what users, systems and tools said as model input
    (``gen_ai.input.messages``); readers try that name second.
    """
    if role == _ASSISTANT:
        return LUNARY_MESSAGE_CONTENT, GEN_AI_OUTPUT_MESSAGES
    return LUNARY_MESSAGE_CONTENT, GEN_AI_INPUT_MESSAGES


def tool_call_id_attributes() -> tuple[str, str]:
    """Where a tool message's call id is, then where versions before 0.2 put it."""
    return LUNARY_MESSAGE_TOOL_CALL_ID, GEN_AI_TOOL_CALL_ID


def messages_text(messages_json: Any) -> str | None:
    """The text parts of GenAI messages JSON, one per line (tool responses included), or
    None when there is none: what a reader showing one text field (Phoenix's input and
    output, Langfuse's trace) needs of a message."""
    if not isinstance(messages_json, str) or not messages_json:
        return None
    try:
        messages = json.loads(messages_json)
    except ValueError:
        return messages_json
    texts: list[str] = []
    for message in messages if isinstance(messages, list) else [messages]:
        if not isinstance(message, dict):
            continue
        for part in message.get("parts") or ():
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "text" and isinstance(part.get("content"), str):
                texts.append(part["content"])
            elif kind == "tool_call_response":
                response = part.get("response")
                texts.append(response if isinstance(response, str) else json.dumps(response, default=repr))
    return "\n".join(texts) if texts else None


REDACTION_FAILED = "[redaction failed]"


class ContentPolicy:
    """Applies the content settings; ``truncated`` remembers whether anything was cut."""

    __slots__ = ("capture", "_redact", "_limit", "truncated", "untouched_up_to")

    def __init__(self, settings: Settings) -> None:
        self.capture = settings.capture_content
        self._redact = settings.redact
        self._limit = settings.max_content_length
        self.truncated = False
        # Text of at most this many characters leaves ``text`` unchanged (no hook to run,
        # nothing to cut), so a caller may skip the policy for it; -1 with a redaction hook.
        self.untouched_up_to = self._limit if self._redact is None else -1

    def fresh(self) -> ContentPolicy:
        """A policy with the same settings and a clean ``truncated`` flag, one per span."""
        clone = ContentPolicy.__new__(ContentPolicy)
        clone.capture, clone._redact, clone._limit, clone.truncated = self.capture, self._redact, self._limit, False
        clone.untouched_up_to = self.untouched_up_to
        return clone

    def text(self, value: Any) -> str:
        """User or model text, redacted then cut to the limit with a visible marker."""
        text = value if isinstance(value, str) else to_json(value)
        if self._redact is not None:
            try:
                redacted = self._redact(text)
                text = redacted if isinstance(redacted, str) else str(redacted)
            except Exception:  # noqa: BLE001 - a failing hook must not leak the raw text
                _health.report("redaction_failures", "otel_lunary: the redaction hook raised; content replaced")
                return REDACTION_FAILED
        return self.bound(text)

    def bound(self, text: str) -> str:
        if len(text) <= self._limit:
            return text
        self.truncated = True
        _health.count("content_truncated")
        return f"{text[: self._limit]}…[truncated {len(text) - self._limit} chars]"


def _content_parts(content: Any, policy: ContentPolicy) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": policy.text(content)}]
    if isinstance(content, list):
        parts: list[dict[str, Any]] = []
        for item in content:
            if isinstance(item, Mapping) and item.get("type") == "text":
                parts.append({"type": "text", "content": policy.text(item.get("text", ""))})
            elif isinstance(item, Mapping) and item.get("type") == "image_url":
                image = item.get("image_url")
                url = image.get("url") if isinstance(image, Mapping) else image
                parts.append({"type": "uri", "modality": "image", "uri": policy.text(url or "")})
            elif isinstance(item, str):
                parts.append({"type": "text", "content": policy.text(item)})
            else:
                kind = item.get("type") if isinstance(item, Mapping) else None
                parts.append({"type": kind if isinstance(kind, str) else "generic", "content": policy.text(item)})
        return parts
    return [{"type": "text", "content": policy.text(content)}]


def _arguments(raw: Any, policy: ContentPolicy) -> Any:
    """Tool-call arguments as a JSON value when they are valid JSON after redaction, else text."""
    if raw is None:
        return None
    text = policy.text(raw)
    try:
        return json.loads(text)
    except ValueError:
        return text


def tool_call_parts(tool_calls: Any, policy: ContentPolicy) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if not isinstance(tool_calls, list):
        return parts
    for call in tool_calls:
        if not isinstance(call, Mapping):
            continue
        found = call.get("function")
        function = found if isinstance(found, Mapping) else {}
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id"),
                "name": function.get("name") or call.get("name"),
                "arguments": _arguments(function.get("arguments", call.get("arguments")), policy),
            }
        )
    return parts


def message_parts(message: Mapping[str, Any], policy: ContentPolicy) -> list[dict[str, Any]]:
    """The GenAI ``parts`` of one Lunary/OpenAI-style message."""
    if message.get("role") == "tool":
        return [{"type": "tool_call_response", "id": message.get("tool_call_id"), "response": policy.text(message.get("content"))}]
    return _content_parts(message.get("content"), policy) + tool_call_parts(message.get("tool_calls"), policy)


def genai_message(message: Mapping[str, Any], policy: ContentPolicy) -> dict[str, Any]:
    """One message in the GenAI JSON schema. Input and output messages have the same shape:
    the output schema deprecates a message's ``finish_reason`` (an LLM span reports it in
    ``gen_ai.response.finish_reasons``), and a tracked message has none to report."""
    structured: dict[str, Any] = {"role": message.get("role"), "parts": message_parts(message, policy)}
    name = message.get("name")
    if isinstance(name, str):
        structured["name"] = name
    return structured


def genai_message_json(structured: dict[str, Any]) -> str:
    """``to_json([structured])`` for one message from ``genai_message``, character for character.

    The common message (role, text parts, maybe a name) is written
    directly, which costs a fraction of the generic encoder; any other shape goes through
    ``to_json``.
    """
    role = structured["role"]
    if not isinstance(role, str) or len(structured) > 3:
        return to_json([structured])
    chunks = ['[{"role":', json_string(role), ',"parts":[']
    for part in structured["parts"]:
        content = part.get("content")
        if len(part) != 2 or part.get("type") != "text" or not isinstance(content, str):
            return to_json([structured])
        chunks.append('{"type":"text","content":')
        chunks.append(json_string(content))
        chunks.append("},")
    if chunks[-1] == "},":
        chunks[-1] = "}"
    chunks.append("]")
    for key, value in structured.items():
        if key in ("role", "parts"):
            continue
        if key != "name" or not isinstance(value, str):
            return to_json([structured])
        chunks.append(f',"{key}":')
        chunks.append(json_string(value))
    chunks.append("}]")
    return "".join(chunks)


def text_message_json_ends(role: str) -> tuple[str, str]:
    """The JSON around the text of a text-only message: ``head + json_string(text) + tail``
    is ``text_message_json(role, text)``; a role's ends can be computed once."""
    head = '[{"role":' + json_string(role) + ',"parts":[{"type":"text","content":'
    return head, "}]}]"


def text_message_json(role: str, text: str) -> str:
    """``to_json([genai_message({"role": role, "content": text}, ...)])`` for a text-only
    message whose ``text`` already went through the policy: the same characters, built directly."""
    head, tail = text_message_json_ends(role)
    return head + json_string(text) + tail
