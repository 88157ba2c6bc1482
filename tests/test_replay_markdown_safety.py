"""Markdown output keeps hostile content as text (issue 13, item 10).

The transcript of a conversation whose content, user ids, tags, event and tool names and
thread id carry raw HTML with an ``onerror`` handler, a ``javascript:`` link and a tracking
image is rendered by a real CommonMark renderer (markdown-it-py) and loaded in headless
Chromium: no handler runs and no link or image is made. A control page rendered from the
raw attack proves the same check catches a handler that does run.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from otel_lunary import attributes as A
from otel_lunary.cli import build_parser
from otel_lunary.replay.command import replay

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HANDLER = "<img src=x onerror=\"document.body.setAttribute('data-pwned', 'yes')\">"
LINK = "[click me](javascript:document.body.setAttribute('data-pwned','link'))"
IMAGE = "![beacon](http://127.0.0.1:9/beacon.png)"
AUTOLINK = "<javascript:alert(1)>"
ATTACK = f"{HANDLER} {LINK} {IMAGE} {AUTOLINK} `{HANDLER}` &lt;b&gt;"
TRACE = "9" * 32


def _kv(key: str, value: Any) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value} if isinstance(value, str) else value}


def _span(span_id: str, name: str, *attributes: dict[str, Any], parent: str | None = None, offset: int = 0) -> dict[str, Any]:
    span: dict[str, Any] = {"traceId": TRACE, "spanId": span_id, "name": name, "startTimeUnixNano": str(1767225600000000000 + offset), "attributes": list(attributes)}
    if parent:
        span["parentSpanId"] = parent
    return span


@pytest.fixture
def transcript(tmp_path: Path) -> str:
    """``replay --format markdown`` of a conversation full of the attack."""
    conversation = "thread " + ATTACK
    parts = [{"type": "text", "content": ATTACK}, {"type": "tool_call", "id": ATTACK, "name": ATTACK, "arguments": {"q": ATTACK}}]
    common = [_kv(A.GEN_AI_CONVERSATION_ID, conversation), _kv(A.USER_ID, ATTACK)]
    spans = [
        _span("0000000000000001", "message user", _kv(A.LUNARY_SPAN_TYPE, "message"), _kv(A.LUNARY_MESSAGE_ROLE, "user"),
              _kv(A.GEN_AI_INPUT_MESSAGES, json.dumps([{"role": "user", "parts": parts}])), *common,
              _kv(A.LUNARY_THREAD_TAGS, {"arrayValue": {"values": [{"stringValue": ATTACK}]}})),
        _span("0000000000000002", "chat", _kv(A.GEN_AI_OPERATION_NAME, "chat"), _kv(A.GEN_AI_REQUEST_MODEL, ATTACK),
              _kv(A.GEN_AI_OUTPUT_MESSAGES, json.dumps([{"role": "assistant", "parts": parts}])), parent="0000000000000001", offset=1),
        _span("0000000000000003", "tool", _kv(A.GEN_AI_OPERATION_NAME, "execute_tool"), _kv(A.GEN_AI_TOOL_NAME, ATTACK),
              _kv(A.GEN_AI_TOOL_CALL_ARGUMENTS, json.dumps({"q": ATTACK})), parent="0000000000000001", offset=2),
        _span("0000000000000004", "event", _kv(A.LUNARY_SPAN_TYPE, "event"), _kv(A.LUNARY_EVENT_NAME, ATTACK),
              _kv(A.LUNARY_METADATA, json.dumps({"k": ATTACK})), *common, offset=3),
        _span("0000000000000005", "feedback", _kv(A.LUNARY_SPAN_TYPE, "feedback"), _kv(A.GEN_AI_CONVERSATION_ID, conversation),
              _kv(A.LUNARY_FEEDBACK, json.dumps({"comment": ATTACK})), parent="0000000000000001", offset=4),
        _span("0000000000000006", "feedback", _kv(A.LUNARY_SPAN_TYPE, "feedback"), _kv(A.GEN_AI_CONVERSATION_ID, conversation),
              _kv(A.LUNARY_FEEDBACK, json.dumps({"comment": ATTACK + "!"})), parent="0000000000000001", offset=5),
    ]
    path = tmp_path / "hostile.jsonl"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}) + "\n", encoding="utf-8")
    args = build_parser(["replay"]).parse_args(["replay", str(path), "--format", "markdown"])
    out, err = io.StringIO(), io.StringIO()
    assert replay(args, out, err) == 0, err.getvalue()
    return out.getvalue()


def _html(markdown: str) -> str:
    return MarkdownIt("commonmark").render(markdown)  # raw HTML allowed, as GitHub-style renderers do


def test_rendered_markdown_has_no_element_link_or_image_from_content(transcript: str) -> None:
    """CommonMark-rendered, the attack is text: no <img>, no <a>, no onerror attribute; the words are all there."""
    html = _html(transcript)
    tags = re.findall(r"<[a-z][^>]*>", html)
    assert [t for t in tags if t.startswith(("<img", "<a ", "<a>")) or "onerror" in t] == [], tags
    assert html.count("onerror") >= 10  # shown as text in content, ids, tags, names, feedback
    assert "javascript:" in html and "beacon.png" in html  # shown, not linked


def test_the_check_catches_a_handler_that_runs(tmp_path: Path) -> None:
    """Control: the same attack rendered raw does make an <img onerror> and a javascript: link."""
    html = _html(ATTACK)
    assert re.search(r"<img[^>]*onerror", html) and "<img src=\"http://127.0.0.1:9/beacon.png\"" in html
    if CHROMIUM is not None:
        assert _loaded(html, tmp_path) == "yes"


def _loaded(html: str, tmp_path: Path) -> str | None:
    """Load ``html`` in headless Chromium; what the page's body says in ``data-pwned`` after handlers ran."""
    page = tmp_path / "page.html"
    page.write_text(f"<!doctype html><html><head><meta charset='utf-8'></head><body>{html}</body></html>", encoding="utf-8")
    profile = tmp_path / "profile"
    command = [
        CHROMIUM or "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--no-first-run", "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
        "--virtual-time-budget=2000", "--dump-dom", page.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    body = result.stdout[result.stdout.find("<body"):]
    marker = 'data-pwned="'
    return body[body.index(marker) + len(marker):].split('"', 1)[0] if marker in body.split(">", 1)[0] else None


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed here (apt-get install -y chromium); CI installs it")
def test_no_handler_runs_in_chromium(transcript: str, tmp_path: Path) -> None:
    """The rendered transcript loaded in a real browser: the onerror handler never runs."""
    assert _loaded(_html(transcript), tmp_path) is None
