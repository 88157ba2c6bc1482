"""A turn is a real span: the root of its trace, from the user's message to the answer.

conventions/README.md, decision 2: what starts and ends a turn span, what it carries, and
where the other spans of the turn go. The real SDK records into the in-memory exporter
of conftest.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan

import otel_lunary as lunary
from otel_lunary.attributes import (
    GEN_AI_CONVERSATION_ID,
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OPERATION_NAME,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_TOOL_CALL_ID,
    GEN_AI_WORKFLOW_NAME,
    INPUT_VALUE,
    LANGFUSE_OBSERVATION_TYPE,
    LANGFUSE_TRACE_NAME,
    LUNARY_MESSAGE_CONTENT,
    LUNARY_MESSAGE_ID,
    LUNARY_MESSAGE_TOOL_CALL_ID,
    LUNARY_SPAN_TYPE,
    LUNARY_TURN_ENDED_BY,
    OPENINFERENCE_SPAN_KIND,
    OUTPUT_VALUE,
    USER_ID,
)
from otel_lunary.ids import format_message_id
from helpers.servers import poll_until

TURN = "invoke_workflow turn"

# Run in its own interpreter: forking the pytest process, which has threads, is not safe.
FORKED_TIMEOUT = """
import os, sys, time
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import otel_lunary as lunary
from otel_lunary.attributes import LUNARY_TURN_ENDED_BY

memory = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(memory))
lunary.configure(tracer_provider=provider)
lunary.open_thread().track_message({"role": "user", "content": "parent"})  # starts the parent's timeout thread
pid = os.fork()
if pid == 0:
    memory.clear()
    lunary.configure(tracer_provider=provider, turn_timeout=0.2)
    lunary.open_thread().track_message({"role": "user", "content": "child"})
    def ended():
        return [s.attributes[LUNARY_TURN_ENDED_BY] for s in memory.get_finished_spans() if LUNARY_TURN_ENDED_BY in s.attributes]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not ended():
        time.sleep(0.05)
    ended = ended()
    print("child: " + (ended[0] if ended else "still open"), flush=True)
    os._exit(0)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def turns(recorded) -> list[ReadableSpan]:
    return sorted(recorded.named(TURN), key=lambda span: span.start_time)


def span_of(recorded, message_id: str) -> ReadableSpan:
    return next(span for span in recorded.all() if span.attributes.get(LUNARY_MESSAGE_ID) == message_id)


class TestTheTurnSpan:
    def test_a_user_message_opens_a_turn_that_its_reply_ends(self, recorded):
        """The turn span is the root, starts at the question, ends at the answer, and carries both."""
        thread = lunary.open_thread(user_id="alice")
        before_question = time.time_ns()
        question = thread.track_message({"role": "user", "content": "Weather in Paris?"})
        after_question = time.time_ns()
        assert recorded.named(TURN) == []  # open until answered
        before_answer = time.time_ns()
        answer = thread.track_message({"role": "assistant", "content": "Rainy, 14°C."})
        after_answer = time.time_ns()
        (turn,) = turns(recorded)
        assert turn.parent is None
        assert before_question <= turn.start_time <= after_question
        assert before_answer <= turn.end_time <= after_answer
        attributes = turn.attributes
        assert attributes[GEN_AI_OPERATION_NAME] == "invoke_workflow"
        assert attributes[GEN_AI_WORKFLOW_NAME] == "turn"
        assert attributes[LUNARY_SPAN_TYPE] == "turn"
        assert attributes[LUNARY_TURN_ENDED_BY] == "reply"
        assert attributes[GEN_AI_CONVERSATION_ID] == thread.id and attributes[USER_ID] == "alice"
        assert json.loads(attributes[GEN_AI_INPUT_MESSAGES]) == [{"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]}]
        assert json.loads(attributes[GEN_AI_OUTPUT_MESSAGES])[0]["parts"] == [{"type": "text", "content": "Rainy, 14°C."}]
        assert (attributes[INPUT_VALUE], attributes[OUTPUT_VALUE]) == ("Weather in Paris?", "Rainy, 14°C.")
        for message_id in (question, answer):
            message = span_of(recorded, message_id)
            assert message.parent.span_id == turn.context.span_id
            assert message_id == format_message_id(message.context)

    def test_an_assistant_message_asking_for_tools_does_not_end_the_turn(self, recorded):
        """The turn waits for the answer that follows the tool call."""
        thread = lunary.open_thread()
        thread.track_message({"role": "user", "content": "Weather?"})
        call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
        thread.track_message({"role": "assistant", "content": None, "tool_calls": [call]})
        thread.track_message({"role": "tool", "tool_call_id": "c1", "content": "rain"})
        assert recorded.named(TURN) == []
        thread.track_message({"role": "assistant", "content": "It rains."})
        (turn,) = turns(recorded)
        assert turn.attributes[OUTPUT_VALUE] == "It rains."

    def test_later_spans_of_the_turn_join_its_trace(self, recorded):
        """An event and a second reply after the answer still go under the turn span."""
        thread = lunary.open_thread()
        thread.track_message({"role": "user", "content": "Hi"})
        thread.track_message({"role": "assistant", "content": "Hello!"})
        thread.track_event("open-document")
        thread.track_message({"role": "assistant", "content": "Anything else?"})
        (turn,) = turns(recorded)
        assert turn.attributes[OUTPUT_VALUE] == "Hello!"
        later = [span for span in recorded.all() if span.name in ("event open-document", "message assistant")]
        assert len(later) == 3 and {span.parent.span_id for span in later} == {turn.context.span_id}

    def test_the_application_span_is_linked_not_the_parent(self, recorded):
        """A request span active at the question is a link of the turn, which stays a root."""
        thread = lunary.open_thread()
        with trace.get_tracer("app").start_as_current_span("GET /chat") as request:
            thread.track_message({"role": "user", "content": "Hi"})
            thread.track_message({"role": "assistant", "content": "Hello!"})
        (turn,) = turns(recorded)
        assert turn.parent is None
        assert [link.context.span_id for link in turn.links] == [request.get_span_context().span_id]

    def test_without_content_capture_the_turn_keeps_its_shape(self, recorded):
        """No text leaves the process; the turn still starts, ends by its reply and says so."""
        lunary.configure(tracer_provider=recorded.provider, capture_content=False)
        thread = lunary.open_thread()
        thread.track_message({"role": "user", "content": "secret question"})
        thread.track_message({"role": "assistant", "content": "secret answer"})
        (turn,) = turns(recorded)
        assert turn.attributes[LUNARY_TURN_ENDED_BY] == "reply"
        assert not {GEN_AI_INPUT_MESSAGES, GEN_AI_OUTPUT_MESSAGES, INPUT_VALUE, OUTPUT_VALUE} & set(turn.attributes)
        assert "secret" not in json.dumps([dict(span.attributes) for span in recorded.all()])


class TestWhatEndsATurn:
    def test_the_next_user_message_ends_an_unanswered_turn(self, recorded):
        """Two questions in a row: the first turn ends where the second starts, with no output."""
        thread = lunary.open_thread()
        thread.track_message({"role": "user", "content": "Hello?"})
        thread.track_message({"role": "user", "content": "Anyone there?"})
        (first,) = turns(recorded)
        assert first.attributes[LUNARY_TURN_ENDED_BY] == "next_message"
        assert OUTPUT_VALUE not in first.attributes and GEN_AI_OUTPUT_MESSAGES not in first.attributes
        thread.track_message({"role": "assistant", "content": "Yes!"})
        second = turns(recorded)[1]
        assert first.end_time == second.start_time
        assert (second.attributes[INPUT_VALUE], second.attributes[OUTPUT_VALUE]) == ("Anyone there?", "Yes!")

    def test_flush_ends_open_turns(self, recorded):
        """lunary.flush() exports what was tracked, so the waiting turn ends, unanswered."""
        thread = lunary.open_thread()
        thread.track_message({"role": "user", "content": "Hello?"})
        lunary.flush()
        (turn,) = turns(recorded)
        assert turn.attributes[LUNARY_TURN_ENDED_BY] == "flush"

    def test_shutdown_ends_open_turns(self, recorded):
        """lunary.shutdown() ends the waiting turn before the provider stops."""
        thread = lunary.open_thread()
        thread.track_message({"role": "user", "content": "Hello?"})
        lunary.shutdown()
        (turn,) = turns(recorded)
        assert turn.attributes[LUNARY_TURN_ENDED_BY] == "shutdown"

    def test_an_unanswered_turn_ends_at_its_timeout(self, recorded):
        """With no reply and no other call, the background timeout ends the turn."""
        lunary.configure(tracer_provider=recorded.provider, turn_timeout=0.2)
        thread = lunary.open_thread()
        thread.track_message({"role": "user", "content": "Hello?"})
        (turn,) = poll_until(lambda: turns(recorded) or None, timeout=30, what="the turn to time out")
        assert turn.attributes[LUNARY_TURN_ENDED_BY] == "timeout"
        assert turn.end_time - turn.start_time >= 0.2e9

    def test_a_turn_due_before_the_waiting_ones_ends_at_its_timeout(self, recorded):
        """A turn with a shorter timeout than the turns already waiting still ends on time:
        the timeout does not wait for the earlier turns' (much later) deadline."""
        waiting = lunary.open_thread()
        waiting.track_message({"role": "user", "content": "Anyone?"})  # due in 300 s
        time.sleep(0.05)  # let the timeout thread settle on that deadline (no timing asserted)
        lunary.configure(tracer_provider=recorded.provider, turn_timeout=0.2)
        thread = lunary.open_thread()
        thread.track_message({"role": "user", "content": "Hello?"})
        (turn,) = poll_until(lambda: turns(recorded) or None, timeout=30, what="the short turn to time out")
        assert turn.attributes[LUNARY_TURN_ENDED_BY] == "timeout"
        assert turn.attributes[GEN_AI_CONVERSATION_ID] == thread.id

    def test_a_forked_worker_times_its_turns_out(self, tmp_path):
        """A worker forked after the parent opened a turn (gunicorn --preload) ends its own
        unanswered turns at their timeout: the child gets a timeout thread of its own."""
        script = tmp_path / "fork_turns.py"
        script.write_text(FORKED_TIMEOUT)
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip() == "child: timeout"

    def test_a_reply_in_another_trace_does_not_end_the_turn(self, recorded):
        """A reply explicitly placed under an older turn's message leaves the current turn open."""
        thread = lunary.open_thread()
        old = thread.track_message({"role": "user", "content": "First?"})
        thread.track_message({"role": "assistant", "content": "One."})
        thread.track_message({"role": "user", "content": "Second?"})
        with lunary.parent(old):
            thread.track_message({"role": "assistant", "content": "One, again."})
        assert len(turns(recorded)) == 1
        thread.track_message({"role": "assistant", "content": "Two."})
        assert [t.attributes[OUTPUT_VALUE] for t in turns(recorded)] == ["One.", "Two."]


class TestTheSystemPrompt:
    def test_a_system_message_before_the_first_question_belongs_to_the_first_turn(self, recorded):
        """Not a turn of its own: a child of the first turn span, at the time it was tracked."""
        thread = lunary.open_thread()
        before = time.time_ns()
        system_id = thread.track_message({"role": "system", "content": "You are a helpful travel assistant."})
        after = time.time_ns()
        assert system_id is not None
        thread.track_message({"role": "user", "content": "Hi"})
        thread.track_message({"role": "assistant", "content": "Hello!"})
        (turn,) = turns(recorded)
        system = span_of(recorded, system_id)
        assert system.parent.span_id == turn.context.span_id
        assert system_id == format_message_id(system.context)  # a traceparent from the start
        assert before <= system.start_time <= after
        assert turn.attributes[INPUT_VALUE] == "Hi"
        assert [span.name for span in recorded.all() if span.parent is None] == [TURN]

    def test_feedback_on_a_held_system_message_finds_it(self, recorded):
        """Feedback given while the system message is still held lands under its span."""
        thread = lunary.open_thread()
        system_id = thread.track_message({"role": "system", "content": "Be brief."})
        lunary.track_feedback(system_id, {"thumb": "down"})
        thread.track_message({"role": "user", "content": "Hi"})
        feedback = recorded.one("feedback")
        assert feedback.parent.span_id == span_of(recorded, system_id).context.span_id

    def test_a_system_message_with_no_question_is_recorded_at_flush(self, recorded):
        """Held messages are not lost: with no user message, flush records them on their own."""
        thread = lunary.open_thread()
        system_id = thread.track_message({"role": "system", "content": "Be brief."})
        assert recorded.all() == []
        lunary.flush()
        system = span_of(recorded, system_id)
        assert system.parent is None and system_id == format_message_id(system.context)


class TestNotModelCalls:
    def test_message_spans_carry_no_genai_content_or_tool_call_id(self, recorded):
        """Messages keep content and tool-call id in lunary.* so GenAI readers do not see model calls."""
        thread = lunary.open_thread()
        thread.track_message({"role": "user", "content": "Weather?"})
        thread.track_message({"role": "tool", "tool_call_id": "c1", "content": "rain"})
        thread.track_message({"role": "assistant", "content": "It rains."})
        thread.track_event("open-document")
        messages = [span for span in recorded.all() if span.attributes.get(LUNARY_SPAN_TYPE) in ("message", "event")]
        assert len(messages) == 4
        for span in messages:
            assert [key for key in span.attributes if key.startswith("gen_ai.")] == [GEN_AI_CONVERSATION_ID], span.name
        tool = recorded.one("message tool")
        assert tool.attributes[LUNARY_MESSAGE_TOOL_CALL_ID] == "c1" and GEN_AI_TOOL_CALL_ID not in tool.attributes
        assert json.loads(tool.attributes[LUNARY_MESSAGE_CONTENT])[0]["parts"][0]["response"] == "rain"

    @pytest.mark.parametrize("name", ["invoke_workflow turn", "message user", "event e", "chain step"])
    def test_openinference_kinds(self, recorded, name):
        """Under the openinference dialect the turn, messages, events and chains are CHAIN spans."""
        lunary.configure(tracer_provider=recorded.provider, dialects="openinference")

        @lunary.chain("step")
        def step() -> None:
            return None

        thread = lunary.open_thread()
        thread.track_message({"role": "user", "content": "Hi"})
        thread.track_event("e")
        step()
        thread.track_message({"role": "assistant", "content": "Hello!"})
        assert recorded.named(name)[0].attributes[OPENINFERENCE_SPAN_KIND] == "CHAIN"

    def test_langfuse_dialect_names_the_turn_and_types_our_spans(self, recorded):
        """Under the langfuse dialect the turn names the trace, and messages are events, not spans or tools."""
        lunary.configure(tracer_provider=recorded.provider, dialects="langfuse")
        thread = lunary.open_thread()
        answer = thread.track_message({"role": "user", "content": "Hi"})
        thread.track_message({"role": "tool", "tool_call_id": "c1", "content": "rain"})
        thread.track_message({"role": "assistant", "content": "Hello!"})
        lunary.track_feedback(answer, {"thumb": "up"})
        kinds = {span.name: (span.attributes.get(LANGFUSE_OBSERVATION_TYPE), span.attributes.get(LANGFUSE_TRACE_NAME)) for span in recorded.all()}
        assert kinds == {
            TURN: ("chain", "turn"),
            "message user": ("event", None),
            "message tool": ("event", None),
            "message assistant": ("event", None),
            "feedback": ("evaluator", None),
        }
