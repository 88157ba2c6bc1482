"""Replay's fast paths give what the general code gives: decoding, the file path, lazy messages, orjson."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from pathlib import Path

import pytest

from fixtures.replay import raw_conversation as raw
from otel_lunary.otlp_json import encode_line
from otel_lunary.replay import render_json
from otel_lunary.replay.assemble import Assembler
from otel_lunary.replay.decode import _slow_attributes, decode_attributes, decode_id
from otel_lunary.replay.model import LazyMessage, Message
from otel_lunary.replay.reader import ENV_JSON_PARSER, feed_sources, read_sources


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


def test_file_path_equals_span_record_path(trace_files: list[Path]) -> None:
    """feed_sources (add_request, no SpanRecord) assembles what read_sources + add assembles, problems included."""
    for path in trace_files:
        slow_problems: list = []
        slow = Assembler()
        for span in read_sources([path], slow_problems.append):
            slow.add(span)
        fast_problems: list = []
        fast = Assembler()
        feed_sources([path], fast, fast_problems.append)
        assert _json_of(fast) == _json_of(slow)
        assert fast_problems == slow_problems and fast.problems == slow.problems
        assert fast.spans_read == slow.spans_read


def test_orjson_and_json_agree(trace_files: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """With orjson installed, replay is the same as with the standard library, problems included."""
    pytest.importorskip("orjson")
    results = []
    for parser in ("json", "orjson"):
        monkeypatch.setenv(ENV_JSON_PARSER, parser)
        for path in trace_files:
            problems: list = []
            assembler = Assembler()
            feed_sources([path], assembler, problems.append)
            results.append((parser, path.name, _json_of(assembler), [str(p) for p in problems]))
    half = len(results) // 2
    assert [r[1:] for r in results[:half]] == [r[1:] for r in results[half:]]


def test_decode_attributes_fast_equals_slow() -> None:
    cases = [
        [{"key": "a", "value": {"stringValue": "x"}}, {"key": "b", "value": {"intValue": "5"}}],
        [{"key": "a", "value": {"stringValue": "x"}}, {"key": "a", "value": {"doubleValue": "bad"}}],
        [{"key": "a"}, {"key": 5, "value": {"stringValue": "x"}}, 3, "s", None, {"key": ["x"], "value": {}}],
        [{"key": "a", "value": "s"}, {"key": "b", "value": None}, {"key": "c", "value": ["stringValue"]}],
        [{"key": "t", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"boolValue": True}]}}}],
        [{"key": "k", "value": {"kvlistValue": {"values": [{"key": "x", "value": {"intValue": 1}}]}}}],
        [{"key": "a", "value": {"stringValue": "x", "intValue": "1"}}],
    ]
    for items in cases:
        assert decode_attributes(items) == _slow_attributes(items), items


def test_decode_id_accepts_hex_and_base64_only() -> None:
    assert decode_id("AB" * 8, 8) == "ab" * 8
    assert decode_id(base64.b64encode(bytes.fromhex("ab" * 8)).decode(), 8) == "ab" * 8
    for bad in ("a b" + "0" * 13, "0" * 16, "０" * 16, "g" * 16, "", None, 12):
        assert decode_id(bad, 8) is None, bad


def test_lazy_message_behaves_like_a_message() -> None:
    source = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "hi"}, {"type": "tool_call", "id": "c1", "name": "f", "arguments": {"x": 1}}]}])
    from otel_lunary.replay.content import parse_content

    lazy = LazyMessage.of(id="m", role="assistant", time_ns=1, span_id="s", trace_id="t", content_source=(parse_content, source, None),
                          user_id=None, is_retry=False, truncated=False)
    assert lazy._content_source is not None  # nothing parsed yet
    plain = Message(id="m", role="assistant", time_ns=1, span_id="s", trace_id="t", content="hi",
                    tool_calls=list(parse_content(source, None)[1]))
    assert isinstance(lazy, Message)
    assert dataclasses.asdict(lazy) == dataclasses.asdict(plain)
    assert repr(lazy).replace("LazyMessage", "Message") == repr(plain)
    lazy.tags.append("x")
    lazy.content = "changed"
    assert (lazy.tags, lazy.content, lazy.tool_calls[0].name) == (["x"], "changed", "f")
    copy = dataclasses.replace(lazy, role="user")
    assert (copy.role, copy.content, copy.tags) == ("user", "changed", ["x"])
