"""The span decoder's written-out fast paths give what the general, entry-by-entry decoding gives."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from otel_lunary.replay.decode import _other_value, decode_attributes, decode_id, decode_value, otlp_spans
from otel_lunary.replay.jsonparse import _orjson_loads, line_parser

_SCALARS = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=6) | st.sampled_from(["1", "x", "Infinity", "", "-5"])
_KEYS = st.sampled_from(["stringValue", "intValue", "boolValue", "doubleValue", "arrayValue", "kvlistValue", "bytesValue", "string_value", "other"])
_ANY: st.SearchStrategy[Any] = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS | st.just("values"), inner, max_size=3),
    max_leaves=8,
)
# Values shaped as OTLP writes them (arrays of strings above all), and anything else.
_VALUE = (
    st.builds(lambda texts: {"arrayValue": {"values": [{"stringValue": t} for t in texts]}}, st.lists(st.text(max_size=4), max_size=3))
    | st.builds(lambda raw: {"intValue": raw}, st.sampled_from(["12", "-3", 7, "x", None, 1.5]))
    | st.dictionaries(_KEYS, _ANY, max_size=2)
    | _ANY
)
_ID = st.sampled_from(["ab" * 8, "AB" * 8, "0" * 16, "g" * 16, "q83vEjRWeJA=", "ab" * 7, "", None, 5])


def _outcome(function: Any, *args: Any) -> Any:
    try:
        return ("value", function(*args))
    except Exception as exc:  # noqa: BLE001 - the exception type is what is compared
        return ("raises", type(exc))


@given(value=st.dictionaries(_KEYS, _ANY, max_size=3) | _VALUE.filter(lambda v: isinstance(v, dict)))
def test_other_value_is_decode_value(value: dict[str, Any]) -> None:
    """``_other_value`` (arrays and ints without ``decode_value``'s calls) decodes, or fails, as ``decode_value`` does."""
    assert _outcome(_other_value, value) == _outcome(decode_value, value)


@given(
    items=st.lists(st.fixed_dictionaries({"key": st.sampled_from(["a", "b", "c"]) | _ANY, "value": _VALUE}) | _ANY, max_size=5)
    | _ANY,
    span_id=_ID,
    parent=_ID,
)
def test_span_read_in_one_loop_is_the_general_decoding(items: Any, span_id: Any, parent: Any) -> None:
    """A span's attributes are ``decode_attributes`` of its list, its span and parent ids ``decode_id``'s,
    whatever the shape (the comprehension and id checks written out in the scope's loop)."""
    span = {"traceId": "1" * 32, "spanId": span_id, "parentSpanId": parent, "attributes": items}
    problems: list[str] = []
    records = otlp_spans({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}, problems.append)
    expected_id = decode_id(span_id, 8)
    if expected_id is None:
        assert records == [] and len(problems) == 1
        return
    (record,) = records
    assert record.span_id == expected_id
    assert record.parent_span_id == (decode_id(parent, 8) if parent else None)
    assert record.attributes == decode_attributes(items)


_LINE_PIECES = st.sampled_from([b'{"a":1}', b"[1,2]", b" ", b"\n", b"\r\n", b'"x"', b"{", b"NaN", b"1e999", b"\xff", b'"\\ud800"', b"12345678901234567890", b"\t"])


def _line_by_copy(buffer: bytes, start: int, end: int) -> Any:
    """The line parser as it was: orjson (when installed) on a copy of the line, ``json`` for what it refuses."""
    line = buffer[start:end]
    fast = _orjson_loads()
    if fast is None:
        return json.loads(line)
    try:
        return fast(line)
    except ValueError:
        return json.loads(line)


@given(pieces=st.lists(_LINE_PIECES, max_size=8), start=st.integers(0, 20), length=st.integers(1, 40))
def test_line_parser_on_a_view_is_the_parser_on_a_copy(pieces: list[bytes], start: int, length: int) -> None:
    """The line parser (orjson on a view of the line in its chunk, when installed) gives
    what parsing a copy of the line gave, value or kind of error."""
    buffer = b"".join(pieces)
    end = min(len(buffer), start + length)
    if start >= end:
        return
    expected = _outcome(_line_by_copy, buffer, start, end)
    got = _outcome(line_parser(), buffer, start, end)
    assert repr(got) == repr(expected)  # repr: NaN is not equal to itself
