"""The real Lunary SDKs pointed at the bridge record what the native SDK records.

Python: lunary 1.4.41 in a subprocess (it reads LUNARY_API_URL at import) runs the
Chats & Threads flow of tests/lunary_clients/python_flow.py against a bridge on
127.0.0.1; the same flow runs natively with otel_lunary; the two span sets must have the
same trace trees of span names and attribute keys (less what the Lunary wire cannot
carry, see test_bridge_support). Node: the npm lunary SDK runs the same flow with its
own API (node/flow.mjs). Browser: its browser build, in headless Chromium, posts
cross-origin to the bridge.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest

import otel_lunary as lunary
from otel_lunary._fake_llm import ERROR_MODEL
from otel_lunary.attributes import (
    GEN_AI_CONVERSATION_ID,
    LUNARY_FEEDBACK_MESSAGE_ID,
    LUNARY_MESSAGE_ID,
    LUNARY_PROJECT,
    LUNARY_RUN_ID,
)
from helpers.servers import poll_until
from helpers.bridge import APP_KEY, BRIDGE_ONLY, CLIENTS, NOT_ON_THE_WIRE, RunningBridge, convention_problems, keys_by_name, shape

NODE_DIR = CLIENTS / "node"


@pytest.fixture
def bridge(tmp_path):
    running = RunningBridge(tmp_path / "state.sqlite")
    yield running
    running.close()


def native_flow(llm_url: str) -> None:
    """python_flow.py, written for otel_lunary (same calls, same order)."""
    client = lunary.monitor(openai.OpenAI(base_url=llm_url, api_key="sk-fake", max_retries=0))
    t_new = lunary.open_thread()
    t_new.track_message({"role": "user", "content": "Hello, please help me"}, user_id="user1", user_props={"email": "hello@test.com"})
    thread = lunary.open_thread(t_new.id, tags=["support"])
    msg_user = thread.track_message(
        {"role": "user", "content": "What's the weather in Paris?", "tags": ["faq"]}, user_id="user1", user_props={"email": "hello@test.com"}
    )
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
              "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}]
    res = client.chat.completions.create(
        model="gpt-4o", temperature=0.2, max_tokens=100, messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=tools, parent=msg_user, user_id="user1", tags=["llm-tag"], metadata={"call": "first"},
    )
    tool_calls = [call.model_dump() for call in res.choices[0].message.tool_calls]
    thread.track_message({"role": "assistant", "content": None, "tool_calls": tool_calls})
    thread.track_message({"role": "tool", "tool_call_id": tool_calls[0]["id"], "content": '{"temperature": 57}'})
    thread.track_message({"id": "sys-1", "role": "system", "content": "You are a weather bot."})
    with lunary.parent(msg_user):
        res2 = client.chat.completions.create(model="gpt-4o", messages=[
            {"role": "user", "content": "What's the weather in Paris?"},
            {"role": "tool", "tool_call_id": "call_weather_1", "content": '{"temperature": 57}'}])
    msg_assistant = thread.track_message({"role": "assistant", "content": res2.choices[0].message.content})
    thread.track_message({"role": "assistant", "content": "It is rainy, 57F.", "is_retry": True})
    thread.track_event("event-name")
    thread.track_event("open-document", user_id="user1", user_props={"email": "hello@test.com"}, metadata={"documentName": "my-document.pdf"})
    lunary.track_feedback(msg_assistant, {"thumb": "up"})
    lunary.track_feedback(msg_assistant, {"thumb": None})
    lunary.track_feedback(msg_assistant, {"comment": "x", "rating": 4})
    stream = client.chat.completions.create(model="gpt-4o", stream=True, parent=msg_user,
                                            messages=[{"role": "user", "content": "Weather in Paris, streamed?"}])
    "".join((chunk.choices[0].delta.content or "") for chunk in stream if chunk.choices)
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model=ERROR_MODEL, parent=msg_user, messages=[{"role": "user", "content": "boom"}])

    @lunary.tool("get_weather")
    def get_weather(location):
        return {"temperature": 57, "location": location}

    @lunary.agent("WeatherAgent")
    def weather_agent(query):
        weather = get_weather("Paris")
        reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": query}])
        return f"{reply.choices[0].message.content} ({weather['temperature']}F)"

    with lunary.parent(msg_user):
        weather_agent("Weather in Paris?")
    t_meta = lunary.open_thread(user_id="user2", user_props={"plan": "pro"}, metadata={"plan": "pro"})
    t_meta.track_message({"role": "user", "content": "hi"})


def run_client(command: list[str], cwd=None) -> dict:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, env={**os.environ, "LUNARY_VERBOSE": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout[done.stdout.index("{"):])


def assert_layout(spans, *, llm_roots_allowed: int = 0) -> None:
    """The conventions' trace layout, checked span by span."""
    by_id = {span.context.span_id: span for span in spans}

    def parent(span):
        return by_id.get(span.parent.span_id) if span.parent else None

    for span in spans:
        up = parent(span)
        if span.name == "invoke_workflow turn":
            assert span.parent is None, "a user message opens a turn: a new trace"
        elif span.name == "message user":
            # (a turn still waiting for its reply is not recorded yet)
            assert span.parent is not None and (up is None or up.name == "invoke_workflow turn"), "the question is the turn's first child"
        elif span.name.startswith(("message ", "event ")):
            assert span.parent is not None and (up is None or up.name in ("invoke_workflow turn", "message user")), span.name
        elif span.name == "feedback":
            assert up is not None and up.name.startswith("message "), "feedback is a child of its message"
            assert span.attributes[LUNARY_FEEDBACK_MESSAGE_ID] == up.attributes[LUNARY_MESSAGE_ID]
            assert span.attributes[GEN_AI_CONVERSATION_ID] == up.attributes[GEN_AI_CONVERSATION_ID]
        elif span.name.startswith("execute_tool"):
            assert up is not None and up.name.startswith("invoke_agent")
        if up is not None:
            assert up.context.trace_id == span.context.trace_id
        if LUNARY_RUN_ID in span.attributes:
            assert span.end_time > span.start_time or span.name.startswith("execute_tool"), f"{span.name} keeps the client's start/end"
    roots = [span for span in spans if span.name.startswith("chat ") and span.parent is None]
    assert len(roots) == llm_roots_allowed


class TestPythonSDK:
    def test_same_conventions_as_the_native_sdk(self, bridge, llm, recorded):
        """lunary (PyPI) through the bridge and otel_lunary natively give the same trace trees and keys."""
        run_client([sys.executable, str(CLIENTS / "python_flow.py"), "--api-url", bridge.url, "--app-id", APP_KEY,
                    "--openai-base-url", llm.base_url, "--error-model", ERROR_MODEL])
        native_flow(llm.base_url)
        native = recorded.all()
        bridged = poll_until(lambda: len(bridge.spans()) >= len(native) and bridge.spans(), timeout=20, what="the bridge's spans")
        assert len(bridged) == len(native) == 22  # t_meta's turn waits for its reply: not yet recorded
        assert shape(bridged) == shape(native)
        assert_layout(bridged)
        assert {span.resource.attributes[LUNARY_PROJECT] for span in bridged} == {"demo"}
        for span in bridged:  # nothing the native SDK would not record, but the run id
            native_keys = keys_by_name(native)[span.name] | BRIDGE_ONLY | NOT_ON_THE_WIRE
            assert set(span.attributes) <= native_keys, span.name
        assert [problem for span in bridged for problem in convention_problems(span)] == []


@pytest.mark.slow
class TestNodeSDK:
    @pytest.fixture(autouse=True)
    def _node(self):
        if shutil.which("node") is None or not (NODE_DIR / "node_modules" / "lunary").is_dir():
            pytest.skip("needs node and `npm ci` in tests/lunary_clients/node")

    def test_node_flow_lands_with_the_conventions(self, bridge, llm):
        """lunary (npm) in Node: every span is as conventions/ defines it, in the native layout.

        (Its flow differs from the Python one: the JS SDK puts the thread's user on every
        message, has no `with parent`, no thread metadata; so spans are checked against
        the span definitions rather than against a native run.)"""
        out = run_client(["node", "flow.mjs", "--api-url", bridge.url, "--app-id", APP_KEY,
                          "--openai-base-url", llm.base_url, "--error-model", ERROR_MODEL], cwd=NODE_DIR)
        spans = poll_until(lambda: len(bridge.spans()) >= 21 and bridge.spans(), timeout=20, what="the bridge's spans")
        assert [problem for span in spans for problem in convention_problems(span)] == []
        # flow.mjs step 6 calls the LLM with no parent: the JS SDK has no `with parent`.
        assert_layout(spans, llm_roots_allowed=1)
        names = sorted(span.name for span in spans)
        assert names.count("feedback") == 4 and names.count("message user") == 3
        ids = out["returned_ids"]
        messages = {span.attributes[LUNARY_MESSAGE_ID]: span for span in spans if span.name.startswith("message ")}
        assert set(messages) == {v for k, v in ids.items() if k.startswith("msg_")}
        assert {messages[ids["msg_user"]].attributes[GEN_AI_CONVERSATION_ID]} == {ids["thread"]}


class _QuietStatic(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002
        return None


@pytest.mark.slow
class TestBrowserSDK:
    def test_browser_build_posts_cross_origin(self, tmp_path):
        """lunary's browser build in headless Chromium, page and bridge on different origins (CORS)."""
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium is None or not (NODE_DIR / "node_modules" / "lunary" / "dist" / "browser.js").is_file():
            pytest.skip("needs chromium and `npm ci` in tests/lunary_clients/node")
        static = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietStatic, directory=str(NODE_DIR)))
        threading.Thread(target=static.serve_forever, daemon=True).start()
        origin = f"http://127.0.0.1:{static.server_address[1]}"
        bridge = RunningBridge(tmp_path / "state.sqlite", cors_origins=origin)
        try:
            page = f"{origin}/browser/index.html?api={bridge.url}&app={APP_KEY}"
            done = subprocess.run(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
                 f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom", page],
                capture_output=True, text=True, timeout=120,
            )
            assert "DONE " in done.stdout, done.stdout[-1000:] + done.stderr[-1000:]
            spans = poll_until(lambda: len(bridge.spans()) >= 6 and bridge.spans(), timeout=20, what="the browser's spans")
            assert sorted(span.name for span in spans) == [
                "event open-document", "feedback", "feedback", "invoke_workflow turn", "message assistant", "message user"]
            assert [problem for span in spans for problem in convention_problems(span)] == []
            assert_layout(spans)
        finally:
            bridge.close()
            static.shutdown()
            static.server_close()
