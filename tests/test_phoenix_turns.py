"""Phoenix's session view shows each turn as question -> answer, with and without the dialect.

A real Phoenix (``phoenix serve``) receives the scripted conversation of
``helpers.phoenix_session.converse`` over OTLP/HTTP from the SDK and from a second process; the
assertions read Phoenix through the GraphQL operations of its own web UI (taken from
the installed UI bundle), so they check what a person opening the session sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from otel_lunary.bridge import Bridge, resolve_config
from otel_lunary.export import ExportOptions
from helpers.phoenix_session import SYSTEM_PROMPT, USER, Conversation, PhoenixUI, converse
from helpers.servers import PhoenixProcess, poll_until, start_phoenix
from helpers.bridge import APP_KEY

pytestmark = pytest.mark.slow

OPENINFERENCE = "openinference"
# What each turn's trace must hold once Phoenix has ingested everything (span names).
EXPECTED_SPANS = [
    sorted(["invoke_workflow turn", "message system", "message user", "chat gpt-4o-mini", "message assistant", "feedback", "event open-document"]),
    sorted([
        "invoke_workflow turn", "message user", "chat gpt-4o-mini", "message assistant", "execute_tool get_weather",
        "message tool", "chat gpt-4o-mini", "message assistant", "feedback",
    ]),
    sorted(["invoke_workflow turn", "message user", "chat gpt-4o-mini", "message assistant", "feedback", "feedback", "feedback"]),
]
# Phoenix's span kind for each of our span names, without and with the openinference dialect.
KINDS = {
    None: {"invoke_workflow": "UNKNOWN", "message": "UNKNOWN", "event": "UNKNOWN", "feedback": "UNKNOWN", "chat": "LLM", "execute_tool": "TOOL"},
    OPENINFERENCE: {"invoke_workflow": "CHAIN", "message": "CHAIN", "event": "CHAIN", "feedback": "EVALUATOR", "chat": "LLM", "execute_tool": "TOOL"},
}


@dataclass
class Seen:
    """One conversation as Phoenix's UI sees it."""

    dialect: str | None
    conversation: Conversation
    ui: PhoenixUI
    project_id: str
    session: dict[str, Any]
    turns: list[dict[str, Any]]
    trees: list[list[dict[str, Any]]]


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhoenixProcess]:
    with start_phoenix(tmp_path_factory.mktemp("phoenix")) as server:
        yield server


def _ingested(ui: PhoenixUI, project: str, thread_id: str) -> tuple[str, dict[str, Any], list[dict[str, Any]], list[list[dict[str, Any]]]] | None:
    """The project, session row, turns and span trees once every expected span is in; else None."""
    project_id = ui.project_id(project)
    session = ui.session(project_id, thread_id) if project_id else None
    if project_id is None or session is None:
        return None
    turns = ui.turns(session["id"])
    if len(turns) < len(EXPECTED_SPANS) or any(turn["rootSpan"] is None for turn in turns):
        return None
    trees = [ui.span_tree(project_id, turn["traceId"]) for turn in turns]
    if [sorted(span["name"] for span in tree) for tree in trees] != EXPECTED_SPANS:
        return None
    return project_id, session, turns, trees


@pytest.fixture(scope="module", params=[None, OPENINFERENCE], ids=["no-dialect", "openinference"])
def seen(request: pytest.FixtureRequest, phoenix: PhoenixProcess) -> Seen:
    dialect = request.param
    project = f"turns-{dialect or 'plain'}"
    with pytest.MonkeyPatch.context() as env:
        for name in ("OTEL_LUNARY_DIALECTS", "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
            env.delenv(name, raising=False)
        if dialect:
            env.setenv("OTEL_LUNARY_DIALECTS", dialect)
        env.setenv("OTEL_RESOURCE_ATTRIBUTES", f"openinference.project.name={project}")
        env.setenv("OTEL_LUNARY_PHOENIX_ANNOTATIONS", phoenix.url)
        conversation = converse(phoenix.url)
    ui = PhoenixUI(phoenix.url)
    found = poll_until(lambda: _ingested(ui, project, conversation.thread_id), timeout=90, what=f"the {project} session in Phoenix")
    project_id, session, turns, trees = found
    return Seen(dialect, conversation, ui, project_id, session, turns, trees)


class TestSessionView:
    def test_each_turn_reads_question_then_answer_in_order(self, seen: Seen) -> None:
        """Each row of the session view is one turn: the user's text as input, the assistant's as output."""
        rows = [(turn["rootSpan"]["input"], turn["rootSpan"]["output"]) for turn in seen.turns]
        assert [(i and i["value"], o and o["value"]) for i, o in rows] == [(t.question, t.answer) for t in seen.conversation.turns]
        assert {turn["rootSpan"]["name"] for turn in seen.turns} == {"invoke_workflow turn"}

    def test_the_system_prompt_is_not_a_turn(self, seen: Seen) -> None:
        """Three turns, the first input is the user's first question, and the prompt sits inside turn 1."""
        assert seen.session["numTraces"] == 3
        assert seen.session["firstInput"]["value"] == seen.conversation.turns[0].question
        assert seen.session["lastOutput"]["value"] == seen.conversation.turns[-1].answer
        assert seen.session["userId"] == USER
        first_turn_root = next(span for span in seen.trees[0] if span["parentId"] is None)
        system = next(span for span in seen.trees[0] if span["name"] == "message system")
        assert system["parentId"] == first_turn_root["spanId"]
        assert SYSTEM_PROMPT not in [t["rootSpan"]["input"]["value"] for t in seen.turns]

    def test_turn_latency_is_the_time_to_answer(self, seen: Seen) -> None:
        """The root's latency is the time between tracking the question and tracking the answer."""
        for turn, tracked in zip(seen.turns, seen.conversation.turns):
            least, most = tracked.latency_bounds_ms()
            # Phoenix keeps microseconds; the bounds come from nanosecond clock reads.
            assert least - 0.01 <= turn["rootSpan"]["latencyMs"] <= most + 0.01, (turn["rootSpan"]["latencyMs"], least, most)
            assert least > 0

    def test_every_span_is_classified_as_what_it_is(self, seen: Seen) -> None:
        """No message, event or feedback span passes for a model call; LLM and tool spans are LLM and TOOL."""
        kinds = KINDS[seen.dialect]
        found = {(span["name"], span["spanKind"].upper()) for tree in seen.trees for span in tree}
        assert found == {(name, kinds[name.split(" ")[0]]) for name, _ in found}

    def test_the_second_process_feedback_joins_the_third_turn(self, seen: Seen) -> None:
        """Feedback given elsewhere with only the reply's id lands in that reply's turn, under the reply."""
        tree = seen.trees[2]
        replies = {span["spanId"] for span in tree if span["name"] == "message assistant"}
        feedback = [span for span in tree if span["name"] == "feedback"]
        assert len(feedback) == 3 and {span["parentId"] for span in feedback} == replies


def _annotations(turns: list[dict[str, Any]]) -> list[dict[str, dict[str, Any]]]:
    return [{a["name"]: a for a in turn["rootSpan"]["trace"]["summaryTraceAnnotations"]} for turn in turns]


class TestFeedbackAnnotations:
    def test_live_feedback_values_are_annotations_on_their_turn(self, seen: Seen) -> None:
        """Each turn carries its live feedback as HUMAN trace annotations; the removed thumb is gone."""
        expected = [set(tracked.feedback) for tracked in seen.conversation.turns]

        def landed() -> list[dict[str, dict[str, Any]]] | None:
            found = _annotations(seen.ui.turns(seen.session["id"]))
            return found if [set(names) for names in found] == expected else None

        # The sinks post asynchronously and retry while Phoenix ingests the spans.
        found = poll_until(landed, timeout=60, what=f"annotations {expected} on the turns")
        for annotations, tracked in zip(found, seen.conversation.turns):
            assert {a["annotatorKind"] for a in annotations.values()} == {"HUMAN"}
            for key, value in tracked.feedback.items():
                annotation = annotations[key]
                if key == "thumb":
                    assert (annotation["label"], annotation["score"]) == (value, 1.0 if value == "up" else -1.0)
                elif key == "comment":
                    assert annotation["explanation"] == value
                else:
                    assert annotation["score"] == value


class TestThroughTheBridge:
    def test_lunary_sdk_traffic_reads_as_turns_with_feedback(self, phoenix: PhoenixProcess, tmp_path: Path) -> None:
        """Lunary SDK events through the bridge: the turn reads question -> answer, its thumb an annotation."""
        project, thread = "bridge-turns", "bridge-thread-1"
        options = ExportOptions(endpoint=phoenix.url, service_name="bridge", resource_attributes={"openinference.project.name": project})
        config = resolve_config(keys=f"{APP_KEY}=demo", port=0, state_path=str(tmp_path / "state.sqlite"))
        with Bridge(config, export_options=options, phoenix_annotations=phoenix.url) as bridge:
            events = [
                {"event": "chat", "type": "thread", "runId": "u-1", "parentRunId": thread, "timestamp": 1795924374000,
                 "message": {"role": "user", "content": "Is my order shipped?"}},
                {"event": "chat", "type": "thread", "runId": "a-1", "parentRunId": thread, "timestamp": 1795924374750,
                 "message": {"role": "assistant", "content": "Yes, it left this morning."}},
                {"event": "feedback", "runId": "a-1", "timestamp": 1795924379000, "feedback": {"thumb": "down"}},
            ]
            response = httpx.post(bridge.url + "/v1/runs/ingest", headers={"Authorization": f"Bearer {APP_KEY}"}, json={"events": events}, timeout=10)
            assert all(result["success"] for result in response.json()["results"])
            assert bridge.flush(30.0)
        ui = PhoenixUI(phoenix.url)

        def turn() -> dict[str, Any] | None:
            project_id = ui.project_id(project)
            session = ui.session(project_id, thread) if project_id else None
            turns = ui.turns(session["id"]) if session else []
            return turns[0] if turns and turns[0]["rootSpan"]["trace"]["summaryTraceAnnotations"] else None

        found = poll_until(turn, timeout=60, what="the bridged turn in Phoenix")
        root = found["rootSpan"]
        annotations = {a["name"]: (a["label"], a["score"]) for a in found["rootSpan"]["trace"]["summaryTraceAnnotations"]}
        assert (root["input"]["value"], root["output"]["value"]) == ("Is my order shipped?", "Yes, it left this morning.")
        assert root["latencyMs"] == 750  # the clients' timestamps: question at 0 ms, answer at 750 ms
        assert annotations == {"thumb": ("down", -1.0)}
