"""--jaeger and --phoenix against servers that misbehave (issue 13, item 13).

A real local HTTP server plays a slow, broken or odd Jaeger/Phoenix. Replay must finish
within its total deadline (``OTEL_LUNARY_REPLAY_TIMEOUT``; short here), stop on a Phoenix
cursor that repeats, say clearly what was wrong with an answer, and exit non-zero when
nothing could be read.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from otel_lunary.cli import build_parser
from otel_lunary.replay._http import ENV_TIMEOUT
from otel_lunary.replay.command import replay


class Misbehaving:
    """Answers every GET the way ``mode`` says; ``stop`` ends slow answers."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests = 0
        self.stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                server.requests += 1
                server.answer(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        body = {
            "utf8": b'{"data": ["\xff\xfe"]}',
            "oddjson": b"[1, 2]",
            "empty": b"",
            "cursor": b'{"data": [], "next_cursor": "same"}',
        }.get(self.mode)
        if self.mode == "500":
            handler.send_response(500)
            handler.send_header("Content-Length", "5")
            handler.end_headers()
            handler.wfile.write(b"boom!")
            return
        if self.mode == "slow":  # a byte every half second, for up to a minute
            handler.send_response(200)
            handler.send_header("Content-Length", "1000")
            handler.end_headers()
            for _ in range(120):
                if self.stop.wait(0.5):
                    return
                try:
                    handler.wfile.write(b" ")
                    handler.wfile.flush()
                except OSError:  # the client gave up
                    return
            return
        assert body is not None
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def __enter__(self) -> Misbehaving:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def short_deadline(monkeypatch: pytest.MonkeyPatch) -> Iterator[float]:
    monkeypatch.setenv(ENV_TIMEOUT, "1.5")
    yield 1.5


def run(*argv: str) -> tuple[int, str, str]:
    args = build_parser(["replay", *argv]).parse_args(["replay", *argv])
    out, err = io.StringIO(), io.StringIO()
    return replay(args, out, err), out.getvalue(), err.getvalue()


@pytest.mark.parametrize("option", ["--jaeger", "--phoenix"])
def test_a_server_trickling_bytes_cannot_hold_replay_past_its_deadline(option: str, short_deadline: float) -> None:
    """A byte every half second would take a minute; replay gives up after its total deadline and says so."""
    with Misbehaving("slow") as server:
        started = time.monotonic()
        status, _, err = run(option, server.url)
        elapsed = time.monotonic() - started
    assert status == 1 and "deadline" in err and ENV_TIMEOUT in err, err
    assert elapsed < 2 * short_deadline + 2, elapsed  # at most twice the setting, far from the minute


def test_a_repeating_phoenix_cursor_stops_with_an_error(short_deadline: float) -> None:
    """A next_cursor that comes back again ends the read with a message instead of looping."""
    with Misbehaving("cursor") as server:
        status, _, err = run("--phoenix", server.url)
        requests = server.requests
    assert status == 1 and "repeats an earlier page" in err, err
    assert requests == 2


@pytest.mark.parametrize("option", ["--jaeger", "--phoenix"])
@pytest.mark.parametrize(
    ("mode", "reason"),
    [("500", "HTTP 500"), ("empty", "empty answer"), ("utf8", "not UTF-8")],
)
def test_unusable_answers_exit_non_zero_with_a_message(option: str, mode: str, reason: str, short_deadline: float) -> None:
    """HTTP 500, an empty body or invalid UTF-8: a clear message, no traceback, exit 1."""
    with Misbehaving(mode) as server:
        status, _, err = run(option, server.url)
    assert status == 1, err
    assert reason in err and "Traceback" not in err, err


def test_odd_json_from_phoenix_is_named(short_deadline: float) -> None:
    """A JSON answer of the wrong shape says what was expected and what came."""
    with Misbehaving("oddjson") as server:
        status, _, err = run("--phoenix", server.url)
    assert status == 1 and 'expected {"data": [...]}, got [1, 2]' in err, err


def test_odd_json_from_jaeger_is_named(short_deadline: float) -> None:
    """Values that are not OTLP objects are each reported; replay ends normally with nothing matched."""
    with Misbehaving("oddjson") as server:
        status, _, err = run("--jaeger", server.url)
    assert status == 0 and "expected a JSON object with resourceSpans, got list; skipped" in err and "no conversation matched" in err, err
