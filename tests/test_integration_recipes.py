"""The recipes of docs/integrations.md run as written, against real packages and servers.

Each recipe's files are written to a temporary directory and its shell block runs under
bash with the venv first on PATH. Only what points at this machine's servers is changed:
the OTLP endpoint (an ``OtlpSink``), ``OPENAI_BASE_URL`` (the fake LLM), the port uvicorn
binds (``UVICORN_PORT``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers.coexist import ROOT, Recipe, Spans, message_trace_and_span, recipes
from otel_lunary._fake_llm import FakeLLM
from otel_lunary.attributes import (
    GEN_AI_CONVERSATION_ID,
    GEN_AI_INPUT_MESSAGES,
    LUNARY_FEEDBACK_MESSAGE_ID,
    LUNARY_MESSAGE_ID,
    SPAN_NAME_LUNARY_FEEDBACK,
)
from helpers.servers import OtlpSink, free_port, poll_until

RECIPES = recipes()
DOC_ENDPOINT = "http://localhost:4318"
VENV_BIN = str(Path(sys.executable).parent)


def recipe_env(llm: FakeLLM, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "OPENAI_", "UVICORN_"))}
    env.update(
        PATH=VENV_BIN + os.pathsep + env.get("PATH", ""),
        PYTHONPATH=str(ROOT),
        OPENAI_BASE_URL=llm.base_url,
        OPENAI_API_KEY="test-key",
        **extra,
    )
    return env


def write_recipe(recipe: Recipe, directory: Path, sink: OtlpSink, edit: Callable[[str], str] = lambda text: text) -> Path:
    for name, text in recipe.files.items():
        (directory / name).write_text(edit(text))
    assert DOC_ENDPOINT in recipe.script, "the recipe exports to the documented endpoint"
    script = directory / "run.sh"
    script.write_text("set -e\n" + recipe.script.replace(DOC_ENDPOINT, sink.endpoint))
    return script


def test_the_page_has_every_recipe_the_issue_asks_for():
    """FastAPI with workers, openai-v2, OpenInference, LangChain, opentelemetry-instrument."""
    assert set(RECIPES) == {"fastapi", "openai-v2", "openinference", "langchain", "opentelemetry-instrument"}
    for recipe in RECIPES.values():
        assert recipe.files and recipe.script, recipe.name


# --- scripts that run to completion ------------------------------------------------------


def run_script(name: str, tmp_path: Path, sink: OtlpSink, llm: FakeLLM) -> Spans:
    script = write_recipe(RECIPES[name], tmp_path, sink)
    done = subprocess.run(["bash", str(script)], cwd=tmp_path, env=recipe_env(llm), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Overriding of current TracerProvider" not in done.stderr
    assert not list(tmp_path.glob("*.jsonl")), "otel-lunary wrote no file of its own"
    return Spans.from_sink(sink)


def the_turn(spans: Spans) -> tuple[str, str]:
    """(conversation id, trace id) of the one user message of a recipe's conversation."""
    (user,) = spans.named("message user")
    return user.attributes[GEN_AI_CONVERSATION_ID], user.trace_id


def check_one_llm_span_in_the_turn(spans: Spans, scope: str | tuple[str, ...]) -> None:
    conversation, trace_id = the_turn(spans)
    (user,) = spans.named("message user")
    llm_spans = spans.llm()
    assert len(llm_spans) == 1, [(span.name, span.scope) for span in llm_spans]
    (call,) = llm_spans
    assert call.scope.startswith(scope)
    assert call.trace_id == trace_id and user in spans.ancestors(call)
    assert call.attributes[GEN_AI_CONVERSATION_ID] == conversation


def test_openai_v2_recipe(tmp_path, sink, llm):
    """openai-v2 records the one LLM span, under the user's message, with content."""
    spans = run_script("openai-v2", tmp_path, sink, llm)
    # openai-v2 records through the GenAI utilities (util-genai) under the opt-in
    check_one_llm_span_in_the_turn(spans, ("opentelemetry.instrumentation.openai_v2", "opentelemetry.util.genai"))
    assert "Plan a trip to Paris" in spans.llm()[0].attributes[GEN_AI_INPUT_MESSAGES]
    assert {span.resource["service.name"] for span in spans} == {"chat-openai-v2"}


def test_openinference_recipe(tmp_path, sink, llm):
    """OpenInference records the one LLM span; Phoenix's session.id rides on it."""
    spans = run_script("openinference", tmp_path, sink, llm)
    check_one_llm_span_in_the_turn(spans, "openinference.instrumentation.openai")
    conversation, _ = the_turn(spans)
    assert spans.llm()[0].attributes["session.id"] == conversation


def test_langchain_recipe(tmp_path, sink, llm):
    """Every LangChain span nests under the user's message and carries the conversation."""
    spans = run_script("langchain", tmp_path, sink, llm)
    check_one_llm_span_in_the_turn(spans, "openinference.instrumentation.langchain")
    conversation, trace_id = the_turn(spans)
    chain_spans = [span for span in spans if span.scope.startswith("openinference.instrumentation.langchain")]
    assert len(chain_spans) >= 2  # the chain and its LLM call
    assert all(span.trace_id == trace_id and span.attributes[GEN_AI_CONVERSATION_ID] == conversation for span in chain_spans)


def test_opentelemetry_instrument_recipe(tmp_path, sink, llm):
    """Zero-code: the provider opentelemetry-instrument built records everything."""
    spans = run_script("opentelemetry-instrument", tmp_path, sink, llm)
    check_one_llm_span_in_the_turn(spans, "otel_lunary")
    assert {span.resource["service.name"] for span in spans} == {"chat-zero-code"}
    assert {"message user", "message assistant"} <= {span.name for span in spans}


# --- FastAPI under uvicorn --workers 2 -----------------------------------------------------


class Server:
    """The FastAPI recipe's shell block, run in its own process group."""

    def __init__(self, tmp_path: Path, sink: OtlpSink, llm: FakeLLM, edit: Callable[[str], str] = lambda text: text, **env: str) -> None:
        script = write_recipe(RECIPES["fastapi"], tmp_path, sink, edit)
        self.port = free_port()
        self.process = subprocess.Popen(
            ["bash", str(script)],
            cwd=tmp_path,
            env=recipe_env(llm, UVICORN_PORT=str(self.port), OTEL_EXPERIMENTAL_RESOURCE_DETECTORS="process", **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        poll_until(self._up, timeout=90, interval=0.2, what="uvicorn workers")

    def _up(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"uvicorn exited: {self.process.stdout.read().decode() if self.process.stdout else ''}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/openapi.json", timeout=5):
                return True
        except OSError:
            return False

    def post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=json.dumps(body).encode(), headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def sigterm(self) -> None:
        """SIGTERM to uvicorn and its workers, as a process manager stops a service; wait until all are gone."""
        os.killpg(self.process.pid, signal.SIGTERM)

        def gone() -> bool:
            if self.process.poll() is None:  # bash, our child: reap it or the group never empties
                return False
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return True
            return False

        poll_until(gone, timeout=60, what="uvicorn and its workers to exit")
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None or self._group_alive():
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=10)
        if self.process.stdout:
            self.process.stdout.close()

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.process.pid, 0)
            return True
        except ProcessLookupError:
            return False


@pytest.fixture
def server_factory(tmp_path, sink, llm):
    started: list[Server] = []

    def start(edit: Callable[[str], str] = lambda text: text, **env: str) -> Server:
        server = Server(tmp_path, sink, llm, edit, **env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def spans_when(sink: OtlpSink, predicate) -> Spans | None:
    """What the sink received, once ``predicate`` holds for it."""
    spans = Spans.from_sink(sink)
    return spans if predicate(spans) else None


@pytest.mark.slow
def test_fastapi_workers_event_and_feedback_land_in_the_right_turn(server_factory, sink):
    """Feedback and an event served by the other worker join the answer's turn; request spans carry the conversation."""
    server = server_factory(OTEL_BSP_SCHEDULE_DELAY="100")
    cross = {"feedback": False, "event": False}
    chats: list[dict] = []
    deadline = time.monotonic() + 120
    while not all(cross.values()):
        assert time.monotonic() < deadline, f"never served by two workers: {cross}"
        chat = server.post("/chat", {"message": "Plan a trip to Paris"})
        chats.append(chat)
        thread, answer = chat["thread_id"], chat["answer_id"]

        def is_request(span, thread=thread):
            return span.name == "POST /chat" and span.attributes.get(GEN_AI_CONVERSATION_ID) == thread

        def feedback_of(spans, answer=answer):
            return [span for span in spans if span.attributes.get(LUNARY_FEEDBACK_MESSAGE_ID) == answer]

        def events_of(spans, thread=thread):
            return [span for span in spans if span.name == "event copied-answer" and span.attributes.get(GEN_AI_CONVERSATION_ID) == thread]

        spans = poll_until(lambda: spans_when(sink, lambda s: any(map(is_request, s))), timeout=30, what="the /chat request span")
        chat_worker = next(span.resource["process.pid"] for span in spans if is_request(span))
        for sent in range(1, 7):  # a few tries at reaching the other worker on this turn
            server.post("/feedback", {"message_id": answer, "thumb": "up"})
            server.post("/event", {"thread_id": thread, "message_id": answer, "name": "copied-answer"})
            spans = poll_until(
                lambda sent=sent: spans_when(sink, lambda s: len(feedback_of(s)) == len(events_of(s)) == sent),
                timeout=30,
                what="the feedback and event spans",
            )
            cross["feedback"] |= any(span.resource["process.pid"] != chat_worker for span in feedback_of(spans))
            cross["event"] |= any(span.resource["process.pid"] != chat_worker for span in events_of(spans))
            if all(cross.values()):
                break
    server.sigterm()
    spans = Spans.from_sink(sink)
    for chat in chats:
        answer_trace, answer_span = message_trace_and_span(chat["answer_id"])
        feedback = [s for s in spans if s.name == SPAN_NAME_LUNARY_FEEDBACK and s.attributes[LUNARY_FEEDBACK_MESSAGE_ID] == chat["answer_id"]]
        events = [s for s in spans if s.name == "event copied-answer" and s.attributes[GEN_AI_CONVERSATION_ID] == chat["thread_id"]]
        assert feedback and events
        for span in feedback + events:
            assert (span.trace_id, span.parent_id) == (answer_trace, answer_span), span.name
        (request,) = [s for s in spans if s.name == "POST /chat" and s.attributes.get(GEN_AI_CONVERSATION_ID) == chat["thread_id"]]
        (user,) = [s for s in spans if s.attributes.get(LUNARY_MESSAGE_ID) == chat["message_id"]]
        (turn,) = [s for s in spans if s.span_id == user.parent_id]  # the question is its turn's first child
        assert (request.trace_id, request.span_id) in turn.links, "the turn links to its request"
        turn_llm = [s for s in spans.in_trace(user.trace_id) if s.is_llm]
        assert len(turn_llm) == 1 and turn_llm[0].parent_id == user.span_id
    event_requests = [s for s in spans if s.name == "POST /event"]
    assert event_requests and all(GEN_AI_CONVERSATION_ID in s.attributes for s in event_requests)


@pytest.mark.slow
def test_fastapi_worker_stopped_by_sigterm_loses_nothing(server_factory, sink):
    """Spans still queued in the workers when SIGTERM comes are all exported by the lifespan shutdown."""
    server = server_factory(OTEL_BSP_SCHEDULE_DELAY="600000")  # nothing leaves before shutdown
    chats = [server.post("/chat", {"message": f"Plan a trip to Paris, day {n}"}) for n in range(6)]
    for chat in chats:
        server.post("/feedback", {"message_id": chat["answer_id"], "thumb": "down"})
    assert sink.count() == 0, "still queued in the workers"
    server.sigterm()
    spans = Spans.from_sink(sink)
    threads = {chat["thread_id"] for chat in chats}
    assert {s.attributes[GEN_AI_CONVERSATION_ID] for s in spans.named("POST /chat")} == threads
    assert len(spans.named("message user")) == len(spans.named("message assistant")) == len(spans.llm()) == 6
    assert {s.attributes[LUNARY_FEEDBACK_MESSAGE_ID] for s in spans.named(SPAN_NAME_LUNARY_FEEDBACK)} >= {c["answer_id"] for c in chats}


LIFESPAN_FLUSH = "    lunary.shutdown()\n    provider.shutdown()\n"


@pytest.mark.slow
def test_without_the_lifespan_flush_a_sigterm_loses_the_queue(server_factory, sink):
    """Why the recipe flushes in the lifespan: a worker's exit hooks never run, its queue is lost."""
    assert LIFESPAN_FLUSH in RECIPES["fastapi"].files["app.py"]
    server = server_factory(edit=lambda text: text.replace(LIFESPAN_FLUSH, "    pass\n"), OTEL_BSP_SCHEDULE_DELAY="600000")
    server.post("/chat", {"message": "Plan a trip to Paris"})
    server.sigterm()
    assert sink.count() == 0
