"""Short human labels shared by the text renderers (terminal, Markdown, HTML, list)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from otel_lunary.replay.content import as_text
from otel_lunary.replay.model import CallRecord, FeedbackChange, ToolCall

THUMBS = {"up": "👍", "down": "👎"}

_K = TypeVar("_K")
_V = TypeVar("_V")


class Remembered(dict[_K, _V], Generic[_K, _V]):
    """``make(key)`` for keys that repeat by nature (roles, models, event names), made on
    the first ask and remembered: a renderer asks for the same handful on every message,
    and a hit is a C-level dict lookup. At most ``kept`` are held; past that all are
    forgotten at once, so keys that do not repeat cost memory only up to ``kept``."""

    __slots__ = ("_make", "_kept")

    def __init__(self, make: Callable[[_K], _V], kept: int = 4096) -> None:
        super().__init__()
        self._make = make
        self._kept = kept

    def __missing__(self, key: _K) -> _V:
        if len(self) >= self._kept:
            self.clear()
        value = self[key] = self._make(key)
        return value

# C0 and C1 control characters (and DEL) from chat content, ids, tags and names would
# drive the reader's terminal: window titles, clipboard writes (OSC 52), clear-screens,
# a carriage return that overwrites the line. They are shown as ``\xNN`` instead; tab and
# newline stay, the renderers lay out multi-line text themselves.
_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if chr(code) not in "\t\n"}


_CONTROL = re.compile("[" + "".join(map(chr, _CONTROLS)) + "]")


def terminal_safe(text: str) -> str:
    """``text`` with every control character but tab and newline made visible (``\x1b``).

    Almost no text has one, and ``str.translate`` with this table looks every character
    up in a dict (a tenth of a microsecond each, on every line a renderer writes); a
    search at C speed finds the rare text that needs it.
    """
    if text.isprintable() or _CONTROL.search(text) is None:
        return text
    return text.translate(_CONTROLS)
ROLE_ICONS = {"user": "👤", "assistant": "🤖", "system": "⚙️", "tool": "🔧"}


def feedback_label(key: str, value: Any) -> str:
    """``👍`` for thumbs, ``★ 4`` for a rating, ``💬 "text"`` for a comment, else ``key: value``."""
    if key == "thumb" and isinstance(value, str) and value in THUMBS:
        return THUMBS[value]
    if key == "rating":
        return f"★ {value}"
    if key == "comment":
        return f"💬 {as_text(value)!r}" if not isinstance(value, str) else f'💬 "{value}"'
    if key == "emoji":
        return str(value)
    return f"{key}: {as_text(value)}"


def feedback_labels(feedback: dict[str, Any]) -> list[str]:
    return [feedback_label(key, value) for key, value in feedback.items()]


def history_label(change: FeedbackChange) -> str:
    return f"{change.key} removed" if change.removed else f"{change.key}={as_text(change.value)}"


def tool_call_label(call: ToolCall) -> str:
    arguments = "" if call.arguments is None else as_text(call.arguments)
    return f"{call.name}({arguments})" + (f" [{call.id}]" if call.id else "")


def call_title(call: CallRecord) -> str:
    """``LLM gpt-4o-mini``, ``agent Forecaster``, ``tool get_weather``."""
    if call.kind == "llm":
        return f"LLM {call.model or call.name}"
    if call.kind == "agent":
        return f"agent {call.agent_name or call.name}"
    if call.kind == "tool":
        return f"tool {call.tool_name or call.name}"
    return call.name


def call_facts(call: CallRecord) -> list[str]:
    """Tokens, latency and error of a call, each a short phrase."""
    facts: list[str] = []
    if call.input_tokens is not None or call.output_tokens is not None:
        facts.append(f"{call.input_tokens or 0} → {call.output_tokens or 0} tokens")
    facts.append(f"{call.latency_ms:.0f} ms")
    if call.finish_reasons:
        facts.append("finish: " + ",".join(call.finish_reasons))
    if call.error:
        facts.append(f"error: {call.error}")
    return facts


def call_summary(call: CallRecord) -> str:
    return " · ".join([call_title(call), *call_facts(call)])


def shorten(text: str, width: int) -> str:
    """One line, at most ``width`` characters, with an ellipsis when cut."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: max(0, width - 1)] + "…"
