"""otel-lunary adapts to whatever TracerProvider the application ends up with.

Each case runs in a fresh interpreter: the global provider can be set once per process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers.coexist import ROOT, Spans
from otel_lunary.attributes import GEN_AI_CONVERSATION_ID, LUNARY_MESSAGE_ID
from helpers.servers import OtlpSink

# Tracking first (at import), the application's provider second; openai-v2 instrumented
# before either, as `opentelemetry-instrument`-less apps often do.
TRACKING_FIRST = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="LOG %(name)s %(levelname)s %(message)s")
import openai
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
import otel_lunary as lunary

OpenAIInstrumentor().instrument()
thread = lunary.open_thread("conv-order")
system_id = thread.track_message({"role": "system", "content": "You are a travel agent"})
client = lunary.monitor(openai.OpenAI())

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

provider = TracerProvider(resource=Resource.create({"service.name": "chat-app"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)
assert trace.get_tracer_provider() is provider, "the application's provider was refused"

with trace.get_tracer("app").start_as_current_span("POST /chat"):
    msg_id = thread.track_message({"role": "user", "content": "Plan a trip to Paris"})
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Plan a trip to Paris"}], parent=msg_id)
    answer_id = thread.track_message({"role": "assistant", "content": reply.choices[0].message.content})
lunary.track_feedback(answer_id, {"thumb": "up"})
provider.shutdown()
print("SYSTEM", system_id)
"""

# No provider of the application at all: otel-lunary's own records, to the local file.
NO_APP_PROVIDER = """
from opentelemetry import trace
import otel_lunary as lunary
thread = lunary.open_thread("conv-alone")
thread.track_message({"role": "user", "content": "hi"})
thread.track_message({"role": "assistant", "content": "hello"})
assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider), "tracking installed a global provider"
"""


def run(script: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "app.py"
    path.write_text(script)
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "OPENAI_"))}
    done = subprocess.run(
        [sys.executable, str(path)], cwd=tmp_path, capture_output=True, text=True, timeout=120, env={**clean, "PYTHONPATH": str(ROOT), **env}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_tracking_first_app_provider_second_every_span_goes_to_the_app(tmp_path: Path, sink: OtlpSink, llm) -> None:
    """The app's provider is accepted, and every span, the early ones included, is in its exporter."""
    done = run(TRACKING_FIRST, tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint, OPENAI_BASE_URL=llm.base_url, OPENAI_API_KEY="test")
    assert "Overriding of current TracerProvider" not in done.stderr
    assert not list(tmp_path.glob("*.jsonl")), "nothing went to otel-lunary's own file"
    spans = Spans.from_sink(sink)
    assert sorted(span.name for span in spans) == sorted(
        ["message system", "POST /chat", "invoke_workflow turn", "message user", "chat gpt-4o-mini", "message assistant", "feedback"]
    )
    assert {span.resource["service.name"] for span in spans} == {"chat-app"}
    system_id = done.stdout.split("SYSTEM ")[1].strip()
    (system,) = spans.named("message system")
    assert system.attributes[LUNARY_MESSAGE_ID] == system_id
    assert all(span.attributes.get(GEN_AI_CONVERSATION_ID) == "conv-order" for span in spans if span.name != "feedback")
    assert "records to the application's TracerProvider (service.name=chat-app)" in done.stderr


def test_without_an_app_provider_spans_go_to_the_local_file_and_no_global_is_set(tmp_path: Path) -> None:
    """Nothing configured: the spans still reach ./otel-lunary-traces.jsonl at exit; the global provider stays unset."""
    run(NO_APP_PROVIDER, tmp_path)
    text = (tmp_path / "otel-lunary-traces.jsonl").read_text()
    assert '"message user"' in text and '"message assistant"' in text
