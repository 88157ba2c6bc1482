"""``otel-lunary rerun`` against the fake OpenAI-compatible model: comparison, tools, retries, errors.

Each test reruns conversations recorded by the real SDK (tests/fixtures/rerun_recordings.py)
through the command body, with the real ``openai`` async client talking to
``otel_lunary._fake_llm`` over HTTP; model names pick the fake's behaviour.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from fixtures.rerun_recordings import Recording
from otel_lunary._fake_llm import ERROR_MODEL, FLAKY_MODEL, LYON_WEATHER_MODEL, SMALL_CONTEXT_MODEL, TERSE_MODEL, FakeLLM
from otel_lunary.cli import build_parser
from otel_lunary.rerun.command import rerun
from helpers.rerun import run_rerun
from helpers.servers import free_port

WEATHER_RESULT = '{"city": "Paris", "temperature_c": 14, "sky": "light rain"}'


@pytest.fixture(autouse=True)
def openai_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def turns(report: dict[str, Any], conversation_id: str) -> list[dict[str, Any]]:
    return next(c for c in report["conversations"] if c["conversation_id"] == conversation_id)["turns"]


def chat_requests(llm: FakeLLM) -> list[dict[str, Any]]:
    return [r for r in llm.requests if "messages" in r]


class TestComparison:
    def test_a_model_that_answers_differently_is_reported_per_turn(self, recording: Recording, llm: FakeLLM) -> None:
        """With the terse model the first answer changes and the other two stay the same; lengths and tokens are compared."""
        status, report, err = run_rerun(recording.path, llm, "-c", recording.demo_id, "--model", TERSE_MODEL)
        assert status == 0, err
        first, weather, thanks = turns(report, recording.demo_id)
        assert [first["status"], weather["status"], thanks["status"]] == ["changed", "same", "same"]
        assert first["new"]["content"] == "Happy to help!"
        assert first["recorded"]["content"].startswith("Happy to help! For three days in Paris")
        assert first["new"]["length"] == len("Happy to help!") < first["recorded"]["length"]
        assert first["new"]["output_tokens"] == 3 and first["recorded"]["output_tokens"] == 25
        assert 0 < first["similarity"] < 1 and thanks["similarity"] == 1
        assert first["new"]["latency_ms"] > 0 and first["recorded"]["latency_ms"] > 0
        assert report["summary"]["changed"] == 1 and report["summary"]["same"] == 2
        assert "3 turns in 1 conversation: 1 changed, 2 same, 0 errors" in err

    def test_the_original_feedback_sits_beside_its_turn(self, recording: Recording, llm: FakeLLM) -> None:
        """The thumbs-down and comment of the recorded weather answer, and the thumbs-up of the last, are in the report."""
        _, report, _ = run_rerun(recording.path, llm, "-c", recording.demo_id, "--model", TERSE_MODEL)
        first, weather, thanks = turns(report, recording.demo_id)
        assert first["feedback"] == {}
        assert weather["feedback"] == {"thumb": "down", "comment": "I asked about my trip, not just today"}
        assert thanks["feedback"] == {"thumb": "up", "rating": 5}

    def test_each_turn_is_asked_with_the_recorded_history(self, recording: Recording, llm: FakeLLM) -> None:
        """The third turn's prompt carries the recorded answers, not the new terse one."""
        run_rerun(recording.path, llm, "-c", recording.demo_id, "--model", TERSE_MODEL)
        last = chat_requests(llm)[-1]["messages"]
        assert [m["role"] for m in last] == ["system", "user", "assistant", "user", "assistant", "tool", "assistant", "user"]
        assert last[2]["content"].startswith("Happy to help! For three days")

    def test_regenerated_history_carries_the_new_answers(self, recording: Recording, llm: FakeLLM) -> None:
        """With --regenerated the later turns are asked with the new model's earlier replies."""
        status, report, _ = run_rerun(recording.path, llm, "-c", recording.demo_id, "--model", TERSE_MODEL, "--regenerated")
        assert status == 0 and report["summary"]["history"] == "regenerated"
        last = chat_requests(llm)[-1]["messages"]
        assert last[2] == {"role": "assistant", "content": "Happy to help!"}
        assert [m["role"] for m in last] == ["system", "user", "assistant", "user", "assistant", "tool", "assistant", "user"]

    def test_a_new_system_prompt_replaces_the_recorded_one(self, recording: Recording, llm: FakeLLM, tmp_path: Path) -> None:
        """--system-prompt FILE is what every request starts with."""
        prompt = tmp_path / "prompt.txt"
        prompt.write_text("You plan whole trips, not just today's weather.", encoding="utf-8")
        run_rerun(recording.path, llm, "-c", recording.demo_id, "--system-prompt", str(prompt), "--temperature", "0.2")
        requests = chat_requests(llm)
        assert requests and all(r["messages"][0] == {"role": "system", "content": prompt.read_text()} for r in requests)
        assert all(r["temperature"] == 0.2 for r in requests)

    def test_fail_on_changed_exits_1_and_same_exits_0(self, recording: Recording, llm: FakeLLM) -> None:
        """--fail-on changed fails the build when a reply changed and passes when none did."""
        assert run_rerun(recording.path, llm, "-c", recording.demo_id, "--model", TERSE_MODEL, "--fail-on", "changed")[0] == 1
        assert run_rerun(recording.path, llm, "-c", recording.demo_id, "--model", "gpt-4o-mini", "--fail-on", "changed")[0] == 0


class TestTools:
    def test_a_recorded_tool_call_is_answered_with_the_recorded_result(self, recording: Recording, llm: FakeLLM) -> None:
        """The model asks for get_weather(Paris) as recorded: it is given the recorded result, and its answer matches."""
        status, report, _ = run_rerun(recording.path, llm, "-c", recording.demo_id, "--model", "gpt-4o-mini")
        assert status == 0
        weather = turns(report, recording.demo_id)[1]
        assert weather["status"] == "same"
        assert weather["new"]["tool_calls"] == [{"name": "get_weather", "arguments": {"city": "Paris"}, "answered": True}]
        follow_up = next(r for r in chat_requests(llm) if r["messages"][-1]["role"] == "tool")
        assert follow_up["messages"][-1]["content"] == WEATHER_RESULT
        offered = [tool["function"]["name"] for tool in follow_up["tools"]]
        assert offered == ["get_weather"]

    def test_a_tool_call_the_recording_never_made_is_reported_not_run(self, recording: Recording, llm: FakeLLM) -> None:
        """get_weather(Lyon) has no recorded result: the turn is changed, the call flagged, and no result is invented."""
        status, report, _ = run_rerun(recording.path, llm, "-c", recording.demo_id, "--model", LYON_WEATHER_MODEL)
        assert status == 0
        weather = turns(report, recording.demo_id)[1]
        assert weather["status"] == "changed"
        assert weather["new"]["tool_calls"] == [{"name": "get_weather", "arguments": {"city": "Lyon"}, "answered": False}]
        assert not any(m["role"] == "tool" and "Lyon" in str(m.get("content")) for r in chat_requests(llm) for m in r["messages"])
        assert len(chat_requests(llm)) == 3  # one request per turn: nothing was sent back for the Lyon call

    def test_tools_file_replaces_the_inferred_definitions(self, recording: Recording, llm: FakeLLM, tmp_path: Path) -> None:
        """--tools FILE offers exactly those definitions."""
        tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather now.", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
        (tmp_path / "tools.json").write_text(json.dumps(tools), encoding="utf-8")
        run_rerun(recording.path, llm, "-c", recording.demo_id, "--model", "gpt-4o-mini", "--tools", str(tmp_path / "tools.json"))
        assert all(r["tools"] == tools for r in chat_requests(llm))


class TestFailures:
    def test_a_500_then_success_is_retried_and_the_turn_compared(self, recording: Recording, llm: FakeLLM) -> None:
        """The flaky model fails each request once: the client retries and every turn completes."""
        status, report, _ = run_rerun(recording.path, llm, "-c", recording.demo_id, "--model", FLAKY_MODEL, "--retries", "2", "--fail-on", "errors")
        assert status == 0
        assert [t["status"] for t in turns(report, recording.demo_id)] == ["same", "same", "same"]
        bodies = [json.dumps(r, sort_keys=True) for r in chat_requests(llm)]
        assert len(bodies) == 8 and all(bodies.count(body) == 2 for body in bodies)  # 4 distinct requests, each sent twice

    def test_without_retries_the_500_is_the_conversations_error(self, recording: Recording, llm: FakeLLM) -> None:
        """--retries 0: the first 500 stops the conversation, and the report says what the server answered."""
        status, report, _ = run_rerun(recording.path, llm, "-c", recording.demo_id, "--model", FLAKY_MODEL, "--retries", "0", "--fail-on", "errors")
        assert status == 1
        conversation = report["conversations"][0]
        assert conversation["error"] == "turn 1: HTTP 500: the flaky fake model fails each request once"
        assert len(conversation["turns"]) == 1 and conversation["turns"][0]["status"] == "error"

    def test_an_always_failing_model_fails_each_conversation_on_its_own(self, recording: Recording, llm: FakeLLM) -> None:
        """Every conversation gets its own error after the retries; none stops another from being tried."""
        ids = recording.quick_ids
        status, report, err = run_rerun(recording.path, llm, "--tag", "quick", "--model", ERROR_MODEL, "--retries", "1", "--fail-on", "errors")
        assert status == 1
        assert sorted(c["conversation_id"] for c in report["conversations"]) == sorted(ids)
        for conversation in report["conversations"]:
            assert conversation["error"] == "turn 1: HTTP 500: the fake model failed on purpose (after 1 retry)"
        assert len(chat_requests(llm)) == 2 * len(ids)  # each tried twice (one retry)
        assert report["summary"]["errors"] == 3 and "3 errors" in err

    def test_a_request_error_in_one_conversation_leaves_the_others_complete(self, recording: Recording, llm: FakeLLM) -> None:
        """small-context rejects the demo's long second turn (HTTP 400, not retried); the quick conversations all pass."""
        options = ["-c", recording.demo_id, *(a for i in recording.quick_ids for a in ("-c", i)), "--model", SMALL_CONTEXT_MODEL]
        status, report, _ = run_rerun(recording.path, llm, *options, "--concurrency", "2")
        assert status == 0
        demo_result = next(c for c in report["conversations"] if c["conversation_id"] == recording.demo_id)
        assert [t["status"] for t in demo_result["turns"]] == ["same", "error"]
        assert demo_result["error"].startswith("turn 2: HTTP 400: This model's maximum context length is 40 words")
        assert demo_result["error"].endswith("(context_length_exceeded)")
        quick = [c for c in report["conversations"] if c["conversation_id"] in recording.quick_ids]
        assert len(quick) == 3 and all(c["error"] is None and [t["status"] for t in c["turns"]] == ["same"] for c in quick)
        assert report["summary"]["not_run_turns"] == 1
        too_long = [r for r in chat_requests(llm) if len(r["messages"]) > 2]
        assert len(too_long) == 1  # a 400 is the request's fault: not retried

    def test_an_unreachable_endpoint_is_a_clear_error(self, recording: Recording) -> None:
        """A closed port: the conversation's error says the endpoint cannot be reached."""
        port = free_port()
        argv = ["rerun", str(recording.path), "-c", recording.quick_ids[0], "--base-url", f"http://127.0.0.1:{port}/v1", "--retries", "0", "--no-record", "--format", "json", "--model", "m"]
        out, err = io.StringIO(), io.StringIO()
        assert rerun(build_parser(argv).parse_args(argv), out, err) == 0
        assert json.loads(out.getvalue())["conversations"][0]["error"].startswith("turn 1: cannot reach the endpoint")
