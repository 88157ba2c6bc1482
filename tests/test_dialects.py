"""Backend dialects: OpenInference and Langfuse copies of the canonical attributes."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_lunary as lunary
from otel_lunary import attributes as a
from otel_lunary.dialects import resolve_dialects, translate
from helpers import REPO

DIALECT_ATTRIBUTES = {
    attr["id"]
    for group in yaml.safe_load((REPO / "conventions" / "model" / "dialects.yaml").read_text())["groups"]
    for attr in group["attributes"]
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


def conversation(dialects: Any) -> list[ReadableSpan]:
    """A thread with a user message, an assistant reply and feedback, through the real SDK."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    lunary.configure(tracer_provider=provider, dialects=dialects)
    try:
        thread = lunary.open_thread(tags=["support"], metadata={"plan": "pro"}, user_id="u-1")
        msg_id = thread.track_message({"role": "user", "content": "Weather in Paris?", "tags": ["faq"]})
        thread.track_message({"role": "assistant", "content": "Rainy, 57F"})
        lunary.track_feedback(msg_id, {"thumb": "up"})
    finally:
        lunary.shutdown()
    return list(memory.get_finished_spans())


def by_role(spans: list[ReadableSpan], role: str) -> ReadableSpan:
    return next(s for s in spans if s.attributes.get(a.LUNARY_MESSAGE_ROLE) == role)


class TestDialectsInSpans:
    def test_off_by_default_no_dialect_attribute_appears(self) -> None:
        """Without dialects no span carries session.id, langfuse.* or any dialect attribute,
        but for the turn span's text, which Phoenix and Langfuse read for the turn."""
        spans = conversation(None)
        assert [span.name for span in spans if span.attributes.get(a.LUNARY_SPAN_TYPE) == "turn"] == ["invoke_workflow turn"]
        for span in spans:
            names = set(span.attributes)
            if span.attributes.get(a.LUNARY_SPAN_TYPE) == "turn":
                assert names & DIALECT_ATTRIBUTES == {a.INPUT_VALUE, a.INPUT_MIME_TYPE, a.OUTPUT_VALUE, a.OUTPUT_MIME_TYPE}
                continue
            assert not names & DIALECT_ATTRIBUTES
            assert not [n for n in names if n.startswith(a.LANGFUSE_TRACE_METADATA)]

    def test_openinference_message_spans_carry_session_text_and_kind(self) -> None:
        """With openinference on, messages carry session.id, their text and kind CHAIN."""
        spans = conversation("openinference")
        user, assistant = by_role(spans, "user"), by_role(spans, "assistant")
        thread_id = user.attributes[a.GEN_AI_CONVERSATION_ID]
        assert user.attributes[a.SESSION_ID] == assistant.attributes[a.SESSION_ID] == thread_id
        assert (user.attributes[a.INPUT_VALUE], user.attributes[a.INPUT_MIME_TYPE]) == ("Weather in Paris?", "text/plain")
        assert assistant.attributes[a.OUTPUT_VALUE] == "Rainy, 57F"
        assert user.attributes[a.OPENINFERENCE_SPAN_KIND] == "CHAIN"
        assert tuple(user.attributes[a.TAG_TAGS]) == ("support", "faq")
        feedback = next(s for s in spans if s.attributes.get(a.LUNARY_SPAN_TYPE) == "feedback")
        assert feedback.attributes[a.OPENINFERENCE_SPAN_KIND] == "EVALUATOR"

    def test_langfuse_spans_carry_session_user_tags_metadata(self) -> None:
        """With langfuse on, spans carry langfuse.session.id, user, tags and metadata keys."""
        user = by_role(conversation(["langfuse"]), "user")
        assert user.attributes[a.LANGFUSE_SESSION_ID] == user.attributes[a.GEN_AI_CONVERSATION_ID]
        assert user.attributes[a.LANGFUSE_USER_ID] == "u-1"
        assert tuple(user.attributes[a.LANGFUSE_TRACE_TAGS]) == ("support", "faq")
        assert user.attributes[f"{a.LANGFUSE_TRACE_METADATA}.plan"] == "pro"
        assert a.SESSION_ID not in user.attributes


class TestTranslate:
    def test_llm_span_content_is_the_messages_json(self) -> None:
        """On an LLM span input/output values are the GenAI messages JSON, with model and tokens."""
        messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}])
        extra = translate(
            frozenset({"openinference"}),
            {a.GEN_AI_OPERATION_NAME: "chat", a.GEN_AI_REQUEST_MODEL: "gpt-4o", a.GEN_AI_INPUT_MESSAGES: messages,
             a.GEN_AI_USAGE_INPUT_TOKENS: 3, a.GEN_AI_USAGE_OUTPUT_TOKENS: 4},
        )  # fmt: skip
        assert extra[a.OPENINFERENCE_SPAN_KIND] == "LLM"
        assert (extra[a.INPUT_VALUE], extra[a.INPUT_MIME_TYPE]) == (messages, "application/json")
        assert (extra[a.LLM_MODEL_NAME], extra[a.LLM_TOKEN_COUNT_PROMPT], extra[a.LLM_TOKEN_COUNT_TOTAL]) == ("gpt-4o", 3, 7)

    @pytest.mark.parametrize(("operation", "kind"), [("invoke_agent", "AGENT"), ("execute_tool", "TOOL")])
    def test_agent_and_tool_kinds(self, operation: str, kind: str) -> None:
        """invoke_agent maps to AGENT and execute_tool to TOOL."""
        assert translate(frozenset({"openinference"}), {a.GEN_AI_OPERATION_NAME: operation})[a.OPENINFERENCE_SPAN_KIND] == kind

    def test_tool_message_text_is_its_response(self) -> None:
        """A tool message's input.value is the tool's response text."""
        messages = json.dumps([{"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "57F"}]}])
        extra = translate(frozenset({"openinference"}), {a.LUNARY_SPAN_TYPE: "message", a.GEN_AI_INPUT_MESSAGES: messages})
        assert extra[a.INPUT_VALUE] == "57F"

    def test_no_dialect_returns_an_empty_dict(self) -> None:
        """With no dialect on, translate adds nothing."""
        assert translate(frozenset(), {a.GEN_AI_CONVERSATION_ID: "t"}) == {}

    @given(st.dictionaries(st.sampled_from(sorted(vars(a)[n] for n in vars(a) if n.isupper() and isinstance(vars(a)[n], str))),
                           st.one_of(st.none(), st.text(), st.integers(), st.lists(st.text()), st.floats())))  # fmt: skip
    def test_translate_never_raises(self, attributes: dict[str, Any]) -> None:
        """Whatever the attribute values, translate returns a dict and never raises."""
        assert isinstance(translate(frozenset({"openinference", "langfuse"}), attributes), dict)


class TestResolveDialects:
    def test_explicit_beats_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """configure(dialects=...) wins over OTEL_LUNARY_DIALECTS."""
        monkeypatch.setenv("OTEL_LUNARY_DIALECTS", "langfuse")
        assert resolve_dialects("openinference") == {"openinference"}

    def test_env_is_a_comma_separated_list(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """OTEL_LUNARY_DIALECTS=openinference,langfuse turns both on."""
        monkeypatch.setenv("OTEL_LUNARY_DIALECTS", " OpenInference , langfuse ")
        assert resolve_dialects(None) == {"openinference", "langfuse"}

    def test_unknown_explicit_dialect_raises(self) -> None:
        """An unknown dialect passed to configure is a ValueError."""
        with pytest.raises(ValueError, match="mlflow"):
            resolve_dialects(["openinference", "mlflow"])

    def test_unknown_env_dialect_warns_and_is_ignored(self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
        """An unknown name in OTEL_LUNARY_DIALECTS logs a warning; the known ones apply."""
        monkeypatch.setenv("OTEL_LUNARY_DIALECTS", "langfuse,mlflow")
        assert resolve_dialects(None) == {"langfuse"}
        assert "OTEL_LUNARY_DIALECTS" in caplog.text

