"""The HTML chat view, opened in headless Chromium, checked for what a person sees.

The page itself has no script. The test appends a probe script to a copy of it, which
measures the laid-out page (bubble order on screen, which bubble the thumbs-down sits
beside) and clicks an LLM call's summary the way a person would, then writes its
findings into the DOM; ``chromium --dump-dom`` returns that DOM.
"""

from __future__ import annotations

import html
import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from fixtures.replay.sdk_conversation import Tracked, record
from otel_lunary.cli import build_parser
from otel_lunary.export.file import OtlpJsonFileExporter
from otel_lunary.replay.command import replay

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

PROBE = """
<script>
const bubbles = [...document.querySelectorAll('li.msg')].map(li => ({
  role: li.dataset.role, id: li.dataset.messageId,
  text: (li.querySelector('.bubble .text') || {textContent: null}).textContent,
  top: li.querySelector('.bubble').getBoundingClientRect().top,
  bubbleRight: li.querySelector('.bubble').getBoundingClientRect().right,
  thumbs: [...li.querySelectorAll('.fb[data-key=thumb]')].map(f => ({icon: f.textContent, left: f.getBoundingClientRect().left})),
}));
const call = document.querySelector('details.call-llm');
const body = call.querySelector('.call-body');
const before = {open: call.open, visible: body.checkVisibility(), height: call.getBoundingClientRect().height};
call.querySelector('summary').click();
const after = {open: call.open, visible: body.checkVisibility(), height: call.getBoundingClientRect().height, text: body.innerText};
const pre = document.createElement('pre');
pre.id = 'probe';
pre.textContent = JSON.stringify({bubbles, before, after, summary: call.querySelector('summary').innerText});
document.body.appendChild(pre);
</script>
"""


def chromium_dom(page: Path, profile: Path) -> str:
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--no-first-run", f"--user-data-dir={profile}", "--dump-dom", page.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tracked, dict[str, Any]]:
    """Record with the SDK, render the page with ``replay --format html``, open it in Chromium."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed here (apt-get install -y chromium); CI installs it")
    tmp = tmp_path_factory.mktemp("html")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OtlpJsonFileExporter(str(tmp / "t.jsonl"))))
    tracked = record(provider)
    provider.shutdown()
    argv = ["replay", str(tmp / "t.jsonl"), "--format", "html", "-c", tracked.conversation_id]
    out = io.StringIO()
    assert replay(build_parser(argv).parse_args(argv), out, io.StringIO()) == 0
    assert "<script" not in out.getvalue() and "http" not in re.sub(r"<style>.*?</style>", "", out.getvalue(), flags=re.S).lower().replace("http-equiv", "")
    page = tmp / "probe.html"
    page.write_text(out.getvalue().replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = chromium_dom(page, tmp / "profile")
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    return tracked, json.loads(html.unescape(found.group(1)))


@pytest.mark.slow
class TestHtmlInChromium:
    def test_bubbles_in_order(self, seen: tuple[Tracked, dict[str, Any]]) -> None:
        """Message bubbles appear top to bottom in the order tracked, with their text."""
        tracked, probe = seen
        bubbles = probe["bubbles"]
        assert [(b["role"], b["text"]) for b in bubbles] == tracked.messages
        tops = [b["top"] for b in bubbles]
        assert tops == sorted(tops) and len(set(tops)) == len(tops)

    def test_thumbs_down_on_the_right_message(self, seen: tuple[Tracked, dict[str, Any]]) -> None:
        """The one 👎 sits beside the answer that got it, and 👍 beside the greeting."""
        tracked, probe = seen
        thumbs = {b["id"]: [t["icon"] for t in b["thumbs"]] for b in probe["bubbles"] if b["thumbs"]}
        expected = {message_id: ["👎" if fb["thumb"] == "down" else "👍"] for message_id, fb in tracked.feedback.items()}
        assert thumbs == expected
        answer = next(b for b in probe["bubbles"] if b["thumbs"] and b["thumbs"][0]["icon"] == "👎")
        assert answer["thumbs"][0]["left"] >= answer["bubbleRight"]

    def test_llm_call_expands(self, seen: tuple[Tracked, dict[str, Any]]) -> None:
        """An LLM call is folded at first and shows its model and prompt once clicked."""
        _, probe = seen
        before, after = probe["before"], probe["after"]
        assert (before["open"], before["visible"], after["open"], after["visible"]) == (False, False, True, True)
        assert after["height"] > before["height"] + 20
        assert "gpt-4o-mini" in probe["summary"] and "tokens" in probe["summary"]
        assert "Hello there" in probe["after"]["text"]
