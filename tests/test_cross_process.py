"""A message id handed to another process is enough for feedback and ``parent`` there.

Two real Python processes, each with the real SDK and the embedded OTLP-JSON file
exporter: process A tracks the message and prints the id; process B gets only the id
string, gives feedback and makes a call inside ``lunary.parent``. Both files are read
back and the spans must share the trace with the right parents.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from otel_lunary.attributes import LUNARY_FEEDBACK_MESSAGE_ID, LUNARY_MESSAGE_ID, LUNARY_TURN_ENDED_BY, OUTPUT_VALUE

PROCESS_A = """
import json, sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
import otel_lunary as lunary

provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=open(sys.argv[1], "w"), formatter=lambda s: s.to_json(indent=None) + "\\n")))
lunary.configure(tracer_provider=provider)
thread = lunary.open_thread("conv-cross")
msg_id = thread.track_message({"role": "assistant", "content": "Hope you like my answers :)"})
provider.shutdown()
print(msg_id)
"""

PROCESS_B = """
import sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
import otel_lunary as lunary

provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=open(sys.argv[1], "w"), formatter=lambda s: s.to_json(indent=None) + "\\n")))
trace.set_tracer_provider(provider)
lunary.configure(tracer_provider=provider)
msg_id = sys.argv[2]
lunary.track_feedback(msg_id, {"thumb": "down"})
with lunary.parent(msg_id):
    with trace.get_tracer("worker").start_as_current_span("worker job"):
        pass
provider.shutdown()
"""


def run(script: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def spans_in(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_feedback_and_parent_in_another_process(tmp_path):
    """Feedback and child spans made elsewhere with only the id join the message's trace."""
    file_a, file_b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    msg_id = run(PROCESS_A, str(file_a))
    run(PROCESS_B, str(file_b), msg_id)
    (message,) = spans_in(file_a)
    by_name = {span["name"]: span for span in spans_in(file_b)}
    assert message["attributes"][LUNARY_MESSAGE_ID] == msg_id
    for name in ("feedback", "worker job"):
        span = by_name[name]
        assert span["context"]["trace_id"] == message["context"]["trace_id"], name
        assert span["parent_id"] == message["context"]["span_id"], name
    assert by_name["feedback"]["attributes"][LUNARY_FEEDBACK_MESSAGE_ID] == msg_id


QUESTION_PROCESS = """
import sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
import otel_lunary as lunary

provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=open(sys.argv[1], "w"), formatter=lambda s: s.to_json(indent=None) + "\\n")))
lunary.configure(tracer_provider=provider)
thread = lunary.open_thread("conv-split")
print(thread.track_message({"role": "user", "content": "Where is my order?"}))
lunary.shutdown()
provider.shutdown()
"""

REPLY_PROCESS = """
import sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
import otel_lunary as lunary

provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=open(sys.argv[1], "w"), formatter=lambda s: s.to_json(indent=None) + "\\n")))
lunary.configure(tracer_provider=provider)
thread = lunary.open_thread("conv-split")
with lunary.parent(sys.argv[2]):
    thread.track_message({"role": "assistant", "content": "It ships tomorrow."})
lunary.shutdown()
provider.shutdown()
"""


def test_a_reply_tracked_in_another_process_joins_the_turn(tmp_path):
    """The reply joins the question's trace; the question's process ends its turn span unanswered."""
    file_a, file_b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    question_id = run(QUESTION_PROCESS, str(file_a))
    run(REPLY_PROCESS, str(file_b), question_id)
    by_name = {span["name"]: span for span in spans_in(file_a)}
    turn, question = by_name["invoke_workflow turn"], by_name["message user"]
    (reply,) = spans_in(file_b)
    assert reply["name"] == "message assistant"
    assert reply["context"]["trace_id"] == turn["context"]["trace_id"]
    assert reply["parent_id"] == question["context"]["span_id"]
    assert turn["parent_id"] is None
    assert turn["attributes"][LUNARY_TURN_ENDED_BY] == "shutdown"
    assert OUTPUT_VALUE not in turn["attributes"]
