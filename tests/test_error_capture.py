"""Issue 13 item 15: with content capture off, no exception message or stack trace leaves
the process; with it on, they pass through the redaction hook like content.

An exception's message usually quotes its input (``ValueError(f"bad card {card}")``), and
a stack trace carries such messages too (chained exceptions, source lines): they are
content. Checked on the bytes the real OTLP/HTTP exporter sent, for a Python exception
(a ``@tool`` raising) and for an error a Lunary SDK reported through the bridge.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import otel_lunary as lunary
from otel_lunary._settings import resolve_settings
from otel_lunary.bridge import Bridge, resolve_config
from helpers.bridge import APP_KEY
from helpers.servers import OtlpSink, poll_until

CARD = "4111-1111-1111-1111"
CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
NOT_CAPTURED = b"[content not captured]"


def sink_provider(sink: OtlpSink) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{sink.endpoint}/v1/traces")))
    return provider


def failing_tool_run(sink: OtlpSink, **settings: object) -> bytes:
    """A tool whose exception quotes its argument (and chains one that does too); the bytes sent."""
    provider = sink_provider(sink)
    lunary.configure(tracer_provider=provider, **settings)

    @lunary.tool("charge")
    def charge(card: str) -> None:
        try:
            raise KeyError(f"no account for {card}")
        except KeyError as cause:
            raise ValueError(f"card {card} was declined") from cause

    with pytest.raises(ValueError, match="declined"):  # the app's exception passes unchanged
        charge(CARD)
    provider.shutdown()
    lunary.shutdown()
    sent = b"".join(sink.bodies)
    assert sent, "the span was exported"
    return sent


class TestPythonExceptions:
    @pytest.mark.parametrize("value", ["false", "NO_CONTENT"])
    def test_capture_off_sends_the_type_and_a_fixed_message_only(self, sink, monkeypatch, value):
        monkeypatch.setenv(CAPTURE_ENV, value)
        sent = failing_tool_run(sink)
        assert CARD.encode() not in sent
        assert b"ValueError" in sent  # error.type and exception.type: still useful, not content
        assert NOT_CAPTURED in sent
        assert b"Traceback" not in sent and b"exception.stacktrace" not in sent

    def test_capture_on_runs_the_redaction_hook_over_message_and_stack(self, sink, monkeypatch):
        monkeypatch.delenv(CAPTURE_ENV, raising=False)
        sent = failing_tool_run(sink, redact=lambda text: text.replace(CARD, "[card]"))
        assert CARD.encode() not in sent
        assert b"card [card] was declined" in sent
        assert b"Traceback" in sent and b"no account for [card]" in sent  # the chained cause, redacted

    def test_capture_on_without_a_hook_keeps_message_and_stack(self, sink, monkeypatch):
        monkeypatch.delenv(CAPTURE_ENV, raising=False)
        sent = failing_tool_run(sink)
        assert f"card {CARD} was declined".encode() in sent
        assert b"Traceback" in sent


@pytest.fixture
def bridge_to_sink(tmp_path: Path, sink: OtlpSink) -> Iterator[Bridge]:
    """A real bridge with content capture off, exporting through the real OTLP/HTTP exporter."""
    config = resolve_config(keys=f"{APP_KEY}=demo", port=0, state_path=str(tmp_path / "state.sqlite"))
    exporter = OTLPSpanExporter(endpoint=f"{sink.endpoint}/v1/traces")
    bridge = Bridge(config, [exporter], settings=resolve_settings(capture_content=False)).start()
    yield bridge
    bridge.close()


class TestReportedErrors:
    @pytest.mark.parametrize(
        "stack",
        [
            f"Traceback (most recent call last):\n  File \"app.py\", line 3, in charge\nValueError: card {CARD} was declined",
            f"Error: card {CARD} was declined\n    at charge (app.js:3:9)",
        ],
        ids=["python", "js"],
    )
    def test_capture_off_the_bridge_sends_no_message_or_stack(self, bridge_to_sink, sink, stack):
        run = f"run-{uuid.uuid4()}"
        events = [
            {"event": "start", "type": "tool", "runId": run, "name": "charge", "timestamp": 1795924374366, "input": CARD},
            {"event": "error", "type": "tool", "runId": run, "timestamp": 1795924374400,
             "error": {"message": f"card {CARD} was declined", "stack": stack}},
        ]
        response = httpx.post(f"{bridge_to_sink.url}/v1/runs/ingest", json={"events": events},
                              headers={"Authorization": f"Bearer {APP_KEY}"}, timeout=30)
        assert [r["success"] for r in response.json()["results"]] == [True, True]
        poll_until(lambda: len(sink.spans) == 1, timeout=20, what="the tool span at the sink")
        sent = b"".join(sink.bodies)
        assert CARD.encode() not in sent
        assert NOT_CAPTURED in sent
        assert b"at charge" not in sent and b"app.py" not in sent
