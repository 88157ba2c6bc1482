"""Conversations and the application's request spans find each other.

A real FastAPI app with the real FastAPI instrumentation, served in-process by
Starlette's TestClient, recording into the conftest's in-memory provider.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext, TraceFlags

import otel_lunary as lunary
from otel_lunary.attributes import GEN_AI_CONVERSATION_ID, LUNARY_MESSAGE_ID
from otel_lunary.ids import format_message_id


@pytest.fixture
def chat_app(recorded, llm) -> Iterator[TestClient]:
    """POST /chat (one turn) and POST /event, as a chatbot backend has them."""
    app = FastAPI()
    client = lunary.monitor(openai.OpenAI(base_url=llm.base_url, api_key="test"))

    @app.post("/chat")
    def chat(body: dict) -> dict:
        thread = lunary.open_thread(body["thread_id"])
        msg_id = thread.track_message({"role": "user", "content": body["message"]})
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": body["message"]}], parent=msg_id)
        answer_id = thread.track_message({"role": "assistant", "content": reply.choices[0].message.content})
        return {"message_id": msg_id, "answer_id": answer_id}

    @app.post("/event")
    def event(body: dict) -> dict:
        lunary.open_thread(body["thread_id"]).track_event("copied-answer", parent=body.get("message_id"))
        return {}

    FastAPIInstrumentor.instrument_app(app, tracer_provider=recorded.provider)
    with TestClient(app) as test_client:
        yield test_client
    FastAPIInstrumentor.uninstrument_app(app)


def request_span(recorded, route: str):
    (span,) = [s for s in recorded.all() if s.name == route and s.kind == trace.SpanKind.SERVER]
    return span


class TestRequestSpan:
    def test_request_span_carries_the_conversation_id(self, recorded, chat_app):
        """POST /chat gets gen_ai.conversation.id; the turn is its own trace, linked to the request."""
        chat_app.post("/chat", json={"thread_id": "conv-req", "message": "Plan a trip"})
        request = request_span(recorded, "POST /chat")
        assert request.attributes[GEN_AI_CONVERSATION_ID] == "conv-req"
        turn = recorded.one("invoke_workflow turn")
        assert turn.context.trace_id != request.context.trace_id
        assert [link.context.span_id for link in turn.links] == [request.context.span_id]

    def test_event_request_span_carries_it_too(self, recorded, chat_app):
        chat_app.post("/event", json={"thread_id": "conv-ev"})
        assert request_span(recorded, "POST /event").attributes[GEN_AI_CONVERSATION_ID] == "conv-ev"

    def test_an_ambient_span_keeps_the_first_conversation(self, recorded):
        """A span serving two threads keeps the first one's id rather than flip-flopping."""
        with trace.get_tracer("app", tracer_provider=recorded.provider).start_as_current_span("batch job"):
            lunary.open_thread("first").track_message({"role": "user", "content": "a"})
            lunary.open_thread("second").track_message({"role": "user", "content": "b"})
        assert recorded.one("batch job").attributes[GEN_AI_CONVERSATION_ID] == "first"


class TestTurnUnderItsRequest:
    @pytest.mark.parametrize("how", ["configure", "env"])
    def test_turn_nests_under_the_request(self, recorded, chat_app, monkeypatch, how):
        """turn_parent=current_span: the turn (and in it the user message, the LLM call and the answer) is in the request's trace."""
        if how == "env":
            monkeypatch.setenv("OTEL_LUNARY_TURN_PARENT", "current_span")
            lunary.configure(tracer_provider=recorded.provider)
        else:
            lunary.configure(tracer_provider=recorded.provider, turn_parent="current_span")
        chat_app.post("/chat", json={"thread_id": "conv-one", "message": "Plan a trip"})
        request = request_span(recorded, "POST /chat")
        turn = recorded.one("invoke_workflow turn")
        assert turn.parent.span_id == request.context.span_id
        assert recorded.one("message user").parent.span_id == turn.context.span_id
        for name in ("chat gpt-4o-mini", "message assistant"):
            assert recorded.one(name).context.trace_id == request.context.trace_id

    def test_wrong_turn_parent_raises(self, recorded):
        with pytest.raises(ValueError, match="turn_parent"):
            lunary.configure(tracer_provider=recorded.provider, turn_parent="request")


class TestEventParent:
    def test_event_goes_under_the_given_message(self, recorded):
        """parent= wins over the thread's current turn."""
        thread = lunary.open_thread("conv-p")
        first = thread.track_message({"role": "user", "content": "first"})
        thread.track_message({"role": "user", "content": "second"})
        thread.track_event("copied-answer", parent=first)
        event = recorded.one("event copied-answer")
        (first_span,) = [s for s in recorded.named("message user") if s.attributes[LUNARY_MESSAGE_ID] == first]
        assert (event.context.trace_id, event.parent.span_id) == (first_span.context.trace_id, first_span.context.span_id)

    def test_event_from_another_process_joins_the_message_trace(self, recorded):
        """A message id this process never saw (another worker's) still parents the event."""
        elsewhere = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
        lunary.open_thread("conv-x").track_event("copied-answer", parent=format_message_id(elsewhere))
        event = recorded.one("event copied-answer")
        assert (event.context.trace_id, event.parent.span_id) == (0x1234, 0x5678)
        assert event.attributes[GEN_AI_CONVERSATION_ID] == "conv-x"

    def test_unknown_parent_is_counted_and_the_event_still_recorded(self, recorded):
        lunary.open_thread("conv-u").track_event("copied-answer", parent="not-a-message-id")
        assert recorded.one("event copied-answer").attributes[GEN_AI_CONVERSATION_ID] == "conv-u"
        assert lunary.stats()["unknown_parent"] == 1


class FailingExporter(SpanExporter):
    def export(self, spans) -> SpanExportResult:
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        return None


class TestDropCountScope:
    def test_with_the_app_provider_drops_are_unknown_not_zero(self, recorded):
        """The app's 64-span queue and failing exporter lose spans otel-lunary cannot count: None, scope application."""
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(FailingExporter(), max_queue_size=64, max_export_batch_size=64))
        lunary.configure(tracer_provider=provider)
        thread = lunary.open_thread()
        for n in range(500):
            thread.track_message({"role": "user", "content": str(n)})
        stats = lunary.stats()
        assert stats["spans_dropped"] is None
        assert stats["spans_dropped_scope"] == "application"
        provider.shutdown()

    def test_with_its_own_provider_drops_are_counted(self, recorded):
        lunary.configure(exporter="none")
        lunary.open_thread().track_message({"role": "user", "content": "hi"})
        stats = lunary.stats()
        assert isinstance(stats["spans_dropped"], int)
        assert stats["spans_dropped_scope"] == "otel_lunary"
