"""otel-lunary fits the application's OTel setup and its concurrency."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from opentelemetry import trace

import otel_lunary as lunary
from otel_lunary.attributes import GEN_AI_CONVERSATION_ID

ROOT = Path(__file__).resolve().parent.parent

APP = """
import otel_lunary as lunary
thread = lunary.open_thread("conv-instrumented")
msg_id = thread.track_message({"role": "user", "content": "hi"})
thread.track_message({"role": "assistant", "content": "hello"})
"""


def test_works_under_opentelemetry_instrument(tmp_path):
    """Under `opentelemetry-instrument`, spans go to the provider it installed."""
    script = tmp_path / "app.py"
    script.write_text(APP)
    instrument = Path(sys.executable).with_name("opentelemetry-instrument")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none", "OTEL_SERVICE_NAME": "instrumented-app"}
    done = subprocess.run([str(instrument), sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    decoder, text, spans = json.JSONDecoder(), done.stdout, []
    index = text.find("{")
    while index != -1:
        span, end = decoder.raw_decode(text, index)
        spans.append(span)
        index = text.find("{", end)
    assert {span["name"] for span in spans} == {"invoke_workflow turn", "message user", "message assistant"}
    assert all(span["resource"]["attributes"]["service.name"] == "instrumented-app" for span in spans)
    assert all(span["attributes"][GEN_AI_CONVERSATION_ID] == "conv-instrumented" for span in spans)
    assert not list(tmp_path.glob("*.jsonl")), "no local file when the app has its own provider"


def test_uses_the_application_provider(recorded):
    """Without arguments, configure() uses the global SDK provider the app installed."""
    assert lunary.configure() is trace.get_tracer_provider()
    lunary.open_thread().track_message({"role": "user", "content": "hi"})
    assert recorded.named("message user")


def test_parent_is_isolated_between_asyncio_tasks(recorded):
    """Concurrent tasks each nest their own work under their own message."""
    tracer = trace.get_tracer("app")
    threads = [lunary.open_thread(f"conv-{n}") for n in range(5)]

    async def handle(thread):
        msg_id = thread.track_message({"role": "user", "content": thread.id})
        async with lunary.parent(msg_id):
            await asyncio.sleep(0)
            with tracer.start_as_current_span(f"work {thread.id}"):
                await asyncio.sleep(0)

    async def main():
        await asyncio.gather(*(handle(thread) for thread in threads))

    asyncio.run(main())
    check_isolated(recorded, threads)


def test_parent_is_isolated_between_threads(recorded):
    """Concurrent OS threads each nest their own work under their own message."""
    tracer = trace.get_tracer("app")
    threads = [lunary.open_thread(f"conv-{n}") for n in range(5)]
    barrier = threading.Barrier(len(threads))

    def handle(thread):
        msg_id = thread.track_message({"role": "user", "content": thread.id})
        with lunary.parent(msg_id):
            barrier.wait(timeout=10)
            with tracer.start_as_current_span(f"work {thread.id}"):
                pass

    workers = [threading.Thread(target=handle, args=(thread,)) for thread in threads]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)
    check_isolated(recorded, threads)


def check_isolated(recorded, threads):
    messages = {span.attributes[GEN_AI_CONVERSATION_ID]: span for span in recorded.named("message user")}
    for thread in threads:
        work = recorded.one(f"work {thread.id}")
        assert work.parent.span_id == messages[thread.id].context.span_id
        assert work.attributes[GEN_AI_CONVERSATION_ID] == thread.id
