"""One scripted conversation recorded in a fresh interpreter with a deterministic clock,
ids and uuids, so that two runs export the same spans when they record the same way.

    python -m tests.helpers.light_spans_script {light|sdk} {file PATH|otlp URL} LLM_BASE_URL

``light``: otel-lunary's own pipeline as configured (light spans, ``otel_lunary.export.light_spans``);
``sdk``: the same pipeline with one more, do-nothing span processor on the provider, which
makes it record with the SDK's spans. Prints ``tracer=<class> lightweight=<bool>``.
"""

from __future__ import annotations

import itertools
import random
import sys
import time
import uuid

# Before anything imports them by name: every run draws the same times, ids and uuids.
_clock = itertools.count(1_700_000_000_000_000_000, 1_000)
time.time_ns = lambda: next(_clock)
_uuids = random.Random(7)
uuid.uuid4 = lambda: uuid.UUID(int=_uuids.getrandbits(128), version=4)
random.seed(11)

import openai  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import SpanProcessor  # noqa: E402
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags  # noqa: E402

import otel_lunary as lunary  # noqa: E402
from otel_lunary import _state  # noqa: E402

REMOTE_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def record(llm_base_url: str) -> None:
    client = lunary.monitor(openai.OpenAI(base_url=llm_base_url, api_key="test", max_retries=0))
    thread = lunary.open_thread(tags=["support", "vip"], user_id="user-1", user_props={"plan": "pro"}, metadata={"channel": "web", "n": 3})
    thread.track_message({"role": "system", "content": "You are a helpful travel agent."})
    question = thread.track_message({"role": "user", "content": "Plan a trip to Paris"})
    thread.track_message(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}],
        }
    )
    thread.track_message({"role": "tool", "content": "sunny, 21C", "tool_call_id": "call_1"})
    with lunary.parent(question):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Plan a trip to Paris"}])
    thread.track_message({"role": "assistant", "content": "Paris is sunny: the Louvre, then the Seine."})
    thread.track_event("itinerary_opened", metadata={"page": 2, "ratio": 0.5, "ok": True})
    thread.track_event("shared", parent=REMOTE_PARENT)  # a remote parent: the OTLP flags say so
    lunary.track_feedback(question, {"thumb": "up", "comment": "great"})

    @lunary.agent("planner")
    def plan(city: str) -> str:
        span = trace.get_current_span()  # the agent's span, as another library would reach it
        span.set_attribute("app.city", city)
        span.set_attributes({"app.days": 3, "app.tags": ["a", "b"], "app.scores": [1.5, 2.5]})
        span.add_event("app.checkpoint", {"step": 1})
        span.add_link(SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(1)), {"why": "related"})
        span.record_exception(KeyError("soft"), {"app.handled": True})
        span.set_status(Status(StatusCode.OK))
        span.update_name("invoke_agent planner (renamed)")
        return f"plan for {city}"

    @lunary.tool("booking")
    def book(city: str) -> None:
        raise ValueError(f"no rooms in {city}")

    plan("Paris")
    try:
        book("Paris")
    except ValueError:
        pass
    second = thread.track_message({"role": "user", "content": "And Lyon?"})
    thread.track_message({"role": "assistant", "content": "Lyon is lovely."}, feedback={"thumb": "down"})
    assert second is not None


def main() -> None:
    mode, exporter, target, llm_base_url = sys.argv[1:5]
    if exporter == "file":
        provider = lunary.configure(exporter="file", file_path=target, capture_content=True)
    else:
        provider = lunary.configure(exporter="otlp", endpoint=target, capture_content=True)
    if mode == "sdk":
        provider.add_span_processor(SpanProcessor())  # type: ignore[attr-defined]
    record(llm_base_url)
    tracer = _state.get().tracer
    print(f"tracer={type(tracer).__name__} lightweight={getattr(tracer, 'lightweight', False)}", flush=True)
    lunary.shutdown(timeout=30)


if __name__ == "__main__":
    main()
