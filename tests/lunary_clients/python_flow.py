#!/usr/bin/env python3
"""Run the Lunary "Chats & Threads" flow with the REAL `lunary` Python SDK (1.4.41).

Point it at a capture server (tests/lunary_clients/capture_server.py) or at the
otel-lunary bridge::

    python tests/lunary_clients/python_flow.py --api-url http://127.0.0.1:PORT

Unless --openai-base-url is given it starts otel-lunary's offline fake model
(otel_lunary._fake_llm.FakeLLM on 127.0.0.1: plain JSON, SSE when "stream": true,
a tool call when "tools" are given, HTTP 500 for model "error"), runs the flow, makes the
SDK flush, and prints on stdout one JSON object with the ids the SDK returned
and the ids it puts on the wire (sha256(id + app_id) -> UUID, see
lunary.utils.create_uuid_from_string).

How lunary 1.4.41 is configured (lunary/config.py, read ONCE at `import lunary`):
  app id : LUNARY_PRIVATE_KEY, else LUNARY_PUBLIC_KEY, else LUNARY_APP_ID
  url    : LUNARY_API_URL (default https://api.lunary.ai); + "/v1/runs/ingest"
  others : LUNARY_VERBOSE=true, DISABLE_SSL_VERIFY=True
so this script sets the environment BEFORE importing lunary (and also calls
lunary.config(...), which the sender re-reads on every batch).

Flushing: lunary has no flush API. A daemon thread (lunary.consumer.Consumer)
sends whatever is queued every 0.5 s and an atexit hook (Consumer.stop) sets
running=False, joins the thread, whose loop then sends a last batch. We call
that same hook explicitly at the end (lunary.queue.consumer.stop()) so the last
batch is on the wire before we print; the atexit call is then a no-op.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

ERROR_MODEL = "error"  # what otel_lunary._fake_llm.FakeLLM answers with HTTP 500

APP_ID_DEFAULT = "test-app-key"


# --------------------------------------------------------------------------
# the flow
# --------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--api-url", default=os.environ.get("LUNARY_API_URL"),
                    help="Lunary API base URL (the SDK appends /v1/runs/ingest); default $LUNARY_API_URL")
    ap.add_argument("--app-id", default=os.environ.get("LUNARY_PUBLIC_KEY") or APP_ID_DEFAULT)
    ap.add_argument("--openai-base-url", help="use this OpenAI-compatible server instead of starting otel_lunary's FakeLLM")
    ap.add_argument("--error-model", default=ERROR_MODEL, help="model name the server answers with HTTP 500")
    args = ap.parse_args(argv)
    if not args.api_url:
        ap.error("--api-url or LUNARY_API_URL is required")

    # Must be set before `import lunary`: its Config singleton reads them at import.
    os.environ["LUNARY_API_URL"] = args.api_url.rstrip("/")
    os.environ["LUNARY_PUBLIC_KEY"] = args.app_id
    os.environ.pop("LUNARY_PRIVATE_KEY", None)  # would win over the public key
    os.environ.pop("LUNARY_APP_ID", None)

    import lunary
    import openai
    from lunary.utils import create_uuid_from_string

    lunary.config(app_id=args.app_id, api_url=args.api_url.rstrip("/"))

    def wire(i: str) -> str:
        # exactly what lunary.track_event does to run ids and parent ids
        return str(create_uuid_from_string(str(i) + str(args.app_id)))

    if args.openai_base_url is None:
        from otel_lunary._fake_llm import FakeLLM  # only for standalone runs

        args.openai_base_url = FakeLLM().start().base_url
    client = openai.OpenAI(base_url=args.openai_base_url, api_key="sk-fake", max_retries=0)
    lunary.monitor(client)

    out: dict = {"sdk": "lunary-py", "version": getattr(lunary, "__version__", None), "app_id": args.app_id}
    try:
        from importlib.metadata import version
        out["version"] = version("lunary")
    except Exception:
        pass
    ids: dict = {}

    # 1. open a new thread, user message with per-call user_id / user_props
    t_new = lunary.open_thread()
    ids["thread"] = t_new.id
    ids["msg_hello"] = t_new.track_message(
        {"role": "user", "content": "Hello, please help me"},
        user_id="user1", user_props={"email": "hello@test.com"},
    )

    # 2. resume the same thread with tags
    thread = lunary.open_thread(t_new.id, tags=["support"])
    ids["msg_user"] = thread.track_message(
        {"role": "user", "content": "What's the weather in Paris?", "tags": ["faq"]},
        user_id="user1", user_props={"email": "hello@test.com"},
        metadata={"source": "web"},  # NOTE: 1.4.41 ignores this argument (sends thread metadata)
    )

    # Let the 0.5 s sender ship what is queued so far: the fixture then shows a flow
    # spread over several POSTs, as in real use.
    time.sleep(0.7)

    # 3. LLM call reconciled with parent= (tools -> the fake answers with a tool call)
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}]
    res = client.chat.completions.create(
        model="gpt-4o", temperature=0.2, max_tokens=100,
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=tools, parent=ids["msg_user"], user_id="user1", tags=["llm-tag"],
        metadata={"call": "first"},
    )
    tool_calls = [tc.model_dump() for tc in res.choices[0].message.tool_calls]

    # 4. assistant message carrying tool_calls, then the tool answer
    ids["msg_assistant_tool_calls"] = thread.track_message(
        {"role": "assistant", "content": None, "tool_calls": tool_calls})
    ids["msg_tool"] = thread.track_message(
        {"role": "tool", "tool_call_id": tool_calls[0]["id"], "content": "{\"temperature\": 57}"})

    # 5. system message with a caller-chosen id (to see the id rewrite)
    ids["msg_system"] = thread.track_message(
        {"id": "sys-1", "role": "system", "content": "You are a weather bot."})

    # 6. LLM call inside `with lunary.parent(msg_id)`
    with lunary.parent(ids["msg_user"]):
        res2 = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "What's the weather in Paris?"},
                                      {"role": "tool", "tool_call_id": "call_weather_1", "content": "{\"temperature\": 57}"}])
    ids["msg_assistant"] = thread.track_message(
        {"role": "assistant", "content": res2.choices[0].message.content})
    ids["msg_assistant_retry"] = thread.track_message(
        {"role": "assistant", "content": "It is rainy, 57F.", "is_retry": True})

    # 7. custom events
    thread.track_event("event-name")
    thread.track_event("open-document", user_id="user1", user_props={"email": "hello@test.com"},
                       metadata={"documentName": "my-document.pdf"})

    # 8. feedback: set, remove, other keys
    lunary.track_feedback(ids["msg_assistant"], {"thumb": "up"})
    lunary.track_feedback(ids["msg_assistant"], {"thumb": None})
    lunary.track_feedback(ids["msg_assistant"], {"comment": "x", "rating": 4})

    # 9. streaming call (parent=) and an error call (parent=)
    stream = client.chat.completions.create(
        model="gpt-4o", stream=True, parent=ids["msg_user"],
        messages=[{"role": "user", "content": "Weather in Paris, streamed?"}])
    ids["stream_text"] = "".join((c.choices[0].delta.content or "") for c in stream if c.choices)
    try:
        client.chat.completions.create(
            model=args.error_model, parent=ids["msg_user"], messages=[{"role": "user", "content": "boom"}])
    except openai.APIStatusError as e:
        ids["error_call"] = f"{type(e).__name__}: {e.status_code}"

    # 10. agent + tool (decorators exist in 1.4.41: lunary.agent(), lunary.tool())
    @lunary.tool(name="get_weather")
    def get_weather(location):
        return {"temperature": 57, "location": location}

    @lunary.agent(name="WeatherAgent")
    def weather_agent(query):
        w = get_weather("Paris")
        r = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": query}])
        return f"{r.choices[0].message.content} ({w['temperature']}F)"

    ids["agent_output"] = weather_agent("Weather in Paris?", parent=ids["msg_user"])

    # 11. a thread opened with metadata + user (shows threadMetadata / thread-level user)
    t_meta = lunary.open_thread(user_id="user2", user_props={"plan": "pro"}, metadata={"plan": "pro"})
    ids["thread_meta"] = t_meta.id
    ids["msg_meta"] = t_meta.track_message({"role": "user", "content": "hi"})

    # flush: same as the SDK's atexit hook
    lunary.queue.consumer.stop()

    out["returned_ids"] = ids
    out["wire_ids"] = {k: wire(v) for k, v in ids.items()
                       if k.startswith(("thread", "msg_"))}
    out["id_rewrite"] = "str(uuid.UUID(hashlib.sha256((id + app_id).encode()).hexdigest()[:32]))"
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
