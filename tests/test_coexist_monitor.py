"""One LLM span per call, whatever else instruments the OpenAI client.

The other instrumentations are the real packages (openai-v2, OpenInference's OpenAI and
LangChain instrumentations, OpenLLMetry's OpenAI instrumentation), recording into the same
in-memory provider as otel-lunary. OpenLLMetry's runs in a fresh interpreter: its
``uninstrument()`` (0.62) leaves its wrappers on ``Completions.create``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import openai
import pytest
from openinference.instrumentation.langchain import LangChainInstrumentor
from openinference.instrumentation.openai import OpenAIInstrumentor as OpenInferenceOpenAI
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as OpenAIV2
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan

import otel_lunary as lunary
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
}
MESSAGES = [{"role": "user", "content": "Plan a trip to Paris"}]


def llm_spans(recorded) -> list[ReadableSpan]:
    return [span for span in recorded.all() if span.attributes.get(GEN_AI_OPERATION_NAME) == "chat" or span.attributes.get(OPENINFERENCE_SPAN_KIND) == "LLM"]


def ours(span: ReadableSpan) -> bool:
    return span.instrumentation_scope is not None and span.instrumentation_scope.name == "otel_lunary"


@pytest.fixture(params=sorted(INSTRUMENTATIONS))
def instrumentation(request: pytest.FixtureRequest, recorded) -> Iterator[tuple[Callable[[], None], str]]:
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
        assert not trace.get_current_span().get_span_context().is_valid, "no span left current after the call"

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

    def test_monitored_client_inside_langchain_with_spans_never_gives_one_llm_span(self, recorded, llm, langchain):
        """LangChain's ChatOpenAI span does not become the current span, so monitor cannot see
        it: spans="never" on a client given to LangChain leaves LangChain's the only LLM span."""
        thread = lunary.open_thread()
        msg_id = thread.track_message({"role": "user", "content": "Plan a trip to Paris"})
        with lunary.parent(msg_id):
            self.chat_model(llm, spans="never").invoke("Plan a trip to Paris")
        (span,) = llm_spans(recorded)
        assert span.instrumentation_scope.name.startswith("openinference.instrumentation.langchain")
        assert span.attributes[GEN_AI_CONVERSATION_ID] == thread.id
        assert recorded.one("message user").context.span_id in recorded.ancestors(span)


class TestEnclosingLlmSpan:
    def test_call_inside_another_llm_span_defers_to_it(self, recorded, llm):
        """A monitored call made inside another instrumentation's current LLM span adds to that span."""
        tracer = recorded.provider.get_tracer("framework-llm-instrumentation")
        client = lunary.monitor(openai.OpenAI(base_url=llm.base_url, api_key="test"))
        with tracer.start_as_current_span("chat gpt-4o-mini", attributes={GEN_AI_OPERATION_NAME: "chat"}):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, user_id="u9")
        (span,) = llm_spans(recorded)
        assert span.instrumentation_scope.name == "framework-llm-instrumentation"
        assert span.attributes[USER_ID] == "u9"


OPENLLMETRY = """
import asyncio, json, openai
from opentelemetry.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import otel_lunary as lunary

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
lunary.configure(tracer_provider=provider)
OpenAIInstrumentor().instrument(tracer_provider=provider)
base_url = __import__("os").environ["FAKE_LLM"]
client = lunary.monitor(openai.OpenAI(base_url=base_url, api_key="test"))
async_client = lunary.monitor(openai.AsyncOpenAI(base_url=base_url, api_key="test"))
thread = lunary.open_thread("conv-openllmetry")
msg_id = thread.track_message({"role": "user", "content": "Plan a trip to Paris"})
kwargs = dict(model="gpt-4o-mini", messages=[{"role": "user", "content": "Plan a trip"}], parent=msg_id, user_id="u1")
client.chat.completions.create(**kwargs)
for _ in client.chat.completions.create(stream=True, **kwargs):
    pass
asyncio.run(async_client.chat.completions.create(**kwargs))
print(json.dumps([
    {"name": s.name, "scope": s.instrumentation_scope.name, "parent": s.parent.span_id if s.parent else None,
     "span_id": s.context.span_id, "attributes": dict(s.attributes)}
    for s in exporter.get_finished_spans()
]))
"""


def test_openllmetry_one_llm_span_per_call(llm, tmp_path):
    """OpenLLMetry's opentelemetry-instrumentation-openai: its span is each call's only LLM span."""
    import json

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}, "FAKE_LLM": llm.base_url, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", OPENLLMETRY], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    spans = json.loads(done.stdout.strip().splitlines()[-1])
    (message,) = [s for s in spans if s["name"] == "message user"]
    calls = [s for s in spans if s["attributes"].get(GEN_AI_OPERATION_NAME) == "chat"]
    assert len(calls) == 3 and all(s["scope"].startswith("opentelemetry.instrumentation.openai") for s in calls)
    for span in calls:
        assert span["parent"] == message["span_id"]
        assert span["attributes"][GEN_AI_CONVERSATION_ID] == "conv-openllmetry"
        assert span["attributes"][USER_ID] == "u1"
    assert "already recorded by opentelemetry-instrumentation-openai (OpenLLMetry)" in done.stderr
