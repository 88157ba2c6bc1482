"""Replay's shortcuts give what the plain reading gives: lazily decoded attributes, lazy messages, orjson."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
from fixtures.replay import raw_conversation as raw
from hypothesis import given
from hypothesis import strategies as st

from otel_lunary.export.otlp_json import encode_line
from otel_lunary.replay import render_json
from otel_lunary.replay.assemble import Assembler
from otel_lunary.replay.content import load_json
from otel_lunary.replay.decode import MAX_TIME_NS, decode_attributes, decode_id, otlp_spans
from otel_lunary.replay.display import terminal_safe
from otel_lunary.replay.jsonparse import has_long_number, text_parser
from otel_lunary.replay.histories import Histories
from otel_lunary.replay.model import CallRecord, Message
from otel_lunary.replay.reader import ENV_JSON_PARSER
from otel_lunary.replay.sources import read_sources
from otel_lunary.replay.times import clock, iso, short


def _mutated(line: bytes) -> bytes:
    """The same spans written the way other OTel components write them: base64 ids, snake_case, numbers."""

    def walk(obj: object, depth: int = 0) -> object:
        if isinstance(obj, dict):
            out = {}
            for n, (key, value) in enumerate(obj.items()):
                value = walk(value, depth + 1)
                if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str) and n % 2:
                    value = base64.b64encode(bytes.fromhex(value)).decode()
                if key.endswith("UnixNano") and n % 3 == 0:
                    value = int(value)
                if n % 4 == 1:
                    key = "".join("_" + c.lower() if c.isupper() else c for c in key)
                out[key] = value
            return out
        if isinstance(obj, list):
            return [walk(v, depth + 1) for v in obj]
        return obj

    return json.dumps(walk(json.loads(line))).encode() + b"\n"


ODD_LINE = (
    b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","spanId":"0000000000000001"}, 5,'
    b' {"traceId":"00000000000000000000000000000001","spanId":"0000000000000002","startTimeUnixNano":"x"},'
    b' {"traceId":"00000000000000000000000000000001","spanId":"0000000000000003","attributes":[{"key":"lunary.span.type","value":{"stringValue":"message"}}]},'
    b' {"traceId":"00000000000000000000000000000001","spanId":"0000000000000004","attributes":[{"key":"lunary.span.type","value":{"stringValue":"message"}},'
    b'{"key":"gen_ai.conversation.id","value":{"intValue":"7"}}, 3, {"key":"gen_ai.input.messages","value":{"stringValue":"not json"}}, {"key":5, "value":{"stringValue":"x"}}]}]}]}]}\n'
)


@pytest.fixture(scope="module")
def trace_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    spans = raw.record()
    base = tmp_path_factory.mktemp("fast")
    lines = [encode_line([span]) for span in spans]
    files = {
        "one.jsonl": b"".join(lines),
        "batch.jsonl": encode_line(spans),
        "mutated.jsonl": b"".join(_mutated(line) for line in lines) + ODD_LINE + b"[1]\nnot json\n",
    }
    for name, data in files.items():
        (base / name).write_bytes(data)
    return [base / name for name in files]


def _json_of(assembler: Assembler) -> str:
    out = io.StringIO()
    render_json.render(assembler.finish(), out)
    return out.getvalue()


def test_orjson_and_json_agree(trace_files: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """With orjson installed, replay is the same as with the standard library, problems included."""
    pytest.importorskip("orjson")
    results = []
    for parser in ("json", "orjson"):
        monkeypatch.setenv(ENV_JSON_PARSER, parser)
        for path in trace_files:
            problems: list = []
            assembler = Assembler()
            assembler.extend(read_sources([path], problems.append))
            results.append((parser, path.name, _json_of(assembler), [str(p) for p in problems]))
    half = len(results) // 2
    assert [r[1:] for r in results[:half]] == [r[1:] for r in results[half:]]


def test_attributes_read_as_decoded_entry_by_entry() -> None:
    """Each attribute read from a span's attributes (decoded in one comprehension) is what decoding the list entry by entry gives, odd items included."""
    cases = [
        [{"key": "a", "value": {"stringValue": "x"}}, {"key": "b", "value": {"intValue": "5"}}],
        [{"key": "a", "value": {"stringValue": "x"}}, {"key": "a", "value": {"doubleValue": "bad"}}],
        [{"key": "a"}, {"key": 5, "value": {"stringValue": "x"}}, 3, "s", None, {"key": ["x"], "value": {}}],
        [{"key": "a", "value": "s"}, {"key": "b", "value": None}, {"key": "c", "value": ["stringValue"]}],
        [{"key": "t", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"boolValue": True}]}}}],
        [{"key": "k", "value": {"kvlistValue": {"values": [{"key": "x", "value": {"intValue": 1}}]}}}],
        [{"key": "a", "value": {"stringValue": "x", "intValue": "1"}}],
        [{"key": "a", "value": {"intValue": "1"}}, {"key": "a", "value": {"stringValue": "y"}}, {"key": "b", "value": {"intValue": "z"}}],
    ]
    for items in cases:
        span = {"traceId": "1" * 32, "spanId": "2" * 16, "attributes": items}
        (record,) = otlp_spans({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}, lambda message: None)
        expected = decode_attributes(items)
        for key in ("a", "b", "c", "t", "k", "missing"):
            assert record.attributes.get(key, "absent") == expected.get(key, "absent"), (items, key)
        assert dict(record.attributes.items()) == expected, items


def test_decode_id_accepts_hex_and_base64_only() -> None:
    """Trace and span ids decode from hex (any case) or base64 of the right length; anything else is None."""
    assert decode_id("AB" * 8, 8) == "ab" * 8
    assert decode_id(base64.b64encode(bytes.fromhex("ab" * 8)).decode(), 8) == "ab" * 8
    for bad in ("a b" + "0" * 13, "0" * 16, "０" * 16, "g" * 16, "", None, 12):
        assert decode_id(bad, 8) is None, bad


def test_recorded_message_behaves_like_a_message() -> None:
    """A message built from a span parses its content on first use and is then equal to one built whole."""
    source = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "hi"}, {"type": "tool_call", "id": "c1", "name": "f", "arguments": {"x": 1}}]}])
    from otel_lunary.replay.model import ToolCall

    lazy = Message.recorded("m", "assistant", 1, "s", "t", source, None)
    plain = Message(id="m", role="assistant", time_ns=1, span_id="s", trace_id="t", content="hi", tool_calls=[ToolCall("c1", "f", {"x": 1})])
    assert lazy == plain
    assert repr(lazy) == repr(plain)
    lazy.tags.append("x")
    lazy.content = "changed"
    assert (lazy.tags, lazy.content, lazy.tool_calls[0].name) == (["x"], "changed", "f")
    assert lazy != plain


def _perturbed_lines(seed: int = 7, copies: int = 40) -> bytes:
    """The fixture's spans, each copy bent in ways the raw file path must notice (or may ignore)."""
    import random

    from otel_lunary import attributes as A

    rng = random.Random(seed)
    base = json.loads(encode_line(raw.record()))

    def kv(key: object, value: object) -> dict:
        return {"key": key, "value": value}

    def bend(span: dict) -> None:
        attrs = span.setdefault("attributes", [])
        choice = rng.randrange(30)
        if choice == 0:
            span["traceId"] = span["traceId"].upper()
            span["spanId"] = span["spanId"].upper()
        elif choice == 1:
            span["parentSpanId"] = "0" * 16
        elif choice == 2:
            span["parentSpanId"] = ""
        elif choice == 3 and "parentSpanId" in span:
            span["parent_span_id"] = span.pop("parentSpanId")
        elif choice == 4:
            span["status"] = {"code": 2, "message": "boom"}
        elif choice == 5:
            span["status"] = {"code": "STATUS_CODE_ERROR"}
        elif choice == 6:
            attrs.append(kv(A.LUNARY_SPAN_TYPE, {"intValue": "x"}))
        elif choice == 7:
            attrs.append(kv(A.USER_ID, {"intValue": "12"}))
        elif choice == 8:
            attrs.append(kv("unrelated", {"doubleValue": "bad"}))
        elif choice == 9:
            attrs.append({"key": "no-value"})
        elif choice == 10:
            attrs.append(kv(5, {"stringValue": "x"}))
        elif choice == 11:
            attrs.append(kv(A.LUNARY_THREAD_TAGS, {"stringValue": rng.choice(["a", "b"])}))
        elif choice == 12:
            attrs.append(kv(A.GEN_AI_CONVERSATION_ID, {"intValue": str(rng.randrange(3))}))
        elif choice == 13:
            attrs.append(kv(A.LUNARY_THREAD_METADATA, {"stringValue": json.dumps({"n": rng.randrange(5)})}))
        elif choice == 14:
            attrs.append(kv(A.LUNARY_USER_PROPS, {"stringValue": "not json"}))
        elif choice == 15:
            attrs.append(kv(A.LUNARY_TAGS, {"arrayValue": {"values": [{"stringValue": "t"}, {"intValue": "3"}]}}))
        elif choice == 16:
            attrs.append(kv(A.LUNARY_METADATA, {"kvlistValue": {"values": [kv("k", {"boolValue": True})]}}))
        elif choice == 17:
            span["events"] = [{"name": "exception", "timeUnixNano": rng.choice(["1", "", "x", 5])}]
        elif choice == 18:
            span["startTimeUnixNano"] = rng.choice(["", int(span["startTimeUnixNano"]), None, "x"])
        elif choice == 19:
            span["name"] = rng.choice([None, 7, ""])
        elif choice == 20:
            span["attributes"] = {"not": "a list"}
        elif choice == 21:
            attrs.append(kv(A.LUNARY_THREAD_TAGS, {"arrayValue": {"values": [{"intValue": "y"}]}}))
        elif choice == 22:
            attrs.append(kv(A.LUNARY_MESSAGE_ROLE, {"stringValue": None}))
        elif choice == 23:
            attrs.append(kv(A.LUNARY_FEEDBACK, {"stringValue": "[1]"}))
        elif choice == 24:
            span["endTimeUnixNano"] = rng.choice(["", "0", 3])
        elif choice == 25:
            span["spanId"] = "zz" * 8
        elif choice in (26, 27, 28) and span.get("events"):
            event = span["events"][0]
            if choice == 26:
                event["timeUnixNano"] = rng.choice(["", "x", None, 5, "0"])
            elif choice == 27:
                event.pop(rng.choice(["attributes", "timeUnixNano", "name"]), None)
            else:
                event["attributes"] = [kv(A.GEN_AI_EVALUATION_NAME, rng.choice([{"intValue": "z"}, {"intValue": "4"}, {"stringValue": "other"}]))]

    out = []
    for copy in range(copies):
        request = json.loads(json.dumps(base))
        for resource in request["resourceSpans"]:
            for scope in resource["scopeSpans"]:
                for span in scope["spans"]:
                    span["traceId"] = span["traceId"][:-4] + f"{copy:04x}"
                    span["spanId"] = span["spanId"][:-4] + f"{copy:04x}"
                    if "parentSpanId" in span:
                        span["parentSpanId"] = span["parentSpanId"][:-4] + f"{copy:04x}"
                    bend(span)
        out.append(json.dumps(request).encode() + b"\n")
    return b"".join(out)


def test_bent_spans_are_read_or_reported(tmp_path: Path) -> None:
    """Spans bent every way the decoder checks for: each is replayed or reported, and the rest of the file still replays."""
    path = tmp_path / "bent.jsonl"
    path.write_bytes(_perturbed_lines())
    problems: list = []
    assembler = Assembler()
    assembler.extend(read_sources([path], problems.append))
    conversations = assembler.finish()
    assert problems  # the bending did produce spans that cannot be read
    assert all(str(problem).startswith(f"{path}:") and str(problem).endswith("; skipped") for problem in problems)
    assert sum(len(c.messages) for c in conversations) > len(raw.EXPECTED_MESSAGES) * 20


def test_replay_turns_off_the_collector_and_restores_it(tmp_path: Path) -> None:
    """Reading a file disables the garbage collector and leaves it as it found it, even when closed early."""
    import gc

    from otel_lunary.replay.reader import read_file

    path = tmp_path / "spans.jsonl"
    path.write_bytes(encode_line(raw.record()))
    assert gc.isenabled()
    reader = read_file(path, lambda problem: None)
    next(reader)
    assert not gc.isenabled()
    reader.close()
    assert gc.isenabled()
    gc.disable()
    try:
        assert sum(1 for _ in read_file(path, lambda problem: None)) == len(raw.record())
        assert not gc.isenabled()  # left as it was found
    finally:
        gc.enable()


def test_finish_orders_items_the_same_from_arrival_lists(trace_files: list[Path], tmp_path: Path) -> None:
    """Per-conversation arrival lists sorted by time give the (time, arrival) order of the general join."""
    bent = tmp_path / "bent.jsonl"
    bent.write_bytes(_perturbed_lines(seed=11))
    twice = tmp_path / "twice.jsonl"
    twice.write_bytes(trace_files[0].read_bytes() * 2)  # every message span twice: the general join
    for path in [*trace_files, bent, twice]:
        outputs = []
        for force_general in (False, True):
            assembler = Assembler()
            assembler.extend(read_sources([path], lambda problem: None))
            assembler._replaced |= force_general
            outputs.append(_json_of(assembler))
        assert outputs[0] == outputs[1], path.name


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


@given(value=_JSON_VALUES, ascii_only=st.booleans())
def test_attribute_json_text_parses_as_the_standard_library(value: object, ascii_only: bool) -> None:
    """Histories, content and metadata parse to what ``json.loads`` gives, with orjson too:
    integers outside 64 bits stay exact integers, NaN and lone surrogates still parse."""
    pytest.importorskip("orjson")
    text = json.dumps(value, ensure_ascii=ascii_only)
    expected = json.loads(text)
    parsed = text_parser()(text)
    assert repr(parsed) == repr(expected)
    assert repr(load_json(text)) == repr(expected)


def test_attribute_json_text_parser_falls_back_on_what_orjson_reads_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cases where orjson alone differs: a 20-digit integer, a negative one below -2**63, NaN, a lone surrogate."""
    pytest.importorskip("orjson")
    for text in ('[18446744073709551616]', '{"id": -9223372036854775809}', '[NaN, Infinity]', '"\\ud800"', '[1e400]'):
        assert repr(text_parser()(text)) == repr(json.loads(text)), text
    monkeypatch.setenv(ENV_JSON_PARSER, "json")
    assert text_parser() is json.loads


# times anywhere, and times a few microseconds from a millisecond's or a second's edge
# (where the float ``datetime`` reads could round across it), in this century and later
_NEAR_EDGES = st.builds(
    lambda second, millisecond, offset: max(0, min(MAX_TIME_NS, second * 10**9 + millisecond * 10**6 + offset)),
    st.integers(min_value=0, max_value=MAX_TIME_NS // 10**9) | st.integers(min_value=1_700_000_000, max_value=4_100_000_000),
    st.sampled_from([0, 1, 499, 500, 998, 999]) | st.integers(min_value=0, max_value=999),
    st.integers(min_value=-3000, max_value=3000),
)


@given(ns=st.integers(min_value=0, max_value=MAX_TIME_NS) | _NEAR_EDGES)
def test_transcript_times_are_strftime_times(ns: int) -> None:
    """``clock``, ``short`` and ``iso`` (isoformat, and seconds remembered, for speed) write
    what ``strftime`` on ``datetime.fromtimestamp(ns / 1e9)`` writes, for every time replay accepts."""
    moment = datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)
    assert clock(ns) == moment.strftime("%H:%M:%S")
    assert short(ns) == moment.strftime("%Y-%m-%d %H:%M:%S")
    assert iso(ns) == moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


_SHOWN_AS_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if chr(code) not in "\t\n"}


@given(text=st.text(alphabet=st.characters(max_codepoint=0x3000)) | st.text())
def test_terminal_safe_shows_every_control_character_but_tab_and_newline(text: str) -> None:
    """The search that skips clean text misses no control character: the result is the whole table applied."""
    assert terminal_safe(text) == text.translate(_SHOWN_AS_ESCAPES)


_HISTORY_MESSAGES = st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "tool"]), "parts": st.lists(st.fixed_dictionaries({"type": st.just("text"), "content": st.text(max_size=8)}), max_size=2)})
    | _JSON_VALUES,
    max_size=5,
)
_ODD_HISTORIES = st.sampled_from(["null", "not json", '{"role": "user"}', "[]", "[1, 2]", '[{"role": "a"}, oops]', '[{"role": "a"}] ', "[NaN]"])


@given(
    steps=st.lists(
        st.tuples(_HISTORY_MESSAGES, st.sampled_from([", ", ","]), st.booleans()).map(lambda s: ("grow", *s)) | _ODD_HISTORIES.map(lambda t: ("odd", t)),
        max_size=8,
    )
)
def test_histories_read_as_each_call_alone(steps: list[tuple]) -> None:
    """The Markdown and HTML renderers read a thread's histories through ``Histories``,
    which parses only what a history adds to the one before: each call still gets
    exactly ``call.input_messages``, whether its text extends the previous one or not."""
    histories = Histories()
    grown: list[object] = []
    for step in steps:
        if step[0] == "grow":  # the previous grown history plus some messages, or (restart) these alone
            _, added, separator, restart = step
            grown = list(added) if restart else grown + list(added)
            text = "[" + separator.join(json.dumps(m) for m in grown) + "]"
        else:
            text = step[1]
        call = CallRecord(kind="llm", name="chat", span_id="s", trace_id="t", start_ns=0, end_ns=0, input_messages_json=text)
        assert histories.input_messages(call) == call.input_messages, text


@given(text=st.text(alphabet=st.sampled_from("0123456789") | st.characters(), max_size=60) | st.text(alphabet="0123456789x", min_size=17, max_size=42))
def test_long_number_guard_finds_the_runs_the_regular_expression_finds(text: str) -> None:
    """The byte-level search that sends attribute text with a possibly 64-bit-overflowing
    integer to ``json`` finds a run of 19 ASCII digits exactly when ``[0-9]{19}`` does
    (other digits, surrogates and multi-byte characters included)."""
    assert has_long_number(text) == (re.search("[0-9]{19}", text) is not None)
