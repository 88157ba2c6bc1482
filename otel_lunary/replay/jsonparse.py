"""Replay's JSON parsing: orjson when it is installed, with the standard library's results.

Replay parses JSON twice over: every line of a file, then the JSON text that attributes
carry (LLM calls' message histories, message content, metadata, tool arguments), and a
renderer that shows histories parses about as much text again as the lines. orjson
parses both at about twice the speed of ``json``. It is a dependency on CPython (where it
has wheels), absent elsewhere, and ``OTEL_LUNARY_REPLAY_JSON=json`` forces the standard
library.

Whatever orjson refuses (NaN, Infinity, lone surrogates, nesting deeper than 1024) is
parsed again by ``json.loads``, so what is accepted, and every error, is the standard
library's. The one silent difference is an integer outside 64 bits, which orjson reads
as a float: attribute text with a run of 19 digits or more goes to ``json.loads``. Lines
are not guarded so (their times are 19 digits): a number outside 64 bits in OTLP
structure is invalid there anyway.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

ENV_JSON_PARSER = "OTEL_LUNARY_REPLAY_JSON"

# A run of 19 ASCII digits, found in the text's UTF-8 with every digit byte made "0" and
# every other byte a space (UTF-8 writes other characters with bytes above 0x7F, and
# ``surrogatepass`` keeps lone surrogates): four times faster than the regular expression
# ``[0-9]{19}`` spelled out (CPython 3.11, chat histories), which cost more than orjson's
# parse of the same text.
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_NUMBER = b"0" * 19
# Searched with ``find``, not ``in``: ``bytes.__contains__`` first tries its operand as a
# byte value (an int), and for a ``bytes`` operand makes and clears a TypeError, with its
# formatted message, before the search: ~1.8k instructions a call, more than the search.


def has_long_number(text: str) -> bool:
    """Whether ``text`` holds a run of 19 ASCII digits or more (``re.search("[0-9]{19}", text)``)."""
    return text.encode("utf-8", "surrogatepass").translate(_DIGITS_AS_ZEROS).find(_LONG_NUMBER) >= 0


def orjson_module() -> Any:
    """The ``orjson`` module, or None when it is missing (not CPython) or the standard
    library is asked for: one switch for replay's parsing and the JSON output's writing,
    so that setting it shows what an install without orjson does."""
    if os.environ.get(ENV_JSON_PARSER, "").strip().lower() == "json":
        return None
    try:
        import orjson  # a dependency on CPython (pyproject.toml); absent elsewhere
    except ImportError:
        return None
    return orjson


def _orjson_loads() -> Callable[[str | bytes], Any] | None:
    """``orjson.loads``, unless orjson is missing or the standard library is asked for."""
    orjson = orjson_module()
    return None if orjson is None else orjson.loads  # type: ignore[no-any-return]


def unguarded_loads() -> Callable[[str | bytes], Any] | None:
    """``orjson.loads`` alone, chosen now (None without orjson, or when ``json`` is asked
    for), for callers that rule out on their own the one thing it reads otherwise than
    ``json.loads`` in text it accepts: integers beyond 64 bits, read as floats."""
    return _orjson_loads()


def line_parser() -> Callable[[bytes, int, int], Any]:
    """The parser of a file's lines, chosen now (the setting is read once per file): it
    parses ``buffer[start:end]``.

    orjson is handed a ``memoryview`` of the line in the chunk it was read in, not a copy
    of it (~0.6k instructions a span on the realistic file, lines of ~640 KB); what it
    refuses is parsed again by ``json.loads`` from a copy, which it needs."""
    fast = _orjson_loads()
    if fast is None:
        return lambda buffer, start, end: json.loads(buffer[start:end])

    def loads(buffer: bytes, start: int, end: int) -> Any:
        try:
            return fast(memoryview(buffer)[start:end])  # type: ignore[arg-type]
        except ValueError:
            return json.loads(buffer[start:end])

    return loads


def text_parser() -> Callable[[str], Any]:
    """The parser of attribute text, chosen now: ``json.loads``'s results, by orjson when
    it gives the same (no run of 19 digits: an integer that may not fit 64 bits)."""
    fast = _orjson_loads()
    if fast is None:
        return json.loads
    def loads(text: str) -> Any:
        if text.encode("utf-8", "surrogatepass").translate(_DIGITS_AS_ZEROS).find(_LONG_NUMBER) < 0:  # not has_long_number, inline
            try:
                return fast(text)
            except ValueError:
                pass
        return json.loads(text)

    return loads


_text_loads: Callable[[str], Any] | None = None


def loads_text(text: str) -> Any:
    """``json.loads(text)`` for attribute text, by ``text_parser`` (chosen on first use,
    for the rest of the process); raises what ``json.loads`` raises."""
    global _text_loads
    if _text_loads is None:
        _text_loads = text_parser()
    return _text_loads(text)
