"""``otel-lunary demo``: a scripted chatbot conversation, recorded and replayed, offline.

It shows the whole loop on a fresh machine with no API key and no network: a local fake
OpenAI-compatible model (``otel_lunary._fake_llm``) answers the real ``openai`` client
wrapped by ``lunary.monitor``; the SDK records threads, messages, a tool call, custom
events and feedback (given, removed, given again) into the embedded default file
exporter; then ``otel-lunary replay`` prints the conversation and writes the HTML chat
view next to the trace file.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

USER = "demo-user"
MODEL = "gpt-4o-mini"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Record a scripted multi-turn conversation (offline fake LLM) and replay it."
    parser.add_argument("--dir", metavar="DIR", help="where to write the trace file and the HTML page (default: a new temporary directory)")
    parser.add_argument("--no-replay", action="store_true", help="only record; do not print the transcript")


def _missing_openai(err: TextIO) -> int:
    err.write(
        "otel-lunary demo drives the real `openai` client (against a local fake model, no key or network needed),\n"
        "and the openai package is not installed. Install it with:\n\n"
        "    pip install 'otel-lunary[openai]'\n"
    )
    return 1


def _script(client: Any) -> str:
    """The conversation; returns the thread id. Every call goes through the public SDK."""
    import otel_lunary as lunary

    @lunary.tool(name="get_weather")
    def get_weather(city: str) -> dict[str, Any]:
        return {"city": city, "temperature_c": 14, "sky": "light rain"}

    thread = lunary.open_thread(tags=["demo", "weather"], user_id=USER, metadata={"channel": "cli-demo"})
    history: list[dict[str, Any]] = [{"role": "system", "content": "You are a friendly weather assistant."}]
    thread.track_message(history[0])

    def turn(text: str) -> tuple[str | None, dict[str, Any]]:
        """One user message and the model's answer to it (tools offered)."""
        history.append({"role": "user", "content": text})
        user_msg = thread.track_message({"role": "user", "content": text})
        response = client.chat.completions.create(model=MODEL, messages=history, tools=[WEATHER_TOOL], parent=user_msg)
        return user_msg, response.choices[0].message.model_dump(exclude_none=True)

    # Turn 1: small talk.
    _, reply = turn("Hi! Can you help me plan my trip to Paris?")
    history.append(reply)
    thread.track_message({"role": "assistant", "content": reply.get("content")})
    thread.track_event("open-document", metadata={"documentName": "paris-itinerary.pdf"})

    # Turn 2: a tool call, the tool's answer, and the final reply.
    user_msg, reply = turn("What's the weather like in Paris today?")
    history.append(reply)
    thread.track_message({"role": "assistant", "content": reply.get("content"), "tool_calls": reply.get("tool_calls")})
    for call in reply.get("tool_calls") or []:
        with lunary.parent(user_msg):
            result = get_weather(**json.loads(call["function"]["arguments"]))
        tool_message = {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result)}
        history.append(tool_message)
        thread.track_message(tool_message)
    final = client.chat.completions.create(model=MODEL, messages=history, parent=user_msg)
    answer = final.choices[0].message.content
    history.append({"role": "assistant", "content": answer})
    answer_id = thread.track_message({"role": "assistant", "content": answer})
    lunary.track_feedback(answer_id, {"thumb": "up"})
    lunary.track_feedback(answer_id, {"thumb": None})  # the user changed their mind...
    lunary.track_feedback(answer_id, {"thumb": "down", "comment": "I asked about my trip, not just today"})

    # Turn 3: a thank-you, rated.
    _, reply = turn("Thanks, that's all!")
    thanks_id = thread.track_message({"role": "assistant", "content": reply.get("content")})
    lunary.track_feedback(thanks_id, {"thumb": "up", "rating": 5})
    thread.track_event("close-chat")
    return thread.id


def demo(directory: Path, out: TextIO, err: TextIO, *, replay_on_screen: bool = True) -> int:
    """Record into ``directory``/otel-lunary-traces.jsonl, replay to ``out``, write the HTML page."""
    try:
        import openai
    except ImportError:
        return _missing_openai(err)
    import otel_lunary as lunary
    from otel_lunary._fake_llm import FakeLLM

    directory.mkdir(parents=True, exist_ok=True)
    trace_file = directory / "otel-lunary-traces.jsonl"
    html_file = directory / "otel-lunary-demo.html"
    trace_file.unlink(missing_ok=True)
    out.write(f"Recording a demo conversation into {trace_file}\n")
    lunary.configure(exporter="file", file_path=str(trace_file), service_name="otel-lunary-demo")
    try:
        with FakeLLM() as llm:
            client = lunary.monitor(openai.OpenAI(base_url=llm.base_url, api_key="demo-key-not-used", max_retries=0))
            thread_id = _script(client)
    finally:
        lunary.flush()
        lunary.shutdown()

    from otel_lunary.replay.command import add_arguments as replay_arguments
    from otel_lunary.replay.command import replay

    def arguments(fmt: str) -> argparse.Namespace:
        parser = argparse.ArgumentParser()
        replay_arguments(parser)
        return parser.parse_args([str(trace_file), "--conversation", thread_id, "--format", fmt])

    status = 0
    if replay_on_screen:
        out.write(f"\nReplaying thread {thread_id}:\n\n")
        status = replay(arguments("terminal"), out, err)
    with open(html_file, "w", encoding="utf-8") as page:
        status = replay(arguments("html"), page, err) or status
    out.write(
        f"\nTrace file:  {trace_file}\nHTML page:   {html_file}\n"
        f"Replay again: otel-lunary replay {trace_file}\n"
        f"              otel-lunary replay {trace_file} --format html -o chat.html\n"
    )
    return status


def run(args: argparse.Namespace) -> int:
    directory = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="otel-lunary-demo-"))
    return demo(directory, sys.stdout, sys.stderr, replay_on_screen=not args.no_replay)
