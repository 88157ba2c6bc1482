"""The rerun recorded through otel-lunary, and which conversations a rerun selects.

The rerun is recorded with the embedded file exporter; the tests read that file the way
users do (``otel-lunary replay``'s assembler) and, for span links, as the OTLP JSON it is.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from fixtures.rerun_recordings import Recording
from otel_lunary._fake_llm import TERSE_MODEL, FakeLLM
from otel_lunary.attributes import GEN_AI_CONVERSATION_ID, LUNARY_MESSAGE_ID, LUNARY_RERUN_ORIGINAL_MESSAGE_ID
from otel_lunary.replay import Conversation, assemble_file
from helpers.rerun import run_rerun


@pytest.fixture(autouse=True)
def openai_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")


def otlp_spans(path: Path) -> list[dict[str, Any]]:
    """Every span in an OTLP JSON Lines file, attributes flattened to plain values."""
    spans = []
    for line in path.read_text(encoding="utf-8").splitlines():
        for resource in json.loads(line)["resourceSpans"]:
            for scope in resource["scopeSpans"]:
                for span in scope["spans"]:
                    values = {a["key"]: next(iter(a["value"].values())) for a in span.get("attributes", [])}
                    spans.append({**span, "attributes": values})
    return spans


@pytest.fixture(scope="module")
def rerun_of_demo(recording: Recording, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """The demo conversation rerun with the terse model, recorded into its own file."""
    record_to = tmp_path_factory.mktemp("rerun") / "rerun.jsonl"
    with FakeLLM() as llm, pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_API_KEY", "test-key")
        status, report, err = run_rerun(recording.path, llm, "-c", recording.demo_id, "--model", TERSE_MODEL, record_to=record_to)
    assert status == 0, err
    return report, record_to


def by_id(path: Path) -> dict[str, Conversation]:
    return {c.id: c for c in assemble_file(path)}


class TestRecordedRerun:
    def test_the_rerun_replays_as_a_conversation_with_the_new_replies(self, recording: Recording, rerun_of_demo: tuple[dict[str, Any], Path]) -> None:
        """The rerun thread holds the recorded questions, the new answers, the recorded tool result and the new LLM calls."""
        report, path = rerun_of_demo
        rerun_id = report["conversations"][0]["rerun_conversation_id"]
        conversation = by_id(path)[rerun_id]
        assert conversation.tags == ["rerun"]
        assert conversation.metadata == {"rerun_of": recording.demo_id, "rerun_model": TERSE_MODEL, "rerun_history": "recorded"}
        assert conversation.users == ["demo-user"]
        shown = [(m.role, m.content) for m in conversation.messages]
        assert shown[:3] == [
            ("system", "You are a friendly weather assistant."),
            ("user", "Hi! Can you help me plan my trip to Paris?"),
            ("assistant", "Happy to help!"),
        ]
        assert [role for role, _ in shown] == ["system", "user", "assistant", "user", "assistant", "tool", "assistant", "user", "assistant"]
        assert shown[5] == ("tool", '{"city": "Paris", "temperature_c": 14, "sky": "light rain"}')
        calls = [call for m in conversation.messages for call in m.calls if call.kind == "llm"]
        assert [call.model for call in calls] == [f"{TERSE_MODEL}-fake"] * 4
        assert report["conversations"][0]["turns"][0]["new"]["message_id"] == conversation.messages[2].id

    def test_every_rerun_message_links_to_its_original(self, recording: Recording, rerun_of_demo: tuple[dict[str, Any], Path]) -> None:
        """Each message span names the original message and links to its span (trace and span id of the traceparent)."""
        report, path = rerun_of_demo
        rerun_id = report["conversations"][0]["rerun_conversation_id"]
        original = by_id(recording.path)[recording.demo_id]
        original_ids = [m.id for m in original.messages]
        messages = [s for s in otlp_spans(path) if s["attributes"].get(GEN_AI_CONVERSATION_ID) == rerun_id and LUNARY_MESSAGE_ID in s["attributes"]]
        assert len(messages) == 9
        named = [s["attributes"][LUNARY_RERUN_ORIGINAL_MESSAGE_ID] for s in messages]
        # system, user, assistant, user, assistant asking for the tool, tool, answer, user, assistant
        assert named == original_ids
        for span, original_id in zip(messages, named):
            _, trace_id, span_id, _ = original_id.split("-")
            assert [(link["traceId"], link["spanId"]) for link in span["links"]] == [(trace_id, span_id)]

    def test_a_rerun_is_not_rerun_again_unless_asked(self, recording: Recording, rerun_of_demo: tuple[dict[str, Any], Path], tmp_path: Path, llm: FakeLLM) -> None:
        """With the rerun in the same file, a selection skips rerun threads; --include-reruns or -c takes them."""
        report, path = rerun_of_demo
        rerun_id = report["conversations"][0]["rerun_conversation_id"]
        both = tmp_path / "both.jsonl"
        shutil.copyfile(recording.path, both)
        with both.open("a", encoding="utf-8") as out:
            out.write(path.read_text(encoding="utf-8"))
        _, selected, _ = run_rerun(both, llm, "--user", "demo-user")
        assert [c["conversation_id"] for c in selected["conversations"]] == [recording.demo_id]
        _, selected, _ = run_rerun(both, llm, "--user", "demo-user", "--include-reruns")
        assert [c["conversation_id"] for c in selected["conversations"]] == [recording.demo_id, rerun_id]
        _, selected, _ = run_rerun(both, llm, "-c", rerun_id)
        assert [c["conversation_id"] for c in selected["conversations"]] == [rerun_id]


class TestSelection:
    def test_feedback_filter_picks_the_thumbs_down_conversation(self, recording: Recording, llm: FakeLLM) -> None:
        """--feedback thumb=down selects the demo conversation only."""
        _, report, _ = run_rerun(recording.path, llm, "--feedback", "thumb=down", "--model", "gpt-4o-mini")
        assert [c["conversation_id"] for c in report["conversations"]] == [recording.demo_id]

    def test_user_tag_and_limit(self, recording: Recording, llm: FakeLLM) -> None:
        """--user, --tag and --limit (the most recent N) narrow the selection as in replay."""
        _, report, _ = run_rerun(recording.path, llm, "--user", "q2", "--model", "m")
        assert [c["conversation_id"] for c in report["conversations"]] == [recording.quick_ids[1]]
        _, report, _ = run_rerun(recording.path, llm, "--tag", "quick", "--limit", "2", "--model", "m")
        assert [c["conversation_id"] for c in report["conversations"]] == recording.quick_ids[1:]

    def test_nothing_matching_is_said_and_exits_0(self, recording: Recording, llm: FakeLLM) -> None:
        """A selection that matches nothing reruns nothing, says so, and sends no request."""
        status, report, err = run_rerun(recording.path, llm, "--tag", "no-such-tag")
        assert status == 0 and report["conversations"] == []
        assert "no conversation with an assistant reply matched" in err
        assert llm.requests == []

    def test_without_model_each_conversation_uses_its_recorded_one(self, recording: Recording, llm: FakeLLM) -> None:
        """No --model: the model the recording's LLM calls name is asked; a recording without any is an error of its own."""
        _, report, _ = run_rerun(recording.path, llm, "-c", recording.quick_ids[0], "-c", recording.hostile_id)
        results = {c["conversation_id"]: c for c in report["conversations"]}
        assert results[recording.quick_ids[0]]["model"] == "gpt-4o-mini-fake"
        assert [r["model"] for r in llm.requests] == ["gpt-4o-mini-fake"]
        assert results[recording.hostile_id]["error"] == "the recording names no model; pass --model"
