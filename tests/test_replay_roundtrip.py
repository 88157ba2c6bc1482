"""Round trips: what was tracked, written as OTLP JSON, replays to the same conversation."""

from __future__ import annotations

import json
from pathlib import Path

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from fixtures.replay import raw_conversation as raw
from fixtures.replay.sdk_conversation import Tracked, record
from helpers.replay import assert_replays, only
from otel_lunary.export.file import OtlpJsonFileExporter
from otel_lunary.export.otlp_json import encode_line
from otel_lunary.replay import assemble_file


def sdk_to_file(path: Path) -> Tracked:
    """Track the SDK conversation into the real OTLP JSON Lines file exporter."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OtlpJsonFileExporter(str(path))))
    try:
        return record(provider)
    finally:
        provider.shutdown()


class TestSdkRoundTrip:
    def test_sdk_through_file_exporter_replays_exactly(self, tmp_path: Path) -> None:
        """The SDK's conversation, written by the embedded file exporter, replays as tracked."""
        path = tmp_path / "traces.jsonl"
        tracked = sdk_to_file(path)
        assert_replays(only(assemble_file(path), tracked.conversation_id), tracked)

    def test_feedback_history_keeps_the_removal(self, tmp_path: Path) -> None:
        """The history shows up, removed, down in time order while the latest is down."""
        path = tmp_path / "traces.jsonl"
        tracked = sdk_to_file(path)
        answer = only(assemble_file(path), tracked.conversation_id).messages[-1]
        thumbs = [(c.value, c.removed) for c in answer.feedback_history if c.key == "thumb"]
        assert thumbs == [("up", False), (None, True), ("down", False)]

    def test_llm_call_details_are_recorded(self, tmp_path: Path) -> None:
        """An LLM call under its message has model, tokens, latency and no error."""
        path = tmp_path / "traces.jsonl"
        tracked = sdk_to_file(path)
        first = only(assemble_file(path), tracked.conversation_id).messages[0]
        (call,) = first.calls
        assert call.model and call.model.startswith("gpt-4o-mini")
        assert call.input_tokens and call.output_tokens
        assert call.latency_ms > 0 and call.error is None


class TestRawSpanRoundTrip:
    """Spans built by hand from the conventions, independent of the SDK."""

    def write(self, path: Path, lines: list[bytes]) -> Path:
        path.write_bytes(b"".join(lines))
        return path

    def test_conventions_spans_replay(self, tmp_path: Path) -> None:
        """Messages, tool call, feedback and calls come back from spec OTLP JSON."""
        path = self.write(tmp_path / "t.jsonl", [encode_line(raw.record())])
        conversation = only(assemble_file(path), raw.CONVERSATION)
        assert [(m.role, m.content) for m in conversation.messages] == raw.EXPECTED_MESSAGES
        assert conversation.messages[4].feedback == {"thumb": "down", "comment": "too vague"}
        assert [e.name for e in conversation.events] == ["open-document"]

    def test_feedback_without_conversation_joins_by_message_id(self, tmp_path: Path) -> None:
        """A root feedback span from another process finds its message by lunary.feedback.message_id."""
        path = self.write(tmp_path / "t.jsonl", [encode_line(raw.record())])
        conversation = only(assemble_file(path), raw.CONVERSATION)
        assert conversation.messages[-1].feedback == {"rating": 4}

    def test_nested_agent_call_and_error(self, tmp_path: Path) -> None:
        """An LLM call inside an agent nests under it and keeps its error."""
        path = self.write(tmp_path / "t.jsonl", [encode_line(raw.record())])
        second_question = only(assemble_file(path), raw.CONVERSATION).messages[5]
        (agent,) = second_question.calls
        assert agent.kind == "agent" and agent.agent_name == "Forecaster"
        assert [c.error for c in agent.children] == ["RateLimitError: upstream failed"]

    def test_span_order_in_file_does_not_matter(self, tmp_path: Path) -> None:
        """Spans written one per line in reverse order replay the same conversation."""
        lines = [encode_line([span]) for span in reversed(raw.record())]
        conversation = only(assemble_file(self.write(tmp_path / "t.jsonl", lines)), raw.CONVERSATION)
        assert [(m.role, m.content) for m in conversation.messages] == raw.EXPECTED_MESSAGES

    def test_base64_ids_from_message_to_json(self, tmp_path: Path) -> None:
        """protobuf MessageToJson output (base64 ids, enum names) replays like spec JSON."""
        request = MessageToDict(encode_spans(raw.record()))
        assert request["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"].endswith("=")
        path = self.write(tmp_path / "t.jsonl", [json.dumps(request).encode() + b"\n"])
        conversation = only(assemble_file(path), raw.CONVERSATION)
        assert [(m.role, m.content) for m in conversation.messages] == raw.EXPECTED_MESSAGES
        assert conversation.messages[4].feedback == {"thumb": "down", "comment": "too vague"}

    def test_conversations_are_kept_apart(self, tmp_path: Path) -> None:
        """Each gen_ai.conversation.id is its own conversation with its own users."""
        path = self.write(tmp_path / "t.jsonl", [encode_line(raw.record())])
        conversations = assemble_file(path)
        assert [(c.id, c.users) for c in conversations] == [(raw.CONVERSATION, ["alice"]), (raw.OTHER_CONVERSATION, ["bob"])]

