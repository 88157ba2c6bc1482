"""Reading message content back out of the GenAI ``gen_ai.*.messages`` JSON attributes.

The SDK stores each message in the upstream schema (``role`` + typed ``parts``); replay
turns the parts back into what a chat shows: text, tool calls, a tool call's answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

from otel_lunary.replay.jsonparse import loads_text


def load_json(value: Any, default: Any = None) -> Any:
    """A JSON attribute decoded; a value that is not JSON text is returned as it is."""
    if not isinstance(value, str):
        return default if value is None else value
    try:
        return loads_text(value)
    except (ValueError, RecursionError):  # not JSON, or nested too deeply to read: kept as text
        return value


def json_object(value: Any) -> dict[str, Any]:
    """A JSON-object attribute (metadata, user props) as a dict; anything else kept under ``value``."""
    loaded = load_json(value, {})
    if isinstance(loaded, dict):
        return loaded
    return {"value": loaded}


def chunk_encoder(default: Callable[[Any], Any] = str) -> Callable[[Any], list[str]]:
    """The chunks of ``json.dumps(value, ensure_ascii=False, default=default)`` (its default
    separators are ``", "`` and ``": "``), with the C encoder made once. One place for
    these options: the JSON output (``item_json``) puts texts made by ``json_chunks`` and
    by other encoders into one line, exact only while all write alike.

    ``json.dumps`` with options makes an encoder per call, more than encoding a tool's
    arguments costs (renderers show a few values a message: arguments, results, event
    metadata). Without the circular-value check, which costs a dict insert and delete per
    container encoded (a tenth of encoding a JSON output thread): a value that contains
    itself raises ``RecursionError`` instead of ``ValueError`` (``as_text`` shows both the
    same way; nothing replay builds contains itself), and no state is shared between threads.
    """
    if c_make_encoder is None:  # no C accelerator (another interpreter)
        encoder = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "), default=default, check_circular=False)
        return lambda value: list(encoder.iterencode(value))
    iterencode = c_make_encoder(None, default, encode_basestring, None, ": ", ", ", False, False, True)
    if type(iterencode(None, 0)) is list:  # CPython before 3.12: the pieces, as a list
        return lambda value: iterencode(value, 0)  # type: ignore[no-any-return]
    # 3.12 and later write one string and return it in a tuple: a list for the callers
    # that append what follows (a tuple has no ``append``)
    return lambda value: list(iterencode(value, 0))


json_chunks = chunk_encoder()
"""``json.dumps(value, ensure_ascii=False, default=str)`` as a list of pieces (one on
CPython 3.12 and later): join them (``"".join``), with whatever should follow appended first."""


def as_text(value: Any) -> str:
    """Text for display: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    try:
        return "".join(json_chunks(value))
    except (ValueError, RecursionError):
        return "[value nested too deeply to show]"


def part_text(part: dict[str, Any]) -> str | None:
    """Displayable text of one non-tool part, or None when it has none."""
    kind = part.get("type")
    if kind == "text":
        return as_text(part.get("content", ""))
    if kind == "uri":
        return f"[{part.get('modality') or 'file'}: {part.get('uri')}]"
    if kind == "blob":
        return f"[{part.get('modality') or 'file'} ({part.get('mime_type') or 'binary'})]"
    if "content" in part:
        return as_text(part["content"])
    return None


def genai_messages(value: Any) -> list[dict[str, Any]]:
    """A ``gen_ai.*.messages`` attribute as a list of message dicts ([] if absent or odd)."""
    loaded = load_json(value, [])
    if isinstance(loaded, dict):
        loaded = [loaded]
    return [m for m in loaded if isinstance(m, dict)] if isinstance(loaded, list) else []


def _parts(message: dict[str, Any]) -> list[Any]:
    parts = message.get("parts")
    return parts if isinstance(parts, list) else []


def genai_message_text(message: dict[str, Any]) -> str:
    """All displayable text of one GenAI message, tool calls written as ``name(args)``."""
    pieces: list[str] = []
    for part in _parts(message):
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":  # what part_text does for it, inline: most parts are text
            content = part.get("content", "")
            pieces.append(content if type(content) is str else as_text(content))
        elif kind == "tool_call":
            pieces.append(f"{part.get('name')}({as_text(part.get('arguments'))})")
        elif kind == "tool_call_response":
            pieces.append(as_text(part.get("response")))
        else:
            text = part_text(part)
            if text is not None:
                pieces.append(text)
    return "\n".join(pieces)


def parse_content(raw: Any, tool_call_id: Any) -> tuple[str | None, list[tuple[Any, Any, Any]], str | None]:
    """A message span's content, tool calls (``(id, name, arguments)``) and tool call id.

    ``raw`` is the span's ``gen_ai.*.messages`` value (the attribute
    ``_content.content_attributes`` names for its role), ``tool_call_id`` its
    ``gen_ai.tool.call.id``. Content is None (not "") when it was not captured, so
    renderers can say so.
    """
    texts: list[str] = []
    tool_calls: list[tuple[Any, Any, Any]] = []
    for message in genai_messages(raw):
        for part in _parts(message):
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "text":  # what part_text does for it, inline: most parts are text
                content = part.get("content", "")
                texts.append(content if type(content) is str else as_text(content))
            elif kind == "tool_call":
                tool_calls.append((part.get("id"), part.get("name"), part.get("arguments")))
            elif kind == "tool_call_response":
                texts.append(as_text(part.get("response")))
                tool_call_id = tool_call_id or part.get("id")
            else:
                text = part_text(part)
                if text is not None:
                    texts.append(text)
    content = "\n".join(texts) if texts or raw is not None else None
    if content == "" and tool_calls:
        content = None
    return content, tool_calls, tool_call_id if isinstance(tool_call_id, str) else None
