"""The renderers' shortcuts write what the plain code writes: remembered HTML escapes,
one-line quotes and indents, values shown by an encoder made once, writes gathered per
thread, and a page of hostile names escaped like any other text."""

from __future__ import annotations

import html
import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otel_lunary.replay import render_html, render_json, render_markdown, render_terminal
from otel_lunary.replay.batched import BatchedWriter
from otel_lunary.replay.content import as_text, json_chunks
from otel_lunary.replay.display import Remembered
from otel_lunary.replay.histories import Histories
from otel_lunary.replay.model import CallRecord, Conversation, CustomEvent, FeedbackChange, Message
from otel_lunary.replay.serialize import conversation_dict

# Text with what HTML escapes, line breaks of every kind str.splitlines knows, and the rest.
_TEXT = st.text(alphabet=st.sampled_from(list("<>&\"'ab \n\r\x0b\x0c\x1c\x85\u2028\u2029")) | st.characters(), max_size=40)


@given(texts=st.lists(_TEXT, max_size=12))
def test_remembered_escapes_are_html_escape(texts: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``_name`` (remembered, and forgotten when full) and ``_id`` (no escape for letters
    and digits) give ``html.escape`` for any text, asked once or again."""
    monkeypatch.setattr(render_html, "_NAMES", Remembered(render_html.escape, kept=3))  # the memory fills and is cleared within one example
    for text in texts + texts:
        assert render_html._name(text) == html.escape(text)
        assert render_html._id(text) == html.escape(text)


@given(text=_TEXT | st.lists(st.sampled_from(["&", "<", ">", '"', "'", "&amp;", "&lt;", "&#x27;", "a", "\U0001f464", "\u00b7"])).map("".join))
def test_html_escape_of_only_the_characters_held_is_html_escape(text: str) -> None:
    """The page's ``escape`` (a ``replace`` only for a character the text holds) is
    ``html.escape`` for any text: entities already in it, every special character,
    wide characters."""
    assert render_html.escape(text) == html.escape(text)


@given(text=_TEXT)
def test_one_line_quote_and_indent_are_the_general_ones(text: str) -> None:
    """Markdown's quote and the terminal's indent of text without a line break (no
    generator) are what the line-by-line form writes, and so is every other text."""
    lines = text.splitlines() or [""]
    assert render_markdown._quote(text) == "\n".join("> " + line if line else ">" for line in lines)
    assert render_terminal._indent(text, "     ") == "\n".join("     " + line for line in lines)


_ROLE = st.sampled_from(["user", "assistant", "tool", "system", None, 1, True]) | _TEXT


@given(roles=st.lists(_ROLE, max_size=8), text=_TEXT)
def test_remembered_markdown_roles_are_the_general_ones(roles: list[object], text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A message's head and a history line made with the remembered role text (also when
    the memory is full and cleared, and for roles that are not strings) are what the
    plain escapes give."""
    from otel_lunary.replay.display import ROLE_ICONS

    monkeypatch.setattr(render_markdown, "_ROLES", Remembered(render_markdown._role_texts, kept=3))
    for role in roles + roles:
        message = Message(id="m", role=role, time_ns=1_700_000_000_123_456_789, span_id="a" * 16, trace_id="t", content=text, user_id=text or None)  # type: ignore[arg-type]
        who = f"**{render_markdown._text(role)}**" + (f" ({render_markdown._text(text)})" if text and role == "user" else "")
        from otel_lunary.replay.times import clock
        assert render_markdown._message(message, Histories())[0] == f"{ROLE_ICONS.get(role, '')} {who} · {clock(message.time_ns)}"  # type: ignore[call-overload]
        line = {"role": role, "parts": [{"type": "text", "content": text}]}
        assert render_markdown._history_line(line) == f"{render_markdown._code(role)}: {render_markdown._text(' '.join(text.split()))}"


@given(
    role=st.sampled_from(["user", "assistant", "tool"]) | _TEXT,
    user_id=st.none() | _TEXT,
    tool_call_id=st.none() | _TEXT,
    retry=st.booleans(),
    message_id=_TEXT | st.text(alphabet="0123456789abcdef-<&", max_size=60),
)
def test_html_meta_and_message_id_are_escaped(role: str, user_id: str | None, tool_call_id: str | None, retry: bool, message_id: str) -> None:
    """The HTML meta line (read from the message's slots: content, tool call id) and the
    message id are ``escape`` of the whole, and ``_id`` is ``escape`` for ids too."""
    from otel_lunary.replay.display import ROLE_ICONS
    from otel_lunary.replay.times import clock

    message = Message(id=message_id, role=role, time_ns=1_700_000_000_123_456_789, span_id="a" * 16, trace_id="t", content="x",
                      user_id=user_id, tool_call_id=tool_call_id, is_retry=retry)
    who = role + (f" · {user_id}" if user_id and role == "user" else "")
    meta = f"{ROLE_ICONS.get(role, '')} {who} · {clock(message.time_ns)}" + (" · retry" if retry else "") + (f" · answers {tool_call_id}" if tool_call_id else "")
    made = render_html._message(message, Histories())
    assert f'<div class="meta">{html.escape(meta)}</div>' in made
    assert f'data-message-id="{html.escape(message_id)}"' in made
    assert render_html._id(message_id) == html.escape(message_id)


HOSTILE = '<img src=x onerror="alert(1)">&amp;\'"'


def test_hostile_names_are_escaped_in_the_page() -> None:
    """Roles, models, providers, operations, feedback keys, event names, tags and ids go
    through the remembered escape: none of them can open an element, twice over (the
    second thread reads them from memory)."""
    call = CallRecord(
        kind="llm", name=HOSTILE, span_id=HOSTILE, trace_id="t", start_ns=0, end_ns=10**6,
        operation=HOSTILE, model=HOSTILE, provider=HOSTILE,
        input_messages_json='[{"role": "%s", "parts": [{"type": "text", "content": "hi"}]}]' % HOSTILE.replace('"', '\\"'),
    )
    def thread(n: int) -> Conversation:
        message = Message(
            id=HOSTILE, role=HOSTILE, time_ns=1, span_id="a" * 16, trace_id="t", content="x",
            feedback={HOSTILE: HOSTILE}, feedback_history=[FeedbackChange(1, HOSTILE, HOSTILE)], calls=[call],
        )
        event = CustomEvent(name=HOSTILE, time_ns=2, span_id="b" * 16, trace_id="t")
        return Conversation(id=f"{HOSTILE}{n}", items=[message, event], tags=[HOSTILE])
    out = io.StringIO()
    render_html.render([thread(1), thread(2)], out)
    page = out.getvalue()
    assert "<img" not in page and 'onerror="' not in page
    assert page.count(html.escape(HOSTILE)) >= 2 * 10  # each name, in each thread


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(max_size=4),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4) | st.integers() | st.floats() | st.booleans(), inner, max_size=4),
    max_leaves=12,
)


@given(value=_VALUES)
def test_shown_values_are_json_dumps(value: object) -> None:
    """``as_text`` (its encoder made once) writes ``json.dumps``'s text for any value the
    renderers show: NaN, big integers, non-string keys, bytes (by ``str``) included."""
    expected = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    assert as_text(value) == expected


@given(value=_VALUES)
def test_json_chunks_are_json_dumps(value: object) -> None:
    """The JSON output's encoder (made once, no circular-value check) writes
    ``json.dumps(value, ensure_ascii=False, default=str)`` for any value, also when the same
    list or dict appears twice in it (shared, not circular: the histories do that)."""
    assert "".join(json_chunks(value)) == json.dumps(value, ensure_ascii=False, default=str)
    shared = {"a": [value, value], "b": value}
    assert "".join(json_chunks(shared)) == json.dumps(shared, ensure_ascii=False, default=str)


def test_json_output_is_json_dumps_of_each_conversation() -> None:
    """One ``json.dumps`` line per conversation, as the output always was; a call's
    history dicts shared between calls are written in full each time."""
    history = '[{"role": "user", "parts": [{"type": "text", "content": "1e-05 \\u00e9 \\n"}]}]'
    def thread(n: int) -> Conversation:
        calls = [CallRecord(kind="llm", name="chat", span_id=f"{n}{i}", trace_id="t", start_ns=1, end_ns=2 * 10**6 + 1,
                            input_messages_json=history, metadata={"x": 1e-05, "nan": float("nan"), "big": 10**30})
                 for i in range(3)]
        message = Message(id=f"m{n}", role="assistant", time_ns=5, span_id="a" * 16, trace_id="t", content="é\x00", calls=calls)
        return Conversation(id=f"c{n}", items=[message, CustomEvent(name="e", time_ns=7, span_id="b" * 16, trace_id="t")])
    out = io.StringIO()
    render_json.render([thread(1), thread(2)], out)
    assert out.getvalue() == "".join(json.dumps(conversation_dict(thread(n)), ensure_ascii=False, default=str) + "\n" for n in (1, 2))


def test_values_that_contain_themselves_or_nest_too_deeply_are_shown_as_such() -> None:
    """What ``json.dumps`` refuses (a circular value, nesting past the recursion limit) is
    shown as a short note, as before, not raised into the renderer."""
    circular: dict[str, object] = {}
    circular["self"] = circular
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    assert as_text(circular) == as_text(deep) == "[value nested too deeply to show]"


class _Recorder:
    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)


@given(pieces=st.lists(st.text(max_size=30), max_size=30), limit=st.integers(min_value=1, max_value=80))
def test_batched_writes_reach_the_output_in_order_and_bounded(pieces: list[str], limit: int) -> None:
    """What a renderer writes through ``BatchedWriter`` reaches the output unchanged and in
    order once flushed, and less than ``limit`` characters are ever held back."""
    out = _Recorder()
    batched = BatchedWriter(out, limit)
    written = ""
    for piece in pieces:
        assert batched.write(piece) == len(piece)
        written += piece
        assert len(written) - len("".join(out.writes)) < limit
    batched.flush()
    assert "".join(out.writes) == "".join(pieces)


def test_a_renderer_that_fails_still_writes_what_it_made() -> None:
    """A thread that raises while rendering (a value no renderer can show) leaves the
    threads before it written, as when each line was written at once."""
    good = Conversation(id="good", items=[Message(id="m", role="user", time_ns=1, span_id="a" * 16, trace_id="t", content="hello")])
    bad = Conversation(id="bad", items=[Message(id="n", role="user", time_ns=2, span_id="b" * 16, trace_id="t", content="x", feedback={"thumb": _Unprintable()})])
    for render in (render_terminal.render, render_markdown.render):
        out = io.StringIO()
        with pytest.raises(RuntimeError):
            render([good, bad], out)
        assert "hello" in out.getvalue()


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("cannot be shown")

    __repr__ = __str__


_GENAI = st.one_of(
    st.none(),
    st.just("not json"),
    st.lists(
        st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "tool"]), "parts": st.lists(st.one_of(
            st.fixed_dictionaries({"type": st.just("text"), "content": _TEXT}),
            st.fixed_dictionaries({"type": st.just("tool_call"), "id": st.text(max_size=4), "name": _TEXT, "arguments": st.dictionaries(st.text(max_size=3), st.integers())}),
            st.fixed_dictionaries({"type": st.just("tool_call_response"), "id": st.text(max_size=4), "response": _TEXT}),
        ), max_size=3)}),
        max_size=2,
    ).map(json.dumps),
)


@given(genai=_GENAI, tool_call_id=st.none() | st.text(max_size=4))
def test_messages_read_through_their_slots_render_as_through_their_properties(genai: str | None, tool_call_id: str | None) -> None:
    """JSON, Markdown and HTML read a recorded message's content, tool calls and tool call
    id through its slots (parsed on first read): the output is the same as for the message
    whose properties were read first, for any content, tool calls or unparseable text."""
    def thread(read_first: bool) -> Conversation:
        message = Message.recorded("m", "assistant", 1_700_000_000_123_456_789, "a" * 16, "t", genai, None, tool_call_id)
        if read_first:
            assert (message.content, message.tool_calls, message.tool_call_id) is not None
        return Conversation(id="c", items=[message])
    for renderer in (render_json.render, render_markdown.render, render_html.render):
        fresh, read = io.StringIO(), io.StringIO()
        renderer([thread(False)], fresh)
        renderer([thread(True)], read)
        assert fresh.getvalue() == read.getvalue()
