"""The JSON output's lines written field by field (``item_json``) are ``json.dumps`` of
``serialize.conversation_dict``: for any value in any field of a message, a call, a
feedback change and an event, every optional field set or not, with orjson writing the
strings and without it. The writer's second form of the schema (its keys, their order,
when an optional field is written) cannot drift from ``serialize`` without failing here."""

from __future__ import annotations

import json
from decimal import Decimal
from enum import Enum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otel_lunary.replay import item_json
from otel_lunary.replay.model import CallRecord, Conversation, CustomEvent, FeedbackChange, Message, ToolCall
from otel_lunary.replay.serialize import conversation_dict

orjson = pytest.importorskip("orjson")


class _Text(str):
    """A ``str`` subclass (written as its text by the encoder, not by the fast path)."""


class _Kind(str, Enum):
    LLM = "llm"


class _Opaque:
    """A value JSON cannot hold: written as ``str(value)`` (``default=str``)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


# text with what JSON escapes, non-ASCII, lone surrogates and the writer's own separators
_TEXT = st.text(alphabet=st.sampled_from(list('",:[]{}\\ \n\x00\x1f\x7f\u2028é€😀') + ["\ud800", "\udfff"]) | st.characters(codec=None), max_size=10)
_SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63 - 2, max_value=2**70) | st.floats() | _TEXT
            | st.builds(_Text, _TEXT) | st.just(_Kind.LLM) | st.builds(Decimal, st.integers()) | st.builds(_Opaque, _TEXT))
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3), max_leaves=6)
_MOSTLY_TEXT = _TEXT | _TEXT | _TEXT | _VALUES  # the fields' usual type, and any other
_OPTIONAL = st.none() | st.none() | _MOSTLY_TEXT
_TIME = st.integers(min_value=0, max_value=4_102_444_800 * 10**9)
_PLAIN = st.text(alphabet=st.sampled_from(list('",:[]{}\\ \n\x00\x1f\x7f\u2028é€😀')) | st.characters(codec="utf-8"), max_size=10)  # no surrogates
_HISTORY = st.none() | st.sampled_from(['[{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]', "[]", "not json", "[1, 2]"])


@st.composite
def _calls(draw: st.DrawFn, depth: int = 0) -> CallRecord:
    """A call with every field any value (times integers: ``iso`` raises on others, both
    ways); half of them with the fields the fast path writes together strings."""
    fixed = _PLAIN if draw(st.booleans()) else _MOSTLY_TEXT
    return CallRecord(
        kind=draw(fixed | st.just(_Kind.LLM)), name=draw(fixed), span_id=draw(fixed), trace_id=draw(fixed),
        start_ns=draw(_TIME), end_ns=draw(_TIME),
        operation=draw(_OPTIONAL), model=draw(_OPTIONAL), provider=draw(_OPTIONAL), agent_name=draw(_OPTIONAL), tool_name=draw(_OPTIONAL),
        input_tokens=draw(st.none() | st.integers() | _VALUES), output_tokens=draw(st.none() | st.integers() | _VALUES),
        finish_reasons=draw(st.lists(_TEXT, max_size=2) | _VALUES), error=draw(_OPTIONAL),
        input_messages_json=draw(_HISTORY), output_messages_json=draw(_HISTORY),
        tool_arguments=draw(_OPTIONAL), tool_result=draw(_OPTIONAL), tags=draw(st.lists(_TEXT, max_size=2) | _VALUES),
        metadata=draw(st.dictionaries(_TEXT, _VALUES, max_size=2) | _VALUES),
        children=draw(st.lists(_calls(depth + 1), max_size=2)) if depth < 1 and draw(st.booleans()) else [],
    )


_CHANGES = st.builds(FeedbackChange, time_ns=_TIME, key=_MOSTLY_TEXT, value=_VALUES, removed=st.booleans() | _VALUES)


@st.composite
def _messages(draw: st.DrawFn) -> Message:
    """A message with every field any value; half of them with the fields the fast path
    writes together strings (the user id then any value)."""
    fixed = _PLAIN if draw(st.booleans()) else _MOSTLY_TEXT
    return Message(
        id=draw(fixed), role=draw(fixed), time_ns=draw(_TIME), span_id=draw(fixed), trace_id=draw(fixed),
        content=draw(fixed if draw(st.booleans()) else _OPTIONAL), tool_calls=draw(st.none() | st.lists(st.builds(ToolCall, id=_OPTIONAL, name=_OPTIONAL, arguments=_VALUES), max_size=2)),
        tool_call_id=draw(_OPTIONAL), user_id=draw(st.none() | _PLAIN | _SCALARS), user_props=draw(st.none() | st.dictionaries(_TEXT, _VALUES, max_size=2) | _VALUES),
        tags=draw(st.none() | st.lists(_TEXT, max_size=2) | _VALUES), metadata=draw(st.none() | st.dictionaries(_TEXT, _VALUES, max_size=2) | _VALUES),
        is_retry=draw(st.booleans() | _VALUES), truncated=draw(st.booleans() | _VALUES),
        feedback=draw(st.none() | st.dictionaries(_TEXT, _VALUES, max_size=2) | _VALUES),
        feedback_history=draw(st.none() | st.lists(_CHANGES, max_size=2)), calls=draw(st.none() | st.lists(_calls(), max_size=2)),
    )


_EVENTS = st.builds(CustomEvent, name=_MOSTLY_TEXT, time_ns=_TIME, span_id=st.just("b" * 16), trace_id=st.just("t"), user_id=_OPTIONAL,
                    metadata=st.none() | st.dictionaries(_TEXT, _VALUES, max_size=2))
_CONVERSATIONS = st.builds(Conversation, id=_MOSTLY_TEXT, items=st.lists(_messages() | _EVENTS, max_size=3), tags=st.lists(_TEXT, max_size=2),
                           metadata=st.dictionaries(_TEXT, _VALUES, max_size=2), unplaced_calls=st.lists(_calls(), max_size=2))


def _dumps_line(conversation: Conversation) -> str | None:
    try:
        return json.dumps(conversation_dict(conversation), ensure_ascii=False, default=str) + "\n"
    except Exception:  # noqa: BLE001 - a value the schema itself refuses (feedback that is not a dict, ...)
        return None


@pytest.mark.parametrize("use_orjson", [True, False])
@given(conversation=_CONVERSATIONS)
def test_written_line_is_json_dumps_of_conversation_dict(conversation: Conversation, use_orjson: bool) -> None:
    """Field by field (without the whole-line fallback ``line`` has), the line is
    ``json.dumps(conversation_dict(c), ensure_ascii=False, default=str)``, whatever each
    field holds: strings with quotes, backslashes, control characters, lone surrogates
    and the ``","`` the fast path splits at; ``str`` and ``int`` subclasses, NaN,
    integers beyond 64 bits, values only ``default=str`` writes, containers; every
    optional field set, empty or left out."""
    expected = _dumps_line(conversation)
    writer = item_json.ItemJson(use_orjson=use_orjson)
    if expected is None:  # the plain way raises: line, falling back to it, raises too
        with pytest.raises(Exception):  # noqa: B017 - whatever the plain way raises
            writer.line(conversation)
        return
    assert writer._line(conversation) == expected
    assert writer.line(conversation) == expected


def test_orjson_writes_every_string_as_the_encoder_does() -> None:
    """The fast path's premise: ``orjson.dumps(s)`` is ``encode_basestring(s)`` for every
    character but lone surrogates, on which it raises (and the writer falls back)."""
    from json.encoder import encode_basestring  # type: ignore[attr-defined]

    for start in range(0, 0x110000, 1024):
        chars = "".join(chr(c) for c in range(start, min(start + 1024, 0x110000)) if not 0xD800 <= c <= 0xDFFF)
        for text in (chars, chars[:1], chars[-1:]):
            assert orjson.dumps(text).decode() == encode_basestring(text)
    for c in range(0, 0x80):  # each ASCII character alone (escapes are per character)
        assert orjson.dumps(chr(c)).decode() == encode_basestring(chr(c))
    for surrogate in ("\ud800", "\udfff", "a\udc80b"):
        with pytest.raises(TypeError):
            orjson.dumps(surrogate)


def test_realistic_thread_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """A recorded-looking thread (string fields, an LLM call with histories, feedback) is
    written field by field, not by the C encoder over a dict (what made the gain)."""
    calls = [CallRecord(kind="llm", name="chat", span_id="5679d9d300000001", trace_id="3b68" * 8, start_ns=10**18, end_ns=10**18 + 7_938_000,
                        operation="chat", model="gpt", provider="openai", input_tokens=16, output_tokens=25, finish_reasons=["stop"],
                        input_messages_json='[{"role":"user","parts":[{"type":"text","content":"Hi \\"you\\""}]}]',
                        output_messages_json='[{"role":"assistant","parts":[{"type":"text","content":"Hello, «friend»"}]}]')]
    message = Message(id="00-x-y-01", role="user", time_ns=10**18, span_id="24845aad00000001", trace_id="3b68" * 8, content='Hi "you"',
                      user_id="demo-user", feedback={"thumb": "up"}, feedback_history=[FeedbackChange(10**18, "thumb", "up")], calls=calls)
    conversation = Conversation(id="c", items=[message, CustomEvent(name="e", time_ns=10**18, span_id="b", trace_id="t", user_id="u")])
    encoded: list[Any] = []
    real = item_json._text
    monkeypatch.setattr(item_json, "_text", lambda value: encoded.append(value) or real(value))
    assert item_json.ItemJson().line(conversation) == _dumps_line(conversation)
    assert not any(isinstance(value, dict) and ("role" in value or "kind" in value or "key" in value) for value in encoded)


@pytest.mark.parametrize("text", ['ends in a quoted comma",', '",', 'a","b', '\\",'])
def test_a_string_holding_the_split_sequence_is_written_as_the_encoder_does(text: str) -> None:
    """A string ending in ``",`` encodes to ``\\",`` followed by its closing quote: the
    ``","`` the fast path splits its tuple at, inside an item. The split then has a piece
    too many, and the item is written the general way, not cut apart."""
    call = CallRecord(kind="llm", name=text, span_id="5679d9d300000001", trace_id="3b68" * 8, start_ns=10**18, end_ns=10**18 + 1, model=text)
    message = Message(id="m", role="user", time_ns=10**18, span_id="24845aad00000001", trace_id="3b68" * 8, content=text, user_id=text, calls=[call])
    conversation = Conversation(id="c", items=[message])
    assert item_json.ItemJson()._line(conversation) == _dumps_line(conversation)
