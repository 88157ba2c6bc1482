"""The rerun's HTML report, opened in headless Chromium, checked for what a person sees.

The page has no script of its own. The test appends a probe script to a copy, which
reads the laid-out page (each turn's status, the recorded and new replies and where
they sit on screen, what markup the hostile texts produced) and writes its findings
into the DOM; ``chromium --dump-dom`` returns that DOM.
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

import otel_lunary as lunary
from fixtures.rerun_recordings import HOSTILE_QUESTION, HOSTILE_REPLY, Recording, record_all
from otel_lunary._fake_llm import TERSE_MODEL, FakeLLM
from otel_lunary.cli import build_parser
from otel_lunary.rerun.command import rerun

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

PROBE = """
<script>
const box = el => { const r = el.getBoundingClientRect(); return {left: r.left, right: r.right, top: r.top, width: r.width}; };
const turns = [...document.querySelectorAll('article.turn')].map(t => ({
  conversation: t.closest('section.conversation').dataset.conversationId,
  index: Number(t.dataset.turn), status: t.querySelector('.status').textContent,
  badge: getComputedStyle(t.querySelector('.status')).backgroundColor,
  question: (t.querySelector('.question') || {textContent: null}).textContent,
  recorded: t.querySelector('.side.recorded .reply').textContent,
  fresh: t.querySelector('.side.new .reply').textContent,
  recordedBox: box(t.querySelector('.side.recorded')), newBox: box(t.querySelector('.side.new')),
  feedback: (t.querySelector('.side.recorded .feedback') || {textContent: ''}).textContent,
  facts: [...t.querySelectorAll('.side.new ul.facts li')].map(li => li.textContent),
}));
const pre = document.createElement('pre');
pre.id = 'probe';
pre.textContent = JSON.stringify({
  turns, title: document.title, summary: document.querySelector('.summary').textContent,
  images: document.querySelectorAll('img').length, scripts: document.scripts.length,
  bold: document.querySelectorAll('main b, main i').length, width: document.documentElement.clientWidth,
});
document.body.appendChild(pre);
</script>
"""


def chromium_dom(page: Path, profile: Path) -> str:
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
        "--disable-component-update", "--disable-sync", "--window-size=1280,900", f"--user-data-dir={profile}",
        "--dump-dom", page.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> tuple[Recording, str, dict[str, Any]]:
    """Rerun the demo and the hostile conversation with the terse model, write the page, open it in Chromium."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed here (apt-get install -y chromium); CI installs it")
    tmp = tmp_path_factory.mktemp("rerun-html")
    recording = record_all(tmp / "recorded")
    argv = ["rerun", str(recording.path), "-c", recording.demo_id, "-c", recording.hostile_id, "--model", TERSE_MODEL, "--format", "html", "--no-record"]
    out, err = io.StringIO(), io.StringIO()
    with FakeLLM() as llm, pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_API_KEY", "test-key")
        patch.setenv("OPENAI_BASE_URL", llm.base_url)
        try:
            assert rerun(build_parser(argv).parse_args(argv), out, err) == 0, err.getvalue()
        finally:
            lunary.shutdown()
    page_text = out.getvalue()
    page = tmp / "probe.html"
    page.write_text(page_text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    found = re.search(r'<pre id="probe">(.*?)</pre>', chromium_dom(page, tmp / "profile"), re.S)
    assert found, "the probe did not run"
    return recording, page_text, json.loads(html.unescape(found.group(1)))


class TestRerunPage:
    def test_the_page_is_self_contained(self, seen: tuple[Recording, str, dict[str, Any]]) -> None:
        """No script and no link to anything outside the file."""
        _, page, _ = seen
        assert "<script" not in page and "<link" not in page
        assert not re.search(r"<\w+[^>]*\s(?:src|href)=", page)

    def test_recorded_and_new_replies_sit_side_by_side(self, seen: tuple[Recording, str, dict[str, Any]]) -> None:
        """In every turn the recorded reply is on the left and the new one on the right, at the same height."""
        _, _, probe = seen
        assert probe["turns"]
        for turn in probe["turns"]:
            recorded, new = turn["recordedBox"], turn["newBox"]
            assert recorded["right"] <= new["left"] and abs(recorded["top"] - new["top"]) < 1
            assert recorded["width"] > probe["width"] / 4 and new["width"] > probe["width"] / 4

    def test_each_turn_shows_its_status_texts_and_feedback(self, seen: tuple[Recording, str, dict[str, Any]]) -> None:
        """The demo's three turns: changed (terse answer beside the long one), same, same; the thumbs-down by its answer."""
        recording, _, probe = seen
        demo = [t for t in probe["turns"] if t["conversation"] == recording.demo_id]
        assert [(t["index"], t["status"]) for t in demo] == [(1, "changed"), (2, "same"), (3, "same")]
        assert demo[0]["fresh"] == "Happy to help!" and demo[0]["recorded"].startswith("Happy to help! For three days")
        assert demo[0]["badge"] != demo[1]["badge"]  # changed and same do not look alike
        assert demo[1]["question"] == "What's the weather like in Paris today?"
        assert "👎" in demo[1]["feedback"] and "I asked about my trip" in demo[1]["feedback"]
        assert 'tool get_weather({"city": "Paris"})' in demo[1]["facts"]
        assert probe["summary"].startswith("rerun: 4 turns in 2 conversations: 2 changed, 2 same, 0 errors")

    def test_hostile_texts_are_shown_as_text(self, seen: tuple[Recording, str, dict[str, Any]]) -> None:
        """Markup in questions, replies and feedback is displayed literally: no element, no script ran."""
        recording, _, probe = seen
        (hostile,) = [t for t in probe["turns"] if t["conversation"] == recording.hostile_id]
        assert hostile["question"] == HOSTILE_QUESTION
        assert hostile["recorded"] == HOSTILE_REPLY
        assert hostile["fresh"] == f"You said: {HOSTILE_QUESTION}"
        assert "<i>not</i> what I asked" in hostile["feedback"]
        assert probe["images"] == 0 and probe["bold"] == 0 and probe["scripts"] == 1  # the probe only
        assert probe["title"] == "otel-lunary rerun"
