"""An offline OpenAI-compatible chat server on 127.0.0.1, for the demo and the tests.

``otel-lunary demo`` must run with no API key and no network, through the real
``openai`` client, so the LLM spans it records are the same as in production. The
replies are deterministic: a tool call when tools are offered and the last user message
mentions the weather, an answer built from the tool result after it, a canned answer
for a few keywords, an echo otherwise.
A few model names select other deterministic behaviours, for the tests of
``otel-lunary rerun`` (a new model must be able to answer differently, fail, or recover):

- ``error``: always HTTP 500.
- ``flaky``: HTTP 500 on the first attempt of each distinct request, then the usual reply
  (what a client with retries must ride through).
- ``terse``: the usual reply cut to its first sentence (a model that answers differently).
- ``lyon-weather``: asks the weather tool about Lyon rather than Paris (a tool call with
  arguments a recording of the usual model never made).
- ``small-context``: HTTP 400 ``context_length_exceeded`` when the prompt has more than
  ``SMALL_CONTEXT_WORDS`` words (an error that is the request's, not the server's).
- ``stall-after-N``: the usual reply to its first N requests; later ones are held open
  until the server stops (a run to interrupt halfway, deterministically).

``python -m otel_lunary._fake_llm --port 8099`` serves it until interrupted.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ERROR_MODEL = "error"
FLAKY_MODEL = "flaky"
TERSE_MODEL = "terse"
LYON_WEATHER_MODEL = "lyon-weather"
SMALL_CONTEXT_MODEL = "small-context"
SMALL_CONTEXT_WORDS = 40
STALL_MODEL_PREFIX = "stall-after-"
_FIRST_SENTENCE = re.compile(r"^(.*?[.!?])(?:\s|$)", re.S)

# Canned answers, first keyword found in the last user message wins; otherwise an echo.
CANNED_REPLIES = (
    ("trip", "Happy to help! For three days in Paris: the Louvre and the Seine on day one, Montmartre on day two, the Marais on day three."),
    ("thank", "You're welcome, enjoy Paris!"),
)


def _reply(request: dict[str, Any]) -> dict[str, Any]:
    """The assistant message for a request: content and/or tool calls (model variants applied)."""
    reply = _usual_reply(request, city="Lyon" if request.get("model") == LYON_WEATHER_MODEL else "Paris")
    if request.get("model") == TERSE_MODEL and isinstance(reply.get("content"), str):
        match = _FIRST_SENTENCE.match(reply["content"])
        if match:
            reply["content"] = match.group(1)
    return reply


def _usual_reply(request: dict[str, Any], city: str) -> dict[str, Any]:
    """The assistant message for a request: content and/or tool calls."""
    messages = request.get("messages") or []
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return {"role": "assistant", "content": f"According to the weather tool: {last.get('content')}."}
    text = last.get("content") if isinstance(last.get("content"), str) else json.dumps(last.get("content"))
    if request.get("tools") and "weather" in (text or "").lower():
        arguments = json.dumps({"city": city})
        call = {"id": "call_weather_1", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
        return {"role": "assistant", "content": None, "tool_calls": [call]}
    lowered = (text or "").lower()
    for keyword, answer in CANNED_REPLIES:
        if keyword in lowered:
            return {"role": "assistant", "content": answer}
    return {"role": "assistant", "content": f"You said: {text}"}


def _prompt_words(request: dict[str, Any]) -> int:
    return sum(len(str(m.get("content") or "").split()) for m in request.get("messages") or [])


def _usage(request: dict[str, Any], reply: dict[str, Any]) -> dict[str, int]:
    prompt = _prompt_words(request)
    completion = len(str(reply.get("content") or "").split()) + 5 * len(reply.get("tool_calls") or [])
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return None

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        self.server.requests.append(request)
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
            return
        model = str(request.get("model", ""))
        if model == ERROR_MODEL:
            self._json(500, {"error": {"message": "the fake model failed on purpose", "type": "server_error", "code": None}})
            return
        if model == FLAKY_MODEL and self.server.first_attempt(request):
            self._json(500, {"error": {"message": "the flaky fake model fails each request once", "type": "server_error", "code": None}})
            return
        if model == SMALL_CONTEXT_MODEL and (words := _prompt_words(request)) > SMALL_CONTEXT_WORDS:
            message = f"This model's maximum context length is {SMALL_CONTEXT_WORDS} words; the messages have {words}."
            self._json(400, {"error": {"message": message, "type": "invalid_request_error", "code": "context_length_exceeded"}})
            return
        if model.startswith(STALL_MODEL_PREFIX) and self.server.stalls(model):
            self.server.released.wait()
            self.close_connection = True
            return
        reply = _reply(request)
        finish = "tool_calls" if reply.get("tool_calls") else "stop"
        created = int(time.time())
        completion_id = f"chatcmpl-fake{len(self.server.requests)}"
        if not request.get("stream"):
            self._json(200, {
                "id": completion_id, "object": "chat.completion", "created": created, "model": f"{model}-fake",
                "choices": [{"index": 0, "message": reply, "finish_reason": finish}],
                "usage": _usage(request, reply),
            })
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        base = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": f"{model}-fake"}
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        for word in (reply.get("content") or "").split(" "):
            deltas.append({"content": word if len(deltas) == 1 else " " + word})
        for index, call in enumerate(reply.get("tool_calls") or []):
            deltas.append({"tool_calls": [{"index": index, **call}]})
        for delta in deltas:
            self._event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if (request.get("stream_options") or {}).get("include_usage"):
            self._event({**base, "choices": [], "usage": _usage(request, reply)})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True

    def _event(self, body: dict[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(body).encode() + b"\n\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    """The HTTP server, with the per-model state the variants need."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.requests: list[dict[str, Any]] = []
        self.released = threading.Event()
        self._lock = threading.Lock()
        self._attempted: set[str] = set()
        self._answered: dict[str, int] = {}

    def first_attempt(self, request: dict[str, Any]) -> bool:
        """True the first time this exact request body arrives (``flaky``)."""
        key = json.dumps(request, sort_keys=True)
        with self._lock:
            first = key not in self._attempted
            self._attempted.add(key)
        return first

    def stalls(self, model: str) -> bool:
        """Whether a ``stall-after-N`` request is past its N answered ones."""
        suffix = model[len(STALL_MODEL_PREFIX):]
        limit = int(suffix) if suffix.isdigit() else 0
        with self._lock:
            answered = self._answered.get(model, 0)
            if answered < limit:
                self._answered[model] = answered + 1
                return False
        return True


class FakeLLM:
    """``with FakeLLM() as llm: openai.OpenAI(base_url=llm.base_url, api_key="x")``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _Server((host, port))
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-llm", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        if isinstance(host, bytes):  # typed str | bytes; an AF_INET server's host is str
            host = host.decode()
        return f"http://{host}:{port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request body received, in order: what the application really sent."""
        return self._server.requests

    def start(self) -> FakeLLM:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.released.set()  # held (stall-after-N) requests end without an answer
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main() -> None:
    """Serve on 127.0.0.1 until interrupted: a stand-in endpoint for trying ``otel-lunary rerun``."""
    parser = argparse.ArgumentParser(prog="python -m otel_lunary._fake_llm", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args()
    llm = FakeLLM(port=args.port).start()
    print(f"fake OpenAI-compatible endpoint: OPENAI_BASE_URL={llm.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        llm.stop()


if __name__ == "__main__":
    main()
