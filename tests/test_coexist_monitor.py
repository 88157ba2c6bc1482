"""One LLM span per call, whatever else instruments the OpenAI client.

The other instrumentations are the real packages (openai-v2, OpenInference's OpenAI and
LangChain instrumentations, OpenLLMetry's OpenAI instrumentation), recording into the same in-memory provider as otel-lunary.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator

import openai
import pytest
from openinference.instrumentation.langchain import LangChainInstrumentor
from openinference.instrumentation.openai import OpenAIInstrumentor as OpenInferenceOpenAI
from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetryOpenAI
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as OpenAIV2
from opentelemetry.sdk.trace import ReadableSpan

import otel_lunary as lunary
from conftest import Recorded
from otel_lunary import _other_recorders
from otel_lunary._fake_llm import FakeLLM
from otel_lunary.attributes import (
    GEN_AI_CONVERSATION_ID,
    GEN_AI_OPERATION_NAME,
    LUNARY_TAGS,
    OPENINFERENCE_SPAN_KIND,
    USER_ID,
)

INSTRUMENTATIONS = {
    "openai-v2": (OpenAIV2, "opentelemetry-instrumentation-openai-v2"),
    "openinference": (OpenInferenceOpenAI, "openinference-instrumentation-openai"),
    "openllmetry": (OpenLLMetryOpenAI, "opentelemetry-instrumentation-openai (OpenLLMetry)"),
}
MESSAGES = [{"role": "user", "content": "Plan a trip to Paris"}]


def llm_spans(recorded: Recorded) -> list[ReadableSpan]:
    return [span for span in recorded.all() if span.attributes.get(GEN_AI_OPERATION_NAME) == "chat" or span.attributes.get(OPENINFERENCE_SPAN_KIND) == "LLM"]


def ours(span: ReadableSpan) -> bool:
    return span.instrumentation_scope is not None and span.instrumentation_scope.name == "otel_lunary"


@pytest.fixture(params=sorted(INSTRUMENTATIONS))
def instrumentation(request: pytest.FixtureRequest, recorded: Recorded) -> Iterator[tuple[Callable[[], None], str]]:
    """(instrument, package name): the test decides when to switch it on."""
    instrumentor_class, package = INSTRUMENTATIONS[request.param]
    instrumentor = instrumentor_class()
    yield (lambda: instrumentor.instrument(tracer_provider=recorded.provider)), package
    instrumentor.uninstrument()


def call(client_kind: str, llm: FakeLLM, parent: str, instrument_first: bool, instrument: Callable[[], None], **options: object) -> None:
    if instrument_first:
        instrument()
    if client_kind == "async":
        client = lunary.monitor(openai.AsyncOpenAI(base_url=llm.base_url, api_key="test"), **options)
    else:
        client = lunary.monitor(openai.OpenAI(base_url=llm.base_url, api_key="test"), **options)
    if not instrument_first:
        instrument()
    kwargs = {"model": "gpt-4o-mini", "messages": MESSAGES, "parent": parent, "user_id": "u1", "tags": ["trip"]}
    if client_kind == "async":

        async def run() -> None:
            await client.chat.completions.create(**kwargs)

        asyncio.run(run())
    elif client_kind == "stream":
        for _ in client.chat.completions.create(stream=True, **kwargs):
            pass
    else:
        client.chat.completions.create(**kwargs)


class TestDefersToAnotherInstrumentation:
    @pytest.mark.parametrize("client_kind", ["sync", "async", "stream"])
    @pytest.mark.parametrize("instrument_first", [True, False], ids=["instrumented-before-monitor", "instrumented-after-monitor"])
    def test_exactly_one_llm_span_with_the_conversation(self, recorded, llm, instrumentation, client_kind, instrument_first):
        """The other instrumentation's span is the only LLM span, under the message, with conversation, user and tags."""
        instrument, _ = instrumentation
        thread = lunary.open_thread()
        msg_id = thread.track_message({"role": "user", "content": "Plan a trip to Paris"})
        call(client_kind, llm, msg_id, instrument_first, instrument)
        (span,) = llm_spans(recorded)
        assert not ours(span)
        message = recorded.one("message user")
        assert span.parent.span_id == message.context.span_id
        assert span.attributes[GEN_AI_CONVERSATION_ID] == thread.id
        assert span.attributes[USER_ID] == "u1"
        assert "trip" in span.attributes[LUNARY_TAGS]
        assert len(llm.requests) == 1

    def test_warns_once_naming_the_instrumentation(self, recorded, llm, instrumentation, caplog):
        instrument, package = instrumentation
        _other_recorders._warned.clear()  # once per process: start this process over
        msg_id = lunary.open_thread().track_message({"role": "user", "content": "hi"})
        with caplog.at_level(logging.WARNING, logger="otel_lunary"):
            call("sync", llm, msg_id, True, instrument)
            call("sync", llm, msg_id, True, lambda: None)
        (warning,) = [r for r in caplog.records if "already recorded by" in r.getMessage()]
        assert package in warning.getMessage()
        assert len(llm_spans(recorded)) == 2  # one per call

    def test_always_records_both(self, recorded, llm, instrumentation):
        """spans="always": monitor's own span too, the other one nested in it."""
        instrument, _ = instrumentation
        msg_id = lunary.open_thread().track_message({"role": "user", "content": "hi"})
        call("sync", llm, msg_id, True, instrument, spans="always")
        spans = llm_spans(recorded)
        (own,) = [span for span in spans if ours(span)]
        (other,) = [span for span in spans if not ours(span)]
        assert own.context.span_id in recorded.ancestors(other)


class TestSetting:
    def test_env_always_and_argument_wins(self, recorded, llm, monkeypatch):
        """OTEL_LUNARY_MONITOR_SPANS applies; monitor(spans=...) beats it."""
        msg_id = lunary.open_thread().track_message({"role": "user", "content": "hi"})
        instrumentor = OpenAIV2()
        monkeypatch.setenv("OTEL_LUNARY_MONITOR_SPANS", "always")
        try:
            call("sync", llm, msg_id, True, lambda: instrumentor.instrument(tracer_provider=recorded.provider))
            assert len(llm_spans(recorded)) == 2
            call("sync", llm, msg_id, True, lambda: None, spans="auto")
            assert len(llm_spans(recorded)) == 3
        finally:
            instrumentor.uninstrument()

    def test_never_records_no_span_of_its_own(self, recorded, llm):
        msg_id = lunary.open_thread().track_message({"role": "user", "content": "hi"})
        call("sync", llm, msg_id, True, lambda: None, spans="never")
        assert llm_spans(recorded) == [] and len(llm.requests) == 1

    def test_auto_without_other_instrumentation_records(self, recorded, llm):
        msg_id = lunary.open_thread().track_message({"role": "user", "content": "hi"})
        call("sync", llm, msg_id, True, lambda: None)
        (span,) = llm_spans(recorded)
        assert ours(span)

    def test_wrong_argument_raises(self, recorded):
        with pytest.raises(ValueError, match="spans"):
            lunary.monitor(openai.OpenAI(api_key="test"), spans="sometimes")

    def test_wrong_env_value_warns_and_uses_auto(self, recorded, llm, monkeypatch, caplog):
        monkeypatch.setenv("OTEL_LUNARY_MONITOR_SPANS", "sometimes")
        msg_id = lunary.open_thread().track_message({"role": "user", "content": "hi"})
        with caplog.at_level(logging.WARNING, logger="otel_lunary"):
            call("sync", llm, msg_id, True, lambda: None)
        assert any("OTEL_LUNARY_MONITOR_SPANS" in r.getMessage() for r in caplog.records)
        assert len(llm_spans(recorded)) == 1


class TestLangChain:
    @pytest.fixture
    def langchain(self, recorded):
        instrumentor = LangChainInstrumentor()
        instrumentor.instrument(tracer_provider=recorded.provider)
        yield
        instrumentor.uninstrument()

    def chat_model(self, llm: FakeLLM, **options: object):
        from langchain_openai import ChatOpenAI

        client = lunary.monitor(openai.OpenAI(base_url=llm.base_url, api_key="test"), **options)
        return ChatOpenAI(model="gpt-4o-mini", api_key="test", base_url=llm.base_url, client=client.chat.completions, root_client=client)

    def test_monitored_client_inside_langchain_gives_one_llm_span(self, recorded, llm, langchain):
        """LangChain's ChatOpenAI span is the call's LLM span; it nests under the message with the conversation."""
        thread = lunary.open_thread()
        msg_id = thread.track_message({"role": "user", "content": "Plan a trip to Paris"})
        with lunary.parent(msg_id):
            self.chat_model(llm).invoke("Plan a trip to Paris")
        (span,) = llm_spans(recorded)
        assert span.instrumentation_scope.name.startswith("openinference.instrumentation.langchain")
        assert span.attributes[GEN_AI_CONVERSATION_ID] == thread.id
        assert recorded.one("message user").context.span_id in recorded.ancestors(span)

    def test_always_gives_two(self, recorded, llm, langchain):
        msg_id = lunary.open_thread().track_message({"role": "user", "content": "hi"})
        with lunary.parent(msg_id):
            self.chat_model(llm, spans="always").invoke("hi")
        assert len(llm_spans(recorded)) == 2
