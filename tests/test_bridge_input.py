"""The bridge's HTTP contract: bad input answers 4xx or per-event errors, good events land,
CORS, projects, duplicates, run timing and runs that never end."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from otel_lunary.attributes import (
    ERROR_TYPE,
    GEN_AI_USAGE_INPUT_TOKENS,
    INPUT_VALUE,
    LUNARY_MESSAGE_ID,
    LUNARY_PROJECT,
    LUNARY_RUN_ID,
    LUNARY_RUN_UNFINISHED,
    LUNARY_TURN_ENDED_BY,
    OUTPUT_VALUE,
)
from helpers.servers import poll_until
from helpers.bridge import APP_KEY, RunningBridge

INGEST = "/v1/runs/ingest"
AUTH = {"Authorization": f"Bearer {APP_KEY}"}
THREAD = "thread-1"


@pytest.fixture
def bridge(tmp_path):
    running = RunningBridge(tmp_path / "state.sqlite", keys=f"{APP_KEY}=demo,other-key=other", max_body_bytes=64 * 1024, max_events=50, run_timeout_s=3600)
    yield running
    running.close()


def chat(run_id: str, role: str = "user", content: str = "hi", **extra) -> dict:
    return {"event": "chat", "type": "thread", "runId": run_id, "parentRunId": THREAD, "timestamp": 1795924374366,
            "message": {"role": role, "content": content}, **extra}


def landed(bridge: RunningBridge, run_id: str) -> bool:
    return any(span.attributes.get(LUNARY_MESSAGE_ID) == run_id for span in bridge.spans())


def post(bridge: RunningBridge, body, headers=AUTH, **kwargs) -> httpx.Response:
    if not isinstance(body, (bytes, str)) and body is not None and "content" not in kwargs:
        kwargs["content"] = json.dumps(body)
    elif body is not None:
        kwargs["content"] = body
    return httpx.post(bridge.url + kwargs.pop("path", INGEST), headers={"Content-Type": "application/json", **headers}, timeout=10, **kwargs)


# (case, request body or raw bytes, headers, expected status, expected message fragment)
REQUEST_CASES = [
    ("no auth header", {"events": []}, {}, 401, "missing Authorization: Bearer"),
    ("not a bearer token", {"events": []}, {"Authorization": f"Basic {APP_KEY}"}, 401, "missing Authorization: Bearer"),
    ("unknown app key", {"events": []}, {"Authorization": "Bearer nope"}, 401, "unknown app key"),
    ("malformed JSON", b'{"events": [', AUTH, 400, "body is not JSON"),
    ("not UTF-8", b'\xff\xfe{"events": []}', AUTH, 400, "body is not JSON"),
    ("body is a list", [], AUTH, 400, 'body must be an object {"events": [...]}'),
    ("events is not a list", {"events": {"event": "chat"}}, AUTH, 400, 'body must be an object {"events": [...]}'),
    ("no events key", {"runs": []}, AUTH, 400, 'body must be an object {"events": [...]}'),
    ("oversize body", b'{"events": ["' + b"x" * (65 * 1024) + b'"]}', AUTH, 413, "over the 65536-byte limit"),
    ("too many events", {"events": [chat(f"m{i}") for i in range(51)]}, AUTH, 413, "over the 50-event limit"),
    ("wrong path", {"events": []}, {**AUTH, "X-Path": "/v1/runs"}, 404, "no route /v1/runs"),
]


@pytest.mark.parametrize(("case", "body", "headers", "status", "message"), REQUEST_CASES, ids=[c[0] for c in REQUEST_CASES])
def test_bad_request_is_refused_and_the_next_one_lands(bridge, case, body, headers, status, message):
    """Each malformed request gets its status and message; a valid event right after still lands."""
    path = headers.pop("X-Path", INGEST) if "X-Path" in headers else INGEST
    headers = dict(headers)
    response = post(bridge, body, headers=headers, path=path)
    assert response.status_code == status
    assert message in response.json()["error"]
    good = f"good-{uuid.uuid4()}"
    assert post(bridge, {"events": [chat(good)]}).json() == {"results": [{"id": good, "success": True}]}
    poll_until(lambda: landed(bridge, good), timeout=20, what="the valid event's span")


def test_chunked_body_needs_a_length(bridge):
    """A body without Content-Length (chunked) is refused with 411."""
    response = httpx.post(bridge.url + INGEST, headers=AUTH, content=iter([b'{"events": []}']), timeout=10)
    assert response.status_code == 411
    assert "Content-Length" in response.json()["error"]


# (case, bad event, expected error fragment)
EVENT_CASES = [
    ("not an object", 42, "each event must be an object, got int"),
    ("no kind", {"runId": "x1", "type": "thread"}, "event (the event kind) is required"),
    ("unknown kind", {"event": "explode", "runId": "x2"}, "unsupported event kind 'explode'"),
    ("no runId", {"event": "feedback", "feedback": {"thumb": "up"}}, "runId is required"),
    ("runId not a string", {"event": "feedback", "runId": ["a"], "feedback": {}}, "runId must be a string, got list"),
    ("bad ISO timestamp", {**chat("x3"), "timestamp": "yesterday"}, "timestamp 'yesterday' is not ISO 8601"),
    ("boolean timestamp", {**chat("x4"), "timestamp": True}, "got a boolean"),
    ("chat without message", {**chat("x5"), "message": None}, "a chat event needs message"),
    ("chat with unknown role", chat("x6", role="robot"), "message.role must be user, assistant, system or tool"),
    ("chat without thread", {**chat("x7"), "parentRunId": None}, "parentRunId is required"),
    ("feedback not an object", {"event": "feedback", "runId": "x8", "feedback": "great"}, "a feedback event needs feedback"),
    ("unknown run type", {"event": "start", "type": "retriever", "runId": "x9"}, "unsupported run type 'retriever'"),
    ("metadata nested 100 deep", {**chat("x11"), "metadata": json.loads("[" * 100 + "]" * 100)}, "deeper than 64 levels"),
    ("custom-event without name", {"event": "custom-event", "type": "thread", "runId": "x10", "parentRunId": THREAD}, "a custom-event needs name"),
]


@pytest.mark.parametrize(("case", "event", "message"), EVENT_CASES, ids=[c[0] for c in EVENT_CASES])
def test_bad_event_fails_alone(bridge, case, event, message):
    """A bad event gets success false and a message in results; its valid neighbour lands."""
    good = f"good-{uuid.uuid4()}"
    response = post(bridge, {"events": [event, chat(good)]})
    assert response.status_code == 200
    bad_result, good_result = response.json()["results"]
    assert bad_result["success"] is False
    assert message in bad_result["error"]
    assert good_result == {"id": good, "success": True}
    poll_until(lambda: landed(bridge, good), timeout=20, what="the valid event's span")


class TestCors:
    def test_preflight_and_post_from_an_allowed_origin(self, tmp_path):
        """OPTIONS answers 204 with the allowed headers; the POST carries Access-Control-Allow-Origin."""
        origin = "http://app.example"
        bridge = RunningBridge(tmp_path / "s.sqlite", cors_origins=origin)
        try:
            preflight = httpx.options(bridge.url + INGEST, headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                                                    "Access-Control-Request-Headers": "authorization,content-type"})
            assert preflight.status_code == 204
            assert preflight.headers["access-control-allow-origin"] == origin
            assert "Authorization" in preflight.headers["access-control-allow-headers"]
            assert "POST" in preflight.headers["access-control-allow-methods"]
            response = post(bridge, {"events": [chat("cors-1")]}, headers={**AUTH, "Origin": origin})
            assert response.headers["access-control-allow-origin"] == origin
        finally:
            bridge.close()

    def test_other_origins_are_refused(self, tmp_path):
        """A preflight from an origin not configured gets 403 and no CORS headers."""
        bridge = RunningBridge(tmp_path / "s.sqlite", cors_origins="http://app.example")
        try:
            preflight = httpx.options(bridge.url + INGEST, headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
            assert preflight.status_code == 403
            assert "access-control-allow-origin" not in preflight.headers
        finally:
            bridge.close()


def test_each_key_is_its_own_project(bridge):
    """Spans from two app keys carry their own lunary.project on separate providers' resources."""
    post(bridge, {"events": [chat("p-demo")]})
    post(bridge, {"events": [chat("p-other")]}, headers={"Authorization": "Bearer other-key"})
    spans = poll_until(lambda: len(bridge.spans()) == 2 and bridge.spans(), timeout=20, what="two spans")
    projects = {span.attributes[LUNARY_MESSAGE_ID]: span.resource.attributes[LUNARY_PROJECT] for span in spans}
    assert projects == {"p-demo": "demo", "p-other": "other"}


def test_duplicates_are_recorded_once(bridge):
    """The same chat event or run end sent twice (a JS resend) makes one span."""
    start = {"event": "start", "type": "tool", "name": "lookup", "runId": "run-dup", "timestamp": 1795924374000, "input": "x"}
    end = {"event": "end", "type": "tool", "runId": "run-dup", "timestamp": 1795924374500, "output": "y"}
    for _ in range(2):
        assert all(r["success"] for r in post(bridge, {"events": [chat("dup-1"), start, end]}).json()["results"])
    assert bridge.bridge.flush(20)
    spans = bridge.spans()
    assert sorted(span.name for span in spans) == ["execute_tool lookup", "message user"]


def test_run_keeps_the_clients_start_and_end(bridge):
    """start/end timestamps (JS epoch ms, Python ISO) become the span's start and end; tokens and errors map."""
    events = [
        chat("u-1"),
        {"event": "start", "type": "llm", "name": "gpt-4o", "runId": "llm-1", "parentRunId": "u-1", "timestamp": 1795924374400,
         "input": [{"role": "user", "content": "hi"}], "params": {"temperature": 0.5}},
        {"event": "end", "type": "llm", "runId": "llm-1", "timestamp": "2026-11-29T03:52:54.900000+00:00",
         "output": {"role": "assistant", "content": "hello"}, "tokensUsage": {"prompt": 3, "completion": 2}},
        {"event": "start", "type": "llm", "name": "gpt-4o", "runId": "llm-2", "parentRunId": "u-1", "timestamp": 1795924375000},
        {"event": "error", "type": "llm", "runId": "llm-2", "timestamp": 1795924375250,
         "error": {"message": "Error code: 500 - boom", "stack": "Traceback (most recent call last):\nopenai.InternalServerError: Error code: 500 - boom"}},
    ]
    assert all(r["success"] for r in post(bridge, {"events": events}).json()["results"])
    calls = {span.attributes[LUNARY_RUN_ID]: span for span in poll_until(lambda: len(bridge.spans()) == 3 and bridge.spans(), timeout=20, what="three spans") if LUNARY_RUN_ID in span.attributes}
    ok, failed = calls["llm-1"], calls["llm-2"]
    assert ok.start_time == 1795924374400 * 1_000_000
    assert ok.end_time - ok.start_time == 500_000_000  # 03:52:54.900 UTC is 1795924374900 ms
    assert ok.attributes[GEN_AI_USAGE_INPUT_TOKENS] == 3
    assert failed.attributes[ERROR_TYPE] == "InternalServerError"
    assert failed.status.description == "Error code: 500 - boom"
    assert failed.end_time - failed.start_time == 250_000_000


def test_run_without_end_is_closed_as_unfinished(tmp_path):
    """A run whose end never comes is closed after the run timeout and marked lunary.run.unfinished."""
    bridge = RunningBridge(tmp_path / "s.sqlite", run_timeout_s=0.2)
    try:
        started = {"event": "start", "type": "agent", "name": "Stuck", "runId": "stuck-1", "timestamp": 1795924374000, "input": "go"}
        post(bridge, {"events": [started]})
        (span,) = poll_until(lambda: bridge.spans(), timeout=20, what="the unfinished run's span")
        assert span.name == "invoke_agent Stuck"
        assert span.attributes[LUNARY_RUN_UNFINISHED] is True
        assert span.start_time == 1795924374000 * 1_000_000
        assert bridge.bridge.store.counts()["open_runs"] == 0
    finally:
        bridge.close()


def test_an_unanswered_turn_ends_at_the_turn_timeout_not_the_run_timeout(tmp_path):
    """The bridge ends a turn nobody answered after OTEL_LUNARY_TURN_TIMEOUT, like the SDK,
    while a run started at the same moment stays open until the (longer) run timeout."""
    bridge = RunningBridge(tmp_path / "s.sqlite", run_timeout_s=3600, turn_timeout=0.2)
    try:
        now_ms = time.time_ns() // 1_000_000
        started = {"event": "start", "type": "agent", "name": "Busy", "runId": "busy-1", "timestamp": now_ms, "input": "go"}
        question = {**chat("q-1", content="Anyone there?"), "timestamp": now_ms}
        assert post(bridge, {"events": [started, question]}).status_code == 200
        turns = poll_until(lambda: [s for s in bridge.spans() if s.name == "invoke_workflow turn"], timeout=20, what="the turn to time out")
        assert turns[0].attributes[LUNARY_TURN_ENDED_BY] == "timeout"
        assert not any(s.name == "invoke_agent Busy" for s in bridge.spans())
        assert bridge.bridge.store.counts()["open_runs"] == 1
    finally:
        bridge.close()


def test_a_system_prompt_before_the_first_question_goes_in_the_first_turn(bridge):
    """As the SDK holds it: system prompt, question and answer read as one turn, question ->
    answer, with the prompt inside it (not a trace of its own)."""
    events = [
        {**chat("s-1", role="system", content="You are terse."), "parentRunId": "t-sys", "timestamp": 1795924374000},
        {**chat("q-1", content="Capital of France?"), "parentRunId": "t-sys", "timestamp": 1795924374100},
        {**chat("a-1", role="assistant", content="Paris."), "parentRunId": "t-sys", "timestamp": 1795924374900},
    ]
    assert all(result["success"] for result in post(bridge, {"events": events}).json()["results"])
    spans = poll_until(lambda: len(bridge.spans()) == 4 and bridge.spans(), timeout=20, what="turn and three messages")
    (turn,) = [span for span in spans if span.name == "invoke_workflow turn"]
    assert turn.parent is None
    assert (turn.attributes[INPUT_VALUE], turn.attributes[OUTPUT_VALUE]) == ("Capital of France?", "Paris.")
    assert turn.attributes[LUNARY_TURN_ENDED_BY] == "reply"
    assert turn.start_time == 1795924374100 * 1_000_000, "the turn starts with its question"
    for span in spans:
        if span is not turn:
            assert span.parent is not None and span.parent.span_id == turn.context.span_id, span.name
            assert span.context.trace_id == turn.context.trace_id
    assert {span.name for span in spans} == {"invoke_workflow turn", "message system", "message user", "message assistant"}
