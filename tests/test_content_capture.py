"""What message content leaves the process: the capture switch, redaction, truncation.

The strongest check reads the bytes the real OTLP/HTTP exporter sent to a sink on
127.0.0.1: a secret that must not leave the process must not be in them.
"""

from __future__ import annotations

import json

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from helpers.servers import OtlpSink

import otel_lunary as lunary
from otel_lunary.attributes import (
    GEN_AI_EVALUATION_EXPLANATION,
    GEN_AI_TOOL_CALL_ARGUMENTS,
    GEN_AI_TOOL_CALL_RESULT,
    LUNARY_CONTENT_TRUNCATED,
    LUNARY_FEEDBACK,
    LUNARY_MESSAGE_CONTENT,
    LUNARY_MESSAGE_ROLE,
    LUNARY_MESSAGE_TOOL_CALL_ID,
)

SECRET = "my card is 4111-1111-1111-1111"
CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


def record_conversation(sink: OtlpSink, **settings) -> bytes:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{sink.endpoint}/v1/traces")))
    lunary.configure(tracer_provider=provider, **settings)
    thread = lunary.open_thread()
    thread.track_message({"role": "user", "content": SECRET})
    msg_id = thread.track_message({"role": "assistant", "content": f"I saw {SECRET}"})
    thread.track_message({"role": "tool", "tool_call_id": "call_1", "content": SECRET})
    lunary.track_feedback(msg_id, {"thumb": "down", "comment": SECRET})
    provider.shutdown()
    lunary.shutdown()
    return b"".join(sink.bodies)


class TestWhatLeavesTheProcess:
    def test_default_captures_content(self, sink, monkeypatch):
        """By default the text is exported, since replay needs it."""
        monkeypatch.delenv(CAPTURE_ENV, raising=False)
        assert SECRET.encode() in record_conversation(sink)

    @pytest.mark.parametrize("value", ["false", "NO_CONTENT", "EVENT_ONLY"])
    def test_capture_off_by_env_sends_no_text(self, sink, monkeypatch, value):
        """With the GenAI env var off, no byte of the content reaches the collector."""
        monkeypatch.setenv(CAPTURE_ENV, value)
        sent = record_conversation(sink)
        assert sent, "spans were exported"
        assert b"4111" not in sent

    def test_redaction_hook_applies_everywhere(self, sink, monkeypatch):
        """A redaction hook rewrites every piece of content, feedback comments included."""
        monkeypatch.delenv(CAPTURE_ENV, raising=False)
        sent = record_conversation(sink, redact=lambda text: text.replace("4111-1111-1111-1111", "[card]"))
        assert b"4111" not in sent
        assert b"[card]" in sent

    def test_failing_redaction_hook_never_leaks(self, sink, monkeypatch):
        """If the hook raises, the content is replaced, not sent raw."""
        monkeypatch.delenv(CAPTURE_ENV, raising=False)

        def broken(text):
            raise RuntimeError("bug in hook")

        sent = record_conversation(sink, redact=broken)
        assert b"4111" not in sent
        assert b"[redaction failed]" in sent


class TestCaptureSettings:
    def test_explicit_argument_beats_env(self, recorded, monkeypatch):
        """configure(capture_content=False) wins over the env var saying true."""
        monkeypatch.setenv(CAPTURE_ENV, "true")
        lunary.configure(tracer_provider=recorded.provider, capture_content=False)
        thread = lunary.open_thread()
        thread.track_message({"role": "tool", "tool_call_id": "call_1", "content": SECRET})
        span = recorded.one("message tool")
        assert LUNARY_MESSAGE_CONTENT not in span.attributes
        assert span.attributes[LUNARY_MESSAGE_TOOL_CALL_ID] == "call_1"
        assert span.attributes[LUNARY_MESSAGE_ROLE] == "tool"

    def test_comment_withheld_when_capture_off(self, recorded):
        """Feedback comments are content: withheld from both the event and the raw JSON."""
        lunary.configure(tracer_provider=recorded.provider, capture_content=False)
        msg_id = lunary.open_thread().track_message({"role": "assistant", "content": "x"})
        lunary.track_feedback(msg_id, {"thumb": "down", "comment": SECRET})
        feedback = recorded.one("feedback")
        assert SECRET not in feedback.attributes[LUNARY_FEEDBACK]
        assert json.loads(feedback.attributes[LUNARY_FEEDBACK])["thumb"] == "down"
        assert all(GEN_AI_EVALUATION_EXPLANATION not in event.attributes for event in feedback.events)

    def test_megabytes_are_truncated_with_a_marker(self, recorded):
        """Oversized content is cut to the limit, marked, and the span flagged."""
        lunary.configure(tracer_provider=recorded.provider, max_content_length=1000)
        lunary.open_thread().track_message({"role": "assistant", "content": "a" * 3_000_000})
        span = recorded.one("message assistant")
        text = json.loads(span.attributes[LUNARY_MESSAGE_CONTENT])[0]["parts"][0]["content"]
        assert text.startswith("a" * 1000) and text.endswith("…[truncated 2999000 chars]")
        assert span.attributes[LUNARY_CONTENT_TRUNCATED] is True

    @pytest.mark.parametrize(
        "settings",
        [{"capture_content": "yes"}, {"redact": "not callable"}, {"max_content_length": 0}, {"max_content_length": "10"}],
    )
    def test_wrong_settings_raise_value_error(self, recorded, settings):
        """Mistakes in configure() are programmer errors: a clear ValueError at setup."""
        with pytest.raises(ValueError):
            lunary.configure(**settings)

    def test_wrong_env_value_falls_back(self, recorded, monkeypatch, caplog):
        """A typo in the env var logs a warning and keeps the default (capture on)."""
        monkeypatch.setenv(CAPTURE_ENV, "maybe")
        lunary.configure(tracer_provider=recorded.provider)
        lunary.open_thread().track_message({"role": "user", "content": "hello"})
        assert LUNARY_MESSAGE_CONTENT in recorded.one("message user").attributes
        assert CAPTURE_ENV in caplog.text


class TestTruncationMarker:
    """Every span whose content was cut says so, whichever call recorded it."""

    def test_a_tool_span_with_cut_arguments_and_result_is_marked(self, recorded):
        """@tool with max_content_length=10: arguments and result are cut, the span is flagged."""
        lunary.configure(tracer_provider=recorded.provider, max_content_length=10)

        @lunary.tool("lookup")
        def lookup(query: str) -> str:
            return "a result longer than ten characters"

        lookup("a query longer than ten characters")
        span = recorded.one("execute_tool lookup")
        assert span.attributes[GEN_AI_TOOL_CALL_RESULT].startswith("a result l…[truncated")
        assert "…[truncated" in span.attributes[GEN_AI_TOOL_CALL_ARGUMENTS]
        assert span.attributes[LUNARY_CONTENT_TRUNCATED] is True

    def test_a_feedback_with_a_cut_comment_is_marked(self, recorded):
        """A feedback comment longer than max_content_length=10 is cut and the span flagged."""
        lunary.configure(tracer_provider=recorded.provider, max_content_length=10)
        msg_id = lunary.open_thread().track_message({"role": "user", "content": "hi"})
        lunary.track_feedback(msg_id, {"comment": "this comment is much longer than ten characters"})
        feedback = recorded.one("feedback")
        (event,) = feedback.events
        assert event.attributes[GEN_AI_EVALUATION_EXPLANATION].startswith("this comme…[truncated")
        assert feedback.attributes[LUNARY_CONTENT_TRUNCATED] is True

    def test_content_within_the_limit_is_not_marked(self, recorded):
        """Content within max_content_length is recorded whole and no span claims a cut."""
        lunary.configure(tracer_provider=recorded.provider, max_content_length=50)
        thread = lunary.open_thread()
        msg_id = thread.track_message({"role": "user", "content": "hi"})
        lunary.track_feedback(msg_id, {"comment": "fine"})
        lunary.tool("echo")(lambda text: text)("ok")
        assert all(LUNARY_CONTENT_TRUNCATED not in span.attributes for span in recorded.all())
