"""A scripted conversation sent to Phoenix, and Phoenix read back the way its UI reads it.

Shared by ``tests/test_phoenix_turns.py`` and ``docs/img/make_screenshots.py``:

- ``converse(endpoint)`` tracks the conversation with the real SDK, the real ``openai``
  client against the offline fake model, and exports it over OTLP/HTTP (system prompt,
  three turns, one with a tool call, thumbs up, thumbs down with a comment, a removal,
  and feedback given by a second Python process that holds only the message id);
- ``PhoenixUI`` runs the GraphQL queries of Phoenix's own web UI, taken verbatim from
  the UI bundle installed with the ``arize-phoenix`` package (``SessionsTableQuery``,
  ``SessionDetailsTraceListQuery``, ...), so the assertions see what a person sees.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai

import otel_lunary as lunary
from otel_lunary._fake_llm import FakeLLM

ROOT = Path(__file__).resolve().parents[2]
USER = "alice"
MODEL = "gpt-4o-mini"
SYSTEM_PROMPT = "You are a helpful travel assistant."
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}

# The second process: only the message id string and the export settings, no shared state.
SECOND_PROCESS = """
import sys
import otel_lunary as lunary
lunary.configure(endpoint=sys.argv[1], service_name="feedback-worker")
lunary.track_feedback(sys.argv[2], {"rating": 5})
lunary.shutdown()
"""


@dataclass
class Turn:
    """One question and its answer as tracked, with the clock read around both."""

    question: str
    answer: str = ""
    question_id: str = ""
    answer_id: str = ""
    asked_ns: tuple[int, int] = (0, 0)  # time.time_ns() just before and just after tracking the question
    answered_ns: tuple[int, int] = (0, 0)  # the same around the reply
    feedback: dict[str, Any] = field(default_factory=dict)  # live values after every change, by key

    def latency_bounds_ms(self) -> tuple[float, float]:
        """The least and most the turn's duration can be, from the clock reads around the two calls."""
        least = (self.answered_ns[0] - self.asked_ns[1]) / 1e6
        most = (self.answered_ns[1] - self.asked_ns[0]) / 1e6
        return least, most


@dataclass
class Conversation:
    thread_id: str
    system_id: str
    turns: list[Turn]


def _timed(call: Any) -> tuple[Any, tuple[int, int]]:
    before = time.time_ns()
    result = call()
    return result, (before, time.time_ns())


def _give_feedback_elsewhere(endpoint: str, message_id: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SECOND_PROCESS), endpoint, message_id],
        capture_output=True, text=True, env=env, timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the second process failed:\n{done.stderr}")


def converse(endpoint: str, *, service_name: str = "travel-assistant") -> Conversation:
    """Track the scripted conversation and export it to ``endpoint`` (an OTLP/HTTP base URL).

    Dialects, project and content settings come from the environment (``OTEL_LUNARY_DIALECTS``,
    ``OTEL_RESOURCE_ATTRIBUTES``), as in an application. Returns what was tracked, once
    every span, this process's and the second one's, has been exported.
    """
    lunary.configure(endpoint=endpoint, service_name=service_name)

    @lunary.tool(name="get_weather")
    def get_weather(city: str) -> dict[str, Any]:
        return {"city": city, "temperature_c": 14, "sky": "light rain"}

    turns: list[Turn] = []
    try:
        with FakeLLM() as llm:
            client = lunary.monitor(openai.OpenAI(base_url=llm.base_url, api_key="not-used", max_retries=0))
            thread = lunary.open_thread(tags=["support"], user_id=USER, metadata={"channel": "web"})
            history: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT}]
            system_id = thread.track_message(history[0])

            def ask(text: str) -> tuple[Turn, Any]:
                turn = Turn(question=text)
                history.append({"role": "user", "content": text})
                turn.question_id, turn.asked_ns = _timed(lambda: thread.track_message({"role": "user", "content": text}))
                response = client.chat.completions.create(model=MODEL, messages=history, tools=[WEATHER_TOOL], parent=turn.question_id)
                turns.append(turn)
                return turn, response.choices[0].message

            def answer(turn: Turn, text: str) -> None:
                history.append({"role": "assistant", "content": text})
                turn.answer = text
                turn.answer_id, turn.answered_ns = _timed(lambda: thread.track_message({"role": "assistant", "content": text}))

            # Turn 1: small talk, thumbs up.
            turn, reply = ask("Hi! Can you help me plan my trip to Paris?")
            answer(turn, reply.content)
            lunary.track_feedback(turn.answer_id, {"thumb": "up"})
            turn.feedback = {"thumb": "up"}
            thread.track_event("open-document", metadata={"documentName": "paris-itinerary.pdf"})

            # Turn 2: a tool call, the tool's answer, the final reply; thumbs down with a comment.
            turn, reply = ask("What's the weather like in Paris today?")
            call = reply.tool_calls[0]
            history.append({"role": "assistant", "content": None, "tool_calls": [call.model_dump()]})
            thread.track_message(history[-1])
            with lunary.parent(turn.question_id):
                result = get_weather(**json.loads(call.function.arguments))
            history.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
            thread.track_message(history[-1])
            final = client.chat.completions.create(model=MODEL, messages=history, parent=turn.question_id)
            answer(turn, final.choices[0].message.content)
            lunary.track_feedback(turn.answer_id, {"thumb": "down", "comment": "I asked about my trip, not just today"})
            turn.feedback = {"thumb": "down", "comment": "I asked about my trip, not just today"}

            # Turn 3: thumbs up then removed; a rating given by another process.
            turn, reply = ask("Thanks, that's all!")
            answer(turn, reply.content)
            lunary.track_feedback(turn.answer_id, {"thumb": "up"})
            lunary.track_feedback(turn.answer_id, {"thumb": None})
            _give_feedback_elsewhere(endpoint, turn.answer_id)
            turn.feedback = {"rating": 5}
    finally:
        lunary.shutdown()
    assert system_id is not None
    return Conversation(thread_id=thread.id, system_id=system_id, turns=turns)


def _bundle_queries() -> dict[str, str]:
    """Every GraphQL query text compiled into the installed Phoenix UI, by operation name."""
    import phoenix

    assets = Path(phoenix.__file__).parent / "server" / "static" / "assets"
    queries: dict[str, str] = {}
    for bundle in sorted(assets.glob("*.js")):
        for match in re.finditer(r"text:`((?:query|mutation) (\w+)[^`]*)`", bundle.read_text(encoding="utf-8", errors="replace")):
            queries.setdefault(match.group(2), match.group(1))
    return queries


class PhoenixUI:
    """Phoenix's GraphQL API, queried with the UI's own operations."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._queries = _bundle_queries()

    def run(self, operation: str, **variables: Any) -> dict[str, Any]:
        """Run the UI operation ``operation``; its ``data``, or an AssertionError with the errors."""
        if operation not in self._queries:
            raise AssertionError(f"the Phoenix UI has no {operation} query any more (installed UI queries: {len(self._queries)})")
        body = json.dumps({"query": self._queries[operation], "variables": variables, "operationName": operation}).encode()
        request = urllib.request.Request(self.url + "/graphql", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
        if answer.get("errors"):
            raise AssertionError(f"{operation}: {answer['errors']}")
        return answer["data"]

    def project_id(self, name: str) -> str | None:
        edges = self.run("ProjectsPageProjectsQuery", first=100)["projects"]["edges"]
        return next((edge["project"]["id"] for edge in edges if edge["project"]["name"] == name), None)

    def session(self, project_id: str, session_id: str) -> dict[str, Any] | None:
        """The sessions-table row of ``session_id`` (``SessionsTableQuery``), or None."""
        edges = self.run("SessionsTableQuery", id=project_id, first=100)["node"]["sessions"]["edges"]
        return next((edge["session"] for edge in edges if edge["session"]["sessionId"] == session_id), None)

    def turns(self, session_node_id: str) -> list[dict[str, Any]]:
        """The session view's rows (``SessionDetailsTraceListQuery``): one trace each, its root span inside."""
        data = self.run("SessionDetailsTraceListQuery", id=session_node_id, first=50)
        return [edge["trace"] for edge in data["session"]["traces"]["edges"]]

    def span_tree(self, project_id: str, trace_id: str) -> list[dict[str, Any]]:
        """The spans of one trace as the session view's trace tree gets them (name, kind, parent)."""
        data = self.run("SessionDetailsTracesViewTreeQuery", traceId=trace_id, projectId=project_id)
        return [edge["span"] for edge in data["project"]["trace"]["spans"]["edges"]]
