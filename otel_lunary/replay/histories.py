"""LLM calls' message histories read for a renderer, each message parsed and written once.

A chat model is sent the whole conversation on every call, so a call's
``gen_ai.input.messages`` is usually the previous call's plus the messages since. The
renderers that show histories in full (Markdown, HTML) would parse every message again
for each later call of the thread and write it out again. ``Histories`` parses only the
part of a history after the previous one when the text starts with it, shares the
message dicts the two have in common, and remembers what the renderer made of each one.
The terminal, which shows a history's last message, uses it for the parsing alone.

The dicts are the renderer's alone: ``CallRecord.input_messages`` still parses fresh
ones, which its callers may change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from otel_lunary.replay.jsonparse import loads_text
from otel_lunary.replay.model import NOT_JSON, CallRecord, messages_from

Made = Callable[[dict[str, Any]], str]


def continuation(head: str | None, text: str) -> str | None:
    """What follows ``head + ","`` in ``text`` (None when ``text`` does not start so).

    ``head`` is the previous history's text without its closing ``]``; then ``text`` is
    the array of the previous items followed by those of ``"[" + rest``, provided
    ``"[" + rest`` parses to an array holding at least one item (``"[]"`` parses, but
    ``head + ",]"`` is no JSON): the caller checks that on what it parses."""
    if head is not None and len(text) > len(head) and text[len(head)] == "," and text.startswith(head):
        return text[len(head) + 1 :]
    return None


class Histories:
    """Input histories of one thread's calls, in the order a renderer reads them (make
    one per thread: what it remembers lives as long as it)."""

    __slots__ = ("_head", "_loaded", "_made")

    def __init__(self) -> None:
        self._head: str | None = None  # the last history's text without its closing "]"
        self._loaded: list[Any] = []  # ...and its items
        self._made: dict[int, tuple[dict[str, Any], str]] = {}

    def _load(self, text: str) -> Any:
        """``loads_text(text)``; a list extending the previous one reuses its items.

        ``head + "," + rest`` is an array holding the previous items then those of
        ``"[" + rest``: the previous items end where its closing bracket was. Only when
        ``rest`` holds an item: ``"[" + "]"`` is an empty array, ``head + ",]"`` no JSON.
        """
        loaded: Any = None
        rest = continuation(self._head, text)
        if rest is not None:
            try:
                tail = loads_text("[" + rest)
            except (ValueError, RecursionError):  # the whole text raises the same below
                tail = None
            if type(tail) is list and tail:
                loaded = self._loaded + tail
        if loaded is None:
            loaded = loads_text(text)
        if type(loaded) is list and loaded and text.endswith("]"):
            self._head, self._loaded = text[:-1], loaded
        else:
            self._head, self._loaded = None, []
        return loaded

    def input_messages(self, call: CallRecord) -> list[dict[str, Any]] | None:
        """``call.input_messages``, sharing the dicts of the previous call's history."""
        text = call.input_messages_json
        if text is None:
            return None
        try:
            loaded = self._load(text)
        except ValueError:
            self._head, self._loaded = None, []
            loaded = NOT_JSON
        return messages_from(loaded, text)

    def made(self, message: dict[str, Any], make: Made) -> str:
        """``make(message)``, once per message dict."""
        key = id(message)
        known = self._made.get(key)
        if known is not None and known[0] is message:
            return known[1]
        text = make(message)
        self._made[key] = (message, text)  # the dict is kept: its id stays its own
        return text
