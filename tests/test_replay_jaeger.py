"""Replay from a Jaeger v2 query service: ``GET /api/v3/traces`` answering OTLP JSON in ``{"result": ...}``.

A local HTTP server plays Jaeger, serving the response shape Jaeger documents for its v3
API (grpc-gateway: each streamed ``TracesData`` chunk wrapped as ``{"result": {...}}``).
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from fixtures.replay import raw_conversation as raw
from otel_lunary.attributes import GEN_AI_CONVERSATION_ID
from otel_lunary.export.otlp_json import encode_request
from helpers.replay import run


class FakeJaeger:
    """Serves the fixture's spans, one chunk per trace, filtered by ``query.attributes``."""

    def __init__(self) -> None:
        self.queries: list[dict[str, list[str]]] = []
        spans = raw.record()
        by_trace: dict[int, list[Any]] = {}
        for span in spans:
            by_trace.setdefault(span.context.trace_id, []).append(span)
        self.chunks = [encode_request(trace) for trace in by_trace.values()]
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                fake.queries.append(query)
                if url.path != "/api/v3/traces" or "query.start_time_min" not in query:
                    self.send_error(400)
                    return
                wanted = json.loads(query.get("query.attributes", ["{}"])[0]).get(GEN_AI_CONVERSATION_ID)
                chunks = [c for c in fake.chunks if wanted is None or wanted in json.dumps(c)]
                body = "\n".join(json.dumps({"result": chunk}) for chunk in chunks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def jaeger() -> Iterator[FakeJaeger]:
    fake = FakeJaeger()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


class TestJaeger:
    def test_conversation_search_replays_it(self, jaeger: FakeJaeger) -> None:
        """Searching Jaeger by conversation id replays that conversation's messages and feedback."""
        status, out, err = run("--jaeger", jaeger.url, "--since", "2025-12-31", "--until", "2026-01-02", "-c", raw.CONVERSATION, "--format", "json")
        assert status == 0, err
        (conversation,) = [json.loads(line) for line in out.splitlines()]
        messages = [i for i in conversation["items"] if i["type"] == "message"]
        assert [(m["role"], m["content"]) for m in messages] == raw.EXPECTED_MESSAGES
        assert messages[4]["feedback"] == {"thumb": "down", "comment": "too vague"}

    def test_query_names_the_conversation_and_window(self, jaeger: FakeJaeger) -> None:
        """The request carries query.attributes with gen_ai.conversation.id and the time window."""
        run("--jaeger", jaeger.url, "--since", "2025-12-31", "--until", "2026-01-02", "-c", raw.CONVERSATION)
        (query,) = jaeger.queries
        assert json.loads(query["query.attributes"][0]) == {GEN_AI_CONVERSATION_ID: raw.CONVERSATION}
        assert query["query.start_time_min"] == ["2025-12-31T00:00:00Z"]
        assert query["query.start_time_max"] == ["2026-01-02T00:00:00Z"]

    def test_unreachable_jaeger_is_reported(self) -> None:
        """A Jaeger URL nobody answers exits 1 with the reason on stderr."""
        status, _, err = run("--jaeger", "http://127.0.0.1:9", "-c", "x")
        assert status == 1 and "cannot reach Jaeger" in err
