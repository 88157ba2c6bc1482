"""One bad span never crashes replay: it is reported as ``file:line: why; skipped`` and the rest replays.

Each case is a line a careless or hostile producer can write (issue 13, item 11), put between
two good lines of the fixture conversation; every output format must still come out.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fixtures.replay import raw_conversation as raw
from otel_lunary import attributes as A
from otel_lunary.cli import build_parser
from otel_lunary.export.otlp_json import encode_line
from otel_lunary.replay.command import FORMATS, replay

CONVERSATION = "hostile-thread"
TRACE = "5" * 32


def _kv(key: str, value: Any) -> dict[str, Any]:
    return {"key": key, "value": value}


def _message(span_id: str, *extra: dict[str, Any], **fields: Any) -> dict[str, Any]:
    span = {
        "traceId": TRACE,
        "spanId": span_id,
        "name": "message user",
        "startTimeUnixNano": "1767225600000000000",
        "endTimeUnixNano": "1767225600000000000",
        "attributes": [
            _kv(A.LUNARY_SPAN_TYPE, {"stringValue": "message"}),
            _kv(A.GEN_AI_CONVERSATION_ID, {"stringValue": CONVERSATION}),
            _kv(A.LUNARY_MESSAGE_ROLE, {"stringValue": "user"}),
            _kv(A.GEN_AI_INPUT_MESSAGES, {"stringValue": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "still here"}]}])}),
            *extra,
        ],
    }
    span.update(fields)
    return span


def _line(*spans: dict[str, Any]) -> bytes:
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": list(spans)}]}]}).encode() + b"\n"


def _nested_line(depth: int) -> bytes:
    """A message whose thread tags are an ``arrayValue`` nested ``depth`` times (3 JSON levels each)."""
    placeholder = "NESTED-VALUE"
    line = _line(_message("0000000000000b01", _kv(A.LUNARY_THREAD_TAGS, placeholder)))
    nested = '{"arrayValue":{"values":[' * depth + '{"stringValue":"deep"}' + "]}}" * depth
    return line.replace(json.dumps(placeholder).encode(), nested.encode())


def _feedback(span_id: str, feedback: Any) -> dict[str, Any]:
    return {
        "traceId": TRACE,
        "spanId": span_id,
        "parentSpanId": "0000000000000a01",
        "name": "feedback",
        "startTimeUnixNano": "1767225601000000000",
        "attributes": [
            _kv(A.LUNARY_SPAN_TYPE, {"stringValue": "feedback"}),
            _kv(A.GEN_AI_CONVERSATION_ID, {"stringValue": CONVERSATION}),
            _kv(A.LUNARY_FEEDBACK, {"stringValue": json.dumps(feedback)}),
        ],
    }


def _call(span_id: str, parent: str) -> dict[str, Any]:
    return {
        "traceId": TRACE,
        "spanId": span_id,
        "parentSpanId": parent,
        "name": "chat",
        "startTimeUnixNano": "1767225600500000000",
        "attributes": [_kv(A.GEN_AI_OPERATION_NAME, {"stringValue": "chat"})],
    }


def _nested_calls(count: int) -> bytes:
    spans = []
    parent = "0000000000000a01"
    for n in range(count):
        span_id = f"{0xB000 + n:016x}"
        spans.append(_call(span_id, parent))
        parent = span_id
    return _line(*spans)


HOSTILE = {
    "line nested past 1000 levels": b'{"resourceSpans":' + b"[" * 5000 + b"]" * 5000 + b"}\n",
    "attribute nested 330 levels": _nested_line(330),
    "metadata JSON nested 990 levels": _line(_message("0000000000000b02", _kv(A.LUNARY_METADATA, {"stringValue": "[" * 990 + "]" * 990}))),
    "status.code as a list": _line(_message("0000000000000b03", status={"code": [2]})),
    "arrayValue as a string": _line(_message("0000000000000b04", _kv(A.LUNARY_TAGS, {"arrayValue": "tag"}))),
    "kvlistValue as a number": _line(_message("0000000000000b05", _kv(A.LUNARY_USER_PROPS, {"kvlistValue": 5}))),
    "thumb as a list": _line(_feedback("0000000000000b06", {"thumb": ["up"]})),
    "parts as a number": _line(_message("0000000000000b07", _kv(A.GEN_AI_INPUT_MESSAGES, {"stringValue": json.dumps([{"role": "user", "parts": 5}])}))),
    "1500 nested calls": _nested_calls(1500),
    "year 9999 start time": _line(_message("0000000000000b08", startTimeUnixNano=str(253402300800 * 10**9 + 1))),
    "negative time": _line(_message("0000000000000b09", startTimeUnixNano="-5")),
}


@pytest.fixture
def good_lines() -> bytes:
    return encode_line(raw.record())


def run(*argv: str) -> tuple[int, str, str]:
    args = build_parser(["replay", *argv]).parse_args(["replay", *argv])
    out, err = io.StringIO(), io.StringIO()
    return replay(args, out, err), out.getvalue(), err.getvalue()


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("output", [*FORMATS, "list"])
def test_one_bad_span_is_skipped_and_the_rest_replays(case: str, output: str, good_lines: bytes, tmp_path: Path) -> None:
    """A hostile line between good ones: exit 0, every format written, the good conversation whole."""
    path = tmp_path / "traces.jsonl"
    path.write_bytes(good_lines + _line(_message("0000000000000a01")) + HOSTILE[case] + good_lines)
    options = ["--list"] if output == "list" else ["--format", output]
    status, out, err = run(str(path), *options)
    assert status == 0, err
    assert "Weather in Paris?" in out  # the good conversation, in every format
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("line nested past 1000 levels", "nested too deeply"),
        ("status.code as a list", "malformed status"),
        ("year 9999 start time", "time out of range"),
        ("negative time", "time out of range"),
    ],
)
def test_unusable_span_is_reported_with_file_and_line(case: str, reason: str, good_lines: bytes, tmp_path: Path) -> None:
    """What cannot be replayed is named with its file, line and why, and marked skipped."""
    path = tmp_path / "traces.jsonl"
    path.write_bytes(good_lines + HOSTILE[case])
    _, _, err = run(str(path), "--format", "json")
    assert f"{path}:2: " in err and reason in err and "; skipped" in err, err


def test_deep_values_read_as_absent_not_as_a_crash(tmp_path: Path) -> None:
    """A value too deep to decode is left out; the message it is on still replays."""
    path = tmp_path / "traces.jsonl"
    path.write_bytes(HOSTILE["attribute nested 330 levels"] + HOSTILE["arrayValue as a string"])
    status, out, _ = run(str(path), "--format", "json")
    (conversation,) = [json.loads(line) for line in out.splitlines()]
    assert status == 0 and [item["content"] for item in conversation["items"]] == ["still here", "still here"]


_ANY_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["stringValue", "intValue", "arrayValue", "kvlistValue", "values", "key", "value", "code"]), inner, max_size=3),
    max_leaves=12,
)
_FIELDS = ["traceId", "spanId", "parentSpanId", "name", "startTimeUnixNano", "endTimeUnixNano", "attributes", "events", "status"]
_KEYS = [A.LUNARY_SPAN_TYPE, A.GEN_AI_CONVERSATION_ID, A.LUNARY_MESSAGE_ROLE, A.GEN_AI_INPUT_MESSAGES, A.LUNARY_FEEDBACK, A.LUNARY_METADATA, A.GEN_AI_OPERATION_NAME, A.USER_ID]


@given(
    overrides=st.dictionaries(st.sampled_from(_FIELDS), _ANY_VALUE, max_size=3),
    attributes=st.lists(st.tuples(st.sampled_from(_KEYS), _ANY_VALUE), max_size=4),
)
def test_hostile_otlp_json_never_crashes_replay(overrides: dict[str, Any], attributes: list[tuple[str, Any]]) -> None:
    """Any JSON in any OTLP field or attribute value: replay renders every format and exits 0."""
    import tempfile

    span = _message("0000000000000c01", *(_kv(key, value) for key, value in attributes), **overrides)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "traces.jsonl"
        path.write_bytes(_line(_message("0000000000000a01")) + _line(span))
        for options in (["--format", "terminal"], ["--format", "json"], ["--format", "markdown"], ["--format", "html"], ["--format", "openai"], ["--list"]):
            status, out, _ = run(str(path), *options)
            assert status == 0 and "still here" in out
