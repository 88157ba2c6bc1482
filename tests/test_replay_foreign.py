"""Replay shows LLM calls recorded by another instrumentation (issue 10 item 5).

The real ``openinference-instrumentation-openai`` records the call of the real ``openai``
client to the fake model; otel-lunary only tracks the conversation
(``monitor(spans="never")``), so the LLM call in the replay can only come from the
OpenInference span.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from helpers.replay import run
from openinference.instrumentation.openai import OpenAIInstrumentor

import otel_lunary as lunary
from otel_lunary._fake_llm import FakeLLM
from otel_lunary.attributes import GEN_AI_OPERATION_NAME, OPENINFERENCE_SPAN_KIND
from otel_lunary.export.otlp_json import encode_line

QUESTION = "Plan a trip to Paris"


@pytest.fixture
def openinference(recorded) -> Iterator[None]:
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=recorded.provider)
    yield
    instrumentor.uninstrument()


@pytest.fixture
def conversation(recorded, llm: FakeLLM, openinference: None, tmp_path: Path) -> tuple[str, Path, openai.types.chat.ChatCompletion]:
    """(thread id, OTLP JSON lines file, the model's response) of one tracked turn."""
    thread = lunary.open_thread()
    msg_id = thread.track_message({"role": "user", "content": QUESTION})
    client = lunary.monitor(openai.OpenAI(base_url=llm.base_url, api_key="test", max_retries=0), spans="never")
    with lunary.parent(msg_id):
        response = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": QUESTION}])
    thread.track_message({"role": "assistant", "content": response.choices[0].message.content})
    lunary.flush()
    spans = recorded.all()
    assert [s for s in spans if s.attributes.get(OPENINFERENCE_SPAN_KIND) == "LLM"], "OpenInference recorded no LLM span"
    assert not [s for s in spans if s.attributes.get(GEN_AI_OPERATION_NAME) == "chat"], "otel-lunary recorded an LLM span of its own"
    path = tmp_path / "traces.jsonl"
    path.write_bytes(encode_line(spans))
    return thread.id, path, response


def test_json_shows_the_openinference_call_under_the_user_message(conversation) -> None:
    thread_id, path, response = conversation
    status, out, err = run(str(path), "--format", "json", "-c", thread_id)
    assert status == 0, err
    (replayed,) = [json.loads(line) for line in out.splitlines()]
    messages = [i for i in replayed["items"] if i["type"] == "message"]
    assert [(m["role"], m["content"]) for m in messages] == [("user", QUESTION), ("assistant", response.choices[0].message.content)]
    (call,) = messages[0]["calls"]
    assert call["kind"] == "llm"
    assert call["model"] == response.model
    assert call["input_tokens"] == response.usage.prompt_tokens
    assert call["output_tokens"] == response.usage.completion_tokens
    assert call["input_messages"] == [{"role": "user", "parts": [{"type": "text", "content": QUESTION}]}]
    assert call["output_messages"] == [{"role": "assistant", "parts": [{"type": "text", "content": response.choices[0].message.content}]}]
    assert "calls" not in messages[1] or messages[1]["calls"] == []


def test_terminal_shows_model_tokens_and_text(conversation) -> None:
    thread_id, path, response = conversation
    status, out, err = run(str(path), "-c", thread_id)
    assert status == 0, err
    lines = out.splitlines()
    user_line = next(i for i, line in enumerate(lines) if QUESTION in line)
    call_line = next(i for i, line in enumerate(lines) if "⚙" in line)
    assert call_line > user_line
    assert response.model in lines[call_line]
    assert str(response.usage.prompt_tokens) in lines[call_line] and str(response.usage.completion_tokens) in lines[call_line]
    details = "\n".join(lines[call_line + 1 : call_line + 3])
    assert f"in  user: {QUESTION}" in details
    assert f"out assistant: {response.choices[0].message.content[:40]}" in details


OPENLLMETRY = """
import json, os, sys, openai
from opentelemetry.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import otel_lunary as lunary
from otel_lunary.export.otlp_json import encode_line

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
lunary.configure(tracer_provider=provider)
OpenAIInstrumentor().instrument(tracer_provider=provider)
client = lunary.monitor(openai.OpenAI(base_url=os.environ["FAKE_LLM"], api_key="test", max_retries=0), spans="never")
thread = lunary.open_thread("conv-openllmetry")
msg_id = thread.track_message({"role": "user", "content": sys.argv[1]})
with lunary.parent(msg_id):
    response = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": sys.argv[1]}])
thread.track_message({"role": "assistant", "content": response.choices[0].message.content})
lunary.flush()
open(sys.argv[2], "wb").write(encode_line(exporter.get_finished_spans()))
print(response.model_dump_json())
"""


def test_openllmetry_call_replays_under_the_user_message(llm: FakeLLM, tmp_path: Path) -> None:
    """OpenLLMetry (traceloop's opentelemetry-instrumentation-openai) in a fresh interpreter,
    since its uninstrument leaves wrappers behind: its span is the message's LLM call."""
    import os
    import subprocess
    import sys

    path = tmp_path / "traces.jsonl"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}, "FAKE_LLM": llm.base_url, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", OPENLLMETRY, QUESTION, str(path)], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    response = json.loads(done.stdout.strip().splitlines()[-1])
    status, out, err = run(str(path), "--format", "json", "-c", "conv-openllmetry")
    assert status == 0, err
    (replayed,) = [json.loads(line) for line in out.splitlines()]
    user = next(i for i in replayed["items"] if i["type"] == "message" and i["role"] == "user")
    (call,) = user["calls"]
    assert (call["kind"], call["model"]) == ("llm", response["model"])
    assert (call["input_tokens"], call["output_tokens"]) == (response["usage"]["prompt_tokens"], response["usage"]["completion_tokens"])
    assert call["output_messages"][0]["parts"][0]["content"] == response["choices"][0]["message"]["content"]


def test_openinference_tool_and_agent_spans_replay_as_calls(recorded, tmp_path: Path) -> None:
    """A TOOL span inside an AGENT span, named with openinference-semantic-conventions'
    own constants (so a renamed attribute upstream fails here), replays as the message's
    agent call with its tool, arguments and result."""
    from openinference.semconv.trace import OpenInferenceSpanKindValues, SpanAttributes
    from opentelemetry import trace

    thread = lunary.open_thread()
    msg_id = thread.track_message({"role": "user", "content": QUESTION})
    tracer = recorded.provider.get_tracer("some-agent-framework")
    with lunary.parent(msg_id):
        with tracer.start_as_current_span("planner", attributes={SpanAttributes.OPENINFERENCE_SPAN_KIND: OpenInferenceSpanKindValues.AGENT.value}):
            with tracer.start_as_current_span(
                "lookup",
                attributes={
                    SpanAttributes.OPENINFERENCE_SPAN_KIND: OpenInferenceSpanKindValues.TOOL.value,
                    SpanAttributes.TOOL_NAME: "get_weather",
                    SpanAttributes.INPUT_VALUE: json.dumps({"city": "Paris"}),
                    SpanAttributes.OUTPUT_VALUE: "Rainy, 57F",
                },
            ) as tool_span:
                tool_span.set_status(trace.StatusCode.ERROR, "timed out")
    lunary.flush()
    path = tmp_path / "traces.jsonl"
    path.write_bytes(encode_line(recorded.all()))
    status, out, err = run(str(path), "--format", "json", "-c", thread.id)
    assert status == 0, err
    (replayed,) = [json.loads(line) for line in out.splitlines()]
    (agent,) = replayed["items"][0]["calls"]
    assert (agent["kind"], agent["agent_name"]) == ("agent", "planner")
    (tool,) = agent["children"]
    assert (tool["kind"], tool["tool_name"]) == ("tool", "get_weather")
    assert (tool["tool_arguments"], tool["tool_result"], tool["error"]) == ({"city": "Paris"}, "Rainy, 57F", "timed out")
