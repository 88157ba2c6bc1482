"""A history read from the previous one's text (``histories.Histories`` for Markdown, HTML
and the terminal; ``message_json.ThreadMessages`` for JSON) reads as its text parsed whole,
for whatever follows the previous history's (or answer's) text: the shortcut's claim
that ``head + "," + rest`` is ``head``'s items then those of ``"[" + rest`` needs ``rest``
to hold an item (``[{...},]`` is not JSON, ``[]`` is)."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otel_lunary.replay import jsonparse, render_json
from otel_lunary.replay._gc import deferred_collections
from otel_lunary.replay.content import json_chunks
from otel_lunary.replay.item_json import ItemJson
from otel_lunary.replay.histories import Histories
from otel_lunary.replay.model import CallRecord, Conversation, Message
from otel_lunary.replay.serialize import conversation_dict
from tests.helpers.replay import parser  # noqa: F401 - a fixture: both JSON parsers



def _calls(texts: Iterable[tuple[str | None, str | None]]) -> list[CallRecord]:
    return [
        CallRecord(kind="llm", name="chat", span_id=f"s{n}", trace_id="t", start_ns=0, end_ns=1, input_messages_json=i, output_messages_json=o)
        for n, (i, o) in enumerate(texts)
    ]


def _dumps_line(conversation: Conversation) -> str:
    return json.dumps(conversation_dict(conversation), ensure_ascii=False, default=str) + "\n"


# the previous history, then what a producer (or a hostile one) writes after its items
_TRAILING_COMMAS = [
    ('[{"a": 1}]', None, '[{"a": 1},]'),
    ('[{"a": 1}]', None, '[{"a": 1}, ]'),
    ('[{"a":1}]', None, '[{"a":1},\n]'),
    ('[{"a": 1}]', '[{"b": 2}]', '[{"a": 1},{"b": 2},]'),  # the answer's text, then a trailing comma
    ('[{"a": 1}]', '[{"b": 2}]', '[{"a": 1}, {"b": 2} , ]'),
]


@pytest.mark.parametrize(("first", "answer", "second"), _TRAILING_COMMAS)
def test_json_history_with_a_trailing_comma_after_the_previous_one_is_not_json(first: str, answer: str | None, second: str, parser: str) -> None:
    """``[{...},]`` is not JSON, so the call's ``input_messages`` is its text kept as one
    message (``json.dumps`` of ``conversation_dict``), even when it starts with the
    previous history's (or answer's) text: ``"[" + "]"`` parsing as an empty list does
    not make ``head + ",]"`` an array."""
    conversation = Conversation(id="c", unplaced_calls=_calls([(first, answer), (second, None)]))
    line = ItemJson().line(conversation)
    assert line == _dumps_line(conversation)
    assert json.loads(line)["unplaced_calls"][1]["input_messages"] == [{"role": "unknown", "parts": [{"type": "text", "content": second}]}]


@pytest.mark.parametrize(("first", "answer", "second"), _TRAILING_COMMAS)
def test_rendered_history_with_a_trailing_comma_after_the_previous_one_is_not_json(first: str, answer: str | None, second: str, parser: str) -> None:
    """The same for the history Markdown, HTML and the terminal show (``Histories``):
    what ``call.input_messages`` gives, the text as one message (a bug older than the
    JSON shortcut: ``Histories`` took ``[{"a": 1},]`` for ``[{"a": 1}]``)."""
    histories = Histories()
    for call in _calls([(first, answer), (second, None)]):
        assert histories.input_messages(call) == call.input_messages, call.input_messages_json


# what a history may go on with after the previous history's text without its "]":
# items (or none) between separators that may be one too many, a closing bracket or not
_ITEM_TEXTS = st.sampled_from(["{}", '{"a": 1}', '{"role": "user"}', "1", "12", '"x"', "null", "NaN", "1234567890123456789", "[]"])
_SEPARATORS = st.sampled_from([",", ", ", " ,", ",\n", "", " "])
_ENDS = st.sampled_from(["]", " ]", "]\n", "", "}", ":1]"])
_CONTINUATIONS = st.builds(
    lambda first, items, separator, extra, end: first + separator.join(items) + extra + end,
    _SEPARATORS, st.lists(_ITEM_TEXTS, max_size=3), _SEPARATORS, st.sampled_from(["", ","]), _ENDS,
) | st.lists(st.sampled_from([",", " ", "]", "[", "{}", "1", '"x"', ":"]), max_size=5).map("".join)


@st.composite
def _thread(draw: st.DrawFn) -> list[tuple[str | None, str | None]]:
    """Calls whose histories start with the previous history's text (its "]" left off),
    sometimes followed by the previous answer's items, then anything (JSON or not)."""
    texts: list[tuple[str | None, str | None]] = []
    history = json.dumps(draw(st.lists(st.dictionaries(st.sampled_from(["role", "a"]), st.integers(0, 3) | st.text(max_size=2), max_size=2), min_size=1, max_size=2)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        answer = draw(st.sampled_from([None, "[]", '[{"role": "assistant"}]', '[{"b": 2}, 3]', "[ {} ]", "not json"]))
        texts.append((history, answer))
        head = history[:-1] if history.endswith("]") else history
        if answer is not None and answer.startswith("[") and draw(st.booleans()):
            head += "," + answer[1:-1]
        history = head + draw(_CONTINUATIONS)
    texts.append((history, None))
    return texts


@given(texts=_thread())
def test_history_continued_by_anything_reads_as_its_text_whole(texts: list[tuple[str | None, str | None]], parser: str) -> None:
    """Whatever follows the previous history's (and answer's) text, the JSON line is
    ``json.dumps`` of ``conversation_dict`` and ``Histories`` gives ``call.input_messages``."""
    calls = _calls(texts)
    histories = Histories()
    for call in calls:
        assert histories.input_messages(call) == call.input_messages, call.input_messages_json
    conversation = Conversation(id="c", unplaced_calls=calls)
    assert ItemJson().line(conversation) == _dumps_line(conversation)


@deferred_collections()  # as render_json.render is
def _render_before(conversations: Iterable[Conversation], out: TextIO) -> None:
    """``render_json.render`` as it was before the message lists were written from their text."""
    for conversation in conversations:
        chunks = json_chunks(conversation_dict(conversation))
        chunks.append("\n")
        out.write("".join(chunks))


def _deep(depth: int) -> Conversation:
    history = '[{"role": "user", "parts": ' + "[" * depth + "]" * depth + "}]"
    call = CallRecord(kind="llm", name="chat", span_id="s", trace_id="t", start_ns=0, end_ns=1, input_messages_json=history)
    return Conversation(id="c", items=[Message(id="m", role="user", time_ns=1, span_id="a" * 16, trace_id="t", content="x", calls=[call])])


def _outcome(render: Any, depth: int) -> str:
    out = io.StringIO()
    try:
        render([_deep(depth)], out)
    except RecursionError:
        return "RecursionError"
    return out.getvalue()


def test_history_nested_near_the_recursion_limit_renders_as_before(parser: str) -> None:
    """A history nested just less deeply than the JSON output could read and write it
    before is still written, as it was: the message lists written from their text parse
    a few Python frames deeper, and the plain way they fall back to must not be deeper
    than before. (Where the line could not be made before, it may be now: on CPython
    3.12 and later, whose C recursion limit ignores Python frames, a message list
    encoded alone is five containers less deep than in the whole line.)"""
    low, high = 1, 2  # the old render writes `low`'s history and raises on `high`'s
    while _outcome(_render_before, high) != "RecursionError":
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        if _outcome(_render_before, middle) == "RecursionError":
            high = middle
        else:
            low = middle
    for depth in range(low - 8, high):
        assert _outcome(render_json.render, depth) == _outcome(_render_before, depth), depth


def test_json_chunks_are_a_list_on_every_python() -> None:
    """``json_chunks`` gives a list its callers append the newline to, on every CPython:
    from 3.12 the C encoder returns one string in a tuple, and the JSON output (whole and
    streaming) raised ``AttributeError`` on its first line. Run under 3.12/3.13 to see it."""
    chunks = json_chunks({"a": [1, 2.5, "é"], "b": None})
    assert type(chunks) is list
    chunks.append("\n")
    assert "".join(chunks) == json.dumps({"a": [1, 2.5, "é"], "b": None}, ensure_ascii=False) + "\n"
    out = io.StringIO()
    render_json.render([_deep(3)], out)
    assert out.getvalue() == _dumps_line(_deep(3))
