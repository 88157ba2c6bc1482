"""The JSON output's lines, made with LLM calls' message lists written from their text
(``item_json``, ``message_json``), are ``json.dumps`` of ``conversation_dict``
whatever the histories hold and however they follow each other."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otel_lunary.replay import jsonparse, render_json
from otel_lunary.replay.item_json import ItemJson
from otel_lunary.replay.model import CallRecord, Conversation, CustomEvent, Message
from otel_lunary.replay.serialize import conversation_dict
from tests.helpers.replay import parser  # noqa: F401 - a fixture: both JSON parsers

MARKER = "\x00otel-lunary: messages written apart\x00"
"""The marker an earlier form of the JSON output spliced message lists at: data holding it
must still be written as it is."""

# text with what JSON escapes, non-ASCII, lone surrogates, separators and the marker's pieces
_TEXT = st.text(alphabet=st.sampled_from(list('",:[]{}\\ \n\x00\x1f\x7fé€😀') + ["\ud800", "\udfff"]) | st.characters(codec=None), max_size=12)
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63 - 2, max_value=2**70) | st.floats() | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)
_PART = st.fixed_dictionaries({"type": st.sampled_from(["text", "tool_call", "tool_call_response"]), "content": _TEXT}, optional={"arguments": _VALUES, "id": _TEXT})
_MESSAGE = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "tool", "system"]), "parts": st.lists(_PART, max_size=2)}) | st.dictionaries(_TEXT, _VALUES, max_size=3)
_ITEM = _MESSAGE | _VALUES  # items that are not dicts are left out of the output
_ODD = st.sampled_from(["null", "not json", '{"role": "user"}', "[]", "[1, 2]", '[{"role": "a"}, oops]', '[{"role": "a"}] ', "[NaN]", " [{}]", "[{}", '"text"', "[[{}]]"])


@st.composite
def _styles(draw: st.DrawFn) -> dict[str, Any]:
    """How a producer writes its messages JSON: compact or not, ASCII or not."""
    return {"separators": draw(st.sampled_from([(",", ":"), (", ", ": ")])), "ensure_ascii": draw(st.booleans())}


@st.composite
def _calls(draw: st.DrawFn) -> list[CallRecord]:
    """A thread's calls, in order: each history the previous one plus the previous answer
    and some messages (or those alone, or odd text), each answer some messages (or odd text)."""
    style = draw(_styles())
    grown: list[Any] = []
    answer: list[Any] = []
    calls = []
    for n in range(draw(st.integers(min_value=0, max_value=6))):
        if draw(st.booleans()) and n:  # another producer's style from here on
            style = draw(_styles())
        how = draw(st.sampled_from(["grow", "grow", "grow", "restart", "odd", "none", "broken"]))
        added = draw(st.lists(_ITEM, max_size=3))
        history: str | None
        if how == "odd":
            history = draw(_ODD)
        elif how == "broken":  # the previous history and answer, then what may or may not continue an array
            answered = json.dumps(grown + answer, **style)[:-1]
            history = answered + draw(st.sampled_from(["[{}]", "]", " ]", ",{}]", "{}]", "x", ",", '"a"]', ":1]"]))
        elif how == "none":
            history = None
        else:
            grown = added if how == "restart" else grown + (answer if draw(st.booleans()) else []) + added
            history = json.dumps(grown, **style)
        answer = draw(st.lists(_ITEM, min_size=0, max_size=2))
        output = draw(_ODD) if draw(st.integers(min_value=0, max_value=5)) == 0 else json.dumps(answer, **style) if answer or draw(st.booleans()) else None
        metadata = draw(st.sampled_from([{}, {"m": MARKER}, {MARKER: 1}])) if draw(st.integers(min_value=0, max_value=7)) == 0 else {}
        calls.append(CallRecord(kind="llm", name="chat", span_id=f"s{n}", trace_id="t", start_ns=n, end_ns=n + 1_500_000,
                                input_messages_json=history, output_messages_json=output, metadata=metadata))
    return calls


@st.composite
def _conversations(draw: st.DrawFn) -> Conversation:
    """A thread whose calls sit under its messages, under each other and unplaced."""
    calls = draw(_calls())
    items: list[Message | CustomEvent] = []
    unplaced: list[CallRecord] = []
    rest = list(calls)
    n = 0
    while rest:
        where = draw(st.sampled_from(["message", "child", "unplaced"]))
        take, rest = rest[:1], rest[1:]
        if where == "child" and items and isinstance(items[-1], Message) and items[-1].calls:
            items[-1].calls[-1].children.extend(take)
        elif where == "unplaced":
            unplaced.extend(take)
        else:
            n += 1
            items.append(Message(id=f"m{n}", role="assistant", time_ns=n * 10**9, span_id="a" * 16, trace_id="t", content=draw(_TEXT), calls=take))
        if draw(st.integers(min_value=0, max_value=4)) == 0:
            items.append(CustomEvent(name="e", time_ns=n, span_id="b" * 16, trace_id="t", metadata=draw(st.sampled_from([{}, {"x": MARKER}]))))
    return Conversation(id="c", items=items, unplaced_calls=unplaced, metadata=draw(st.sampled_from([{}, {"note": MARKER}, {"note": "x"}])))



def _dumps_lines(conversations: list[Conversation]) -> str:
    return "".join(json.dumps(conversation_dict(c), ensure_ascii=False, default=str) + "\n" for c in conversations)


@given(conversations=st.lists(_conversations(), min_size=1, max_size=3))
def test_json_lines_are_json_dumps_of_conversation_dicts(conversations: list[Conversation], parser: str) -> None:
    """Whatever the histories (extending the previous one or not, repeating the previous
    answer or not, not JSON, not a list, holding non-dicts, NaN, 64-bit-overflowing
    integers, non-ASCII, control characters, lone surrogates) and wherever the calls sit,
    and when the data holds the marker the lists' texts are put in by, each line is
    ``json.dumps(conversation_dict(c), ensure_ascii=False, default=str)``."""
    out = io.StringIO()
    render_json.render(conversations, out)
    assert out.getvalue() == _dumps_lines(conversations)


def test_histories_written_once_are_the_histories_in_full(parser: str) -> None:
    """A chat's calls, each sent the whole conversation (so each history is written from
    the previous one's text and the previous answer's), written as the parsed dicts are."""
    said: list[dict[str, Any]] = [{"role": "system", "parts": [{"type": "text", "content": "Be brief, kind: «ok»"}]}]
    calls = []
    for n in range(5):
        said.append({"role": "user", "parts": [{"type": "text", "content": f"question {n}: \"why\", {{}}\n"}]})
        answer = [{"role": "assistant", "parts": [{"type": "text", "content": f"answer {n}, 1e-05"}], "n": n}]
        calls.append(CallRecord(kind="llm", name="chat", span_id=f"s{n}", trace_id="t", start_ns=0, end_ns=1,
                                input_messages_json=json.dumps(said, separators=(",", ":"), ensure_ascii=n % 2 == 0),
                                output_messages_json=json.dumps(answer, separators=(",", ":"))))
        said += answer
    message = Message(id="m", role="assistant", time_ns=1, span_id="a" * 16, trace_id="t", content="x", calls=calls)
    conversation = Conversation(id="c", items=[message])
    line = ItemJson().line(conversation)
    assert line == _dumps_lines([conversation])
    assert json.loads(line)["items"][0]["calls"][4]["input_messages"] == said[:-1]


def test_data_holding_the_marker_is_written_as_it_is(parser: str) -> None:
    """The marker string in a thread's data (not a stand-in for a history) stays in the
    output as the text it is, and the histories are still written in full."""
    history = json.dumps([{"role": "user", "parts": [{"type": "text", "content": MARKER}]}])
    call = CallRecord(kind="llm", name="chat", span_id="s", trace_id="t", start_ns=0, end_ns=1, input_messages_json=history, metadata={"m": MARKER})
    conversation = Conversation(id="c", items=[Message(id="m", role="user", time_ns=1, span_id="a" * 16, trace_id="t", content=MARKER, calls=[call])])
    line = ItemJson().line(conversation)
    assert line == _dumps_lines([conversation])
    assert json.loads(line)["items"][0]["calls"][0]["input_messages"][0]["parts"][0]["content"] == MARKER


@pytest.mark.parametrize("after", ["[{}]", "{}]", ":1]", " ,{}]", "]", ",{}] ", ",{}]"])
def test_history_repeating_the_answer_then_anything_reads_as_it_does_whole(after: str, parser: str) -> None:
    """A history that starts with the previous one and the previous answer's text, then
    goes on in a way that is (or is not) an array: written as its text parsed whole."""
    first = json.dumps([{"role": "user", "parts": []}], separators=(",", ":"))
    answer = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "hi"}]}], separators=(",", ":"))
    texts = [(first, answer), (first[:-1] + "," + answer[1:-1] + after, None)]
    calls = [CallRecord(kind="llm", name="chat", span_id=f"s{n}", trace_id="t", start_ns=0, end_ns=1, input_messages_json=i, output_messages_json=o)
             for n, (i, o) in enumerate(texts)]
    conversation = Conversation(id="c", unplaced_calls=calls)
    assert ItemJson().line(conversation) == _dumps_lines([conversation])


@pytest.mark.parametrize("value", ["18446744073709551616", "-9223372036854775809", "18446744073709551615", "1e16", "1e-05", "NaN", '"e+"', '"\\ud800"', "1E400"])
def test_numbers_orjson_reads_otherwise_are_written_as_json_reads_them(value: str, parser: str) -> None:
    """Integers beyond 64 bits (floats to orjson), floats written differently by orjson
    and ``repr``, NaN, infinity and lone surrogates, in a history, an extension and an
    answer: written as ``json.loads`` reads them."""
    first = '[{"role":"user","n":' + value + "}]"
    answer = '[{"role":"assistant","n":' + value + "}]"
    texts = [(first, answer), (first[:-1] + "," + answer[1:-1] + ',{"n":' + value + "}]", answer)]
    calls = [CallRecord(kind="llm", name="chat", span_id=f"s{n}", trace_id="t", start_ns=0, end_ns=1, input_messages_json=i, output_messages_json=o)
             for n, (i, o) in enumerate(texts)]
    conversation = Conversation(id="c", unplaced_calls=calls)
    assert ItemJson().line(conversation) == _dumps_lines([conversation])
