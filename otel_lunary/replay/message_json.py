"""LLM calls' message lists as the JSON output writes them, each message read once a thread.

A call's ``input_messages`` in the JSON output is ``call.input_messages`` (the dicts of
its ``gen_ai.input.messages`` text) as ``json.dumps(..., ensure_ascii=False)`` writes
it, and a chat model is sent the whole conversation on every call: each history is the
previous one, the previous call's answer (its ``output_messages``) and what came since.
Parsing every history whole and encoding it again cost 19k instructions a span of the
227k the JSON format spent on realistic recordings. ``ThreadMessages`` instead, when a history's text starts with the previous one's
(as ``Histories`` checks), writes the previous history's text, then the previous answer's
text when the new part starts with it, then only what remains, parsed and encoded.

The part that remains is parsed by orjson alone when it is installed, without the check
for runs of 19 digits that ``loads_text`` makes first (which costs as much as the parse):
an integer beyond 64 bits, the one thing orjson reads otherwise than ``json`` in text it
accepts, becomes a float of magnitude 2**63 or more, which the encoder writes with
``e+``, so written text without ``e+`` was read right; text with it is read again.

Why joining texts is exact: ``head + "," + rest``, where ``head + "]"`` is a non-empty JSON
array and ``"[" + rest`` one too (``[{...},]`` is no JSON), is the array of ``head``'s
items then those of ``"[" + rest``; the encoder writes a
list as its items' texts joined by ``", "`` in brackets, and the output keeps only the
items that are dicts (``model.messages_from``), so the texts joined are those of the dicts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from otel_lunary.replay.content import json_chunks
from otel_lunary.replay.histories import continuation
from otel_lunary.replay.jsonparse import loads_text, unguarded_loads
from otel_lunary.replay.model import NOT_JSON, CallRecord, messages_from
from otel_lunary.replay.serialize import CallMessages


class Written:
    """One call's message list as its JSON text, in the call dict where the list goes
    (``item_json`` writes the text into the line)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _joined(first: str, second: str) -> str:
    """Two lists' item texts (without brackets) as one list's."""
    return first + ", " + second if first and second else first or second


class ThreadMessages(CallMessages):
    """One thread's calls' message lists as their JSON text (make one per thread; its
    calls' histories are best read in order: each is compared with the one before)."""

    __slots__ = ("_head", "_body", "_answer", "_answer_body", "_loads")

    def __init__(self, loads: Callable[[str | bytes], Any] | None = None, choose: bool = True) -> None:
        """``loads``: the unguarded parser (``unguarded_loads()``), chosen here unless
        ``choose`` is false (a writer making one of these per thread chooses it once)."""
        self._head: str | None = None  # the last history's text without its closing "]"...
        self._body = ""  # ...and its messages' text, without the brackets
        self._answer: str | None = None  # the last answer's text without its brackets...
        self._answer_body = ""  # ...and its messages' text, without the brackets
        self._loads = unguarded_loads() if choose else loads

    def input(self, call: CallRecord) -> Written | None:
        """``call.input_messages`` as the encoder writes it (None when that is None)."""
        text = call.input_messages_json
        if text is None:
            return None
        rest = continuation(self._head, text)
        if rest is not None:
            added = self._added_text(rest)
            if added is not None:
                body = _joined(self._body, added)
                if text.endswith("]"):
                    self._head, self._body = text[:-1], body
                else:
                    self._head, self._body = None, ""
                return Written("[" + body + "]") if body else None
        array, loaded = self._array(text)
        if array is not None:
            body, items = array
            if items and text.endswith("]"):
                self._head, self._body = text[:-1], body
            else:
                self._head, self._body = None, ""
            return Written("[" + body + "]") if body else None
        self._head, self._body = None, ""
        return _messages_written(messages_from(loaded, text))

    def output(self, call: CallRecord) -> Written | None:
        """``call.output_messages`` as the encoder writes it (None when that is None)."""
        text = call.output_messages_json
        if text is None:
            return None
        array, loaded = self._array(text)
        if array is not None:
            body, items = array
            if items and text.startswith("[") and text.endswith("]"):  # the next history may repeat it
                self._answer, self._answer_body = text[1:-1], body
            return Written("[" + body + "]") if body else None
        return _messages_written(messages_from(loaded, text))

    def _array(self, text: str) -> tuple[tuple[str, bool] | None, Any]:
        """``text`` as ``(its messages' text without the brackets, whether it has items)``
        when it is a JSON array, else None, with what it parsed to when that was read
        (None when the fast reading took it)."""
        array = _written_array(text, self._loads)
        if array is not None:
            return array, None
        loaded = _loaded(text)
        return ((_items_text(loaded), bool(loaded)) if type(loaded) is list else None), loaded

    def _added_text(self, rest: str) -> str | None:
        """The messages' text of the array ``"[" + rest``, without the brackets; None when
        that is not an array (or not JSON). The last answer's text is reused when ``rest``
        starts with it and more items follow."""
        answer = self._answer
        if answer is not None and rest.startswith(answer) and rest[len(answer) : len(answer) + 1] == ",":
            more = _array_items_text("[" + rest[len(answer) + 1 :], self._loads)
            if more is not None:
                return _joined(self._answer_body, more)
        return _array_items_text("[" + rest, self._loads)


def _loaded(text: str) -> Any:
    """``text`` parsed as ``CallRecord.input_messages`` parses it."""
    try:
        return loads_text(text)
    except ValueError:
        return NOT_JSON


def _written_array(text: str, loads: Callable[[str], Any] | None) -> tuple[str, bool] | None:
    """When ``loads`` (orjson's, unguarded) reads ``text`` as an array, and read it right:
    its dicts written as the encoder writes a list of them, without the brackets, and
    whether it has items; else None (read it with ``loads_text``)."""
    if loads is None:
        return None
    try:
        loaded = loads(text)
    except ValueError:
        return None
    if type(loaded) is not list:
        return None
    messages = [m for m in loaded if isinstance(m, dict)]
    if not messages:
        return "", bool(loaded)
    written = "".join(json_chunks(messages))
    return None if "e+" in written else (written[1:-1], True)


def _array_items_text(text: str, loads: Callable[[str], Any] | None) -> str | None:
    """The messages' text of the array ``text``, without the brackets; None when ``text``
    is not an array (or not JSON: the whole history is then read again, and raises the
    same) or an empty one (what follows a comma must be an item: ``[{...},]`` is no JSON)."""
    array = _written_array(text, loads)
    if array is not None:
        body, items = array
        return body if items else None
    try:
        loaded = loads_text(text)
    except (ValueError, RecursionError):
        return None
    return _items_text(loaded) if type(loaded) is list and loaded else None


def _items_text(loaded: list[Any]) -> str:
    """The dicts of ``loaded`` written as the encoder writes a list of them, without the brackets."""
    messages = [m for m in loaded if isinstance(m, dict)]
    return "".join(json_chunks(messages))[1:-1] if messages else ""


def _messages_written(messages: list[dict[str, Any]] | None) -> Written | None:
    return None if messages is None else Written("".join(json_chunks(messages)))
