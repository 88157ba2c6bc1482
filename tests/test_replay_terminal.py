"""Replay output cannot drive the reader's terminal (issue 13, item 9).

Chat content, user ids, tags, event names and tool names come from end users and models.
Replayed on a real pseudo-terminal, none of their escape sequences (window title, OSC 52
clipboard write, clear-screen, C1 controls, bell, carriage return) reaches it: they are
shown as visible ``\\xNN`` text, and the only escapes written are replay's own colours.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from otel_lunary import attributes as A

TITLE = "\x1b]0;pwned\x07"
CLIPBOARD = "\x1b]52;c;ZXZpbA==\x07"
CLEAR = "\x1b[2J\x1b[H"
C1_CLEAR = "\x9b2J"
OVERWRITE = "\rfake line"
ATTACK = TITLE + CLIPBOARD + CLEAR + C1_CLEAR + OVERWRITE
TRACE = "7" * 32
START = 1767225600000000000


def _kv(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def _span(span_id: str, name: str, *attributes: dict[str, Any], parent: str | None = None, offset: int = 0) -> dict[str, Any]:
    span: dict[str, Any] = {"traceId": TRACE, "spanId": span_id, "name": name, "startTimeUnixNano": str(START + offset), "attributes": list(attributes)}
    if parent:
        span["parentSpanId"] = parent
    return span


def _text(role: str, text: str) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}, {"type": "tool_call", "id": "c" + ATTACK, "name": "tool" + ATTACK, "arguments": {"x": ATTACK}}]}])


@pytest.fixture
def hostile_file(tmp_path: Path) -> Path:
    conversation = "thread" + ATTACK
    common = [_kv(A.GEN_AI_CONVERSATION_ID, conversation), _kv(A.USER_ID, "user" + ATTACK)]
    spans = [
        _span("0000000000000001", "message user", _kv(A.LUNARY_SPAN_TYPE, "message"), _kv(A.LUNARY_MESSAGE_ROLE, "user"),
              _kv(A.GEN_AI_INPUT_MESSAGES, _text("user", "hello" + ATTACK)), *common,
              {"key": A.LUNARY_TAGS, "value": {"arrayValue": {"values": [{"stringValue": "tag" + ATTACK}]}}},
              {"key": A.LUNARY_THREAD_TAGS, "value": {"arrayValue": {"values": [{"stringValue": "thread-tag" + ATTACK}]}}}),
        _span("0000000000000002", "chat", _kv(A.GEN_AI_OPERATION_NAME, "chat"), _kv(A.GEN_AI_REQUEST_MODEL, "model" + ATTACK),
              _kv(A.GEN_AI_OUTPUT_MESSAGES, _text("assistant", "llm says" + ATTACK)), parent="0000000000000001", offset=1),
        _span("0000000000000003", "execute_tool", _kv(A.GEN_AI_OPERATION_NAME, "execute_tool"), _kv(A.GEN_AI_TOOL_NAME, "tool" + ATTACK),
              parent="0000000000000001", offset=2),
        _span("0000000000000004", "event", _kv(A.LUNARY_SPAN_TYPE, "event"), _kv(A.LUNARY_EVENT_NAME, "event" + ATTACK),
              _kv(A.LUNARY_METADATA, json.dumps({"k": ATTACK})), *common, offset=3),
        _span("0000000000000005", "feedback", _kv(A.LUNARY_SPAN_TYPE, "feedback"), _kv(A.GEN_AI_CONVERSATION_ID, conversation),
              _kv(A.LUNARY_FEEDBACK, json.dumps({"comment": ATTACK, "thumb": "up" + ATTACK, "x" + ATTACK: 1})), parent="0000000000000001", offset=4),
    ]
    path = tmp_path / "hostile.jsonl"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}) + "\n", encoding="utf-8")
    return path


def _on_pty(*argv: str) -> bytes:
    """``otel-lunary replay *argv`` with stdout and stderr on a real pseudo-terminal: all it wrote."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("NO_COLOR", None)
    pid, fd = pty.fork()
    if pid == 0:  # the child: replay writes to the terminal as it would for a person
        os.execve(sys.executable, [sys.executable, "-m", "otel_lunary", "replay", *argv], env)
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, b"".join(chunks)
    return b"".join(chunks)


def test_the_attack_is_in_the_recording(hostile_file: Path) -> None:
    """The escapes reach replay intact (JSON output keeps content as recorded): the other tests are not vacuous."""
    result = subprocess.run([sys.executable, "-m", "otel_lunary", "replay", str(hostile_file), "--format", "json"], capture_output=True, text=True, check=True)
    assert ATTACK in json.loads(result.stdout)["items"][0]["content"]


@pytest.mark.parametrize("options", [[], ["--no-details"], ["--list"], ["--format", "markdown"]])
def test_no_escape_sequence_reaches_the_terminal(hostile_file: Path, options: list[str]) -> None:
    """On a pty, the only escapes are replay's own colours (SGR); the injected ones show as text."""
    written = _on_pty(str(hostile_file), *options).decode("utf-8")
    without_colours = re.sub(r"\x1b\[[0-9;]*m", "", written)
    controls = {c for c in without_colours if (ord(c) < 0x20 and c not in "\t\n\r") or 0x7F <= ord(c) < 0xA0}
    assert controls == set(), sorted(controls)
    assert "\r\n" in written and re.search(r"\r(?!\n)", written) is None  # a bare CR would overwrite a line
    if "markdown" in options:  # Markdown escapes the brackets it would read as links
        written = re.sub(r"\\([\[\]&<])", r"\1", written)
    assert "\\x1b]52;c;" in written and "\\x9b2J" in written  # shown, not obeyed
    for visible in ("hello", "user", "tag", "thread"):
        assert visible + "\\x1b]0;pwned" in written, visible
    if not options:  # the full transcript also shows event, tool and model names and feedback
        for visible in ("event", "tool", "model", "llm says"):
            assert visible + "\\x1b]0;pwned" in written, visible
