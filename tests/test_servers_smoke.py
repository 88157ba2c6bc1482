"""Proof that tests/servers.py starts real servers that talk to each other.

The OTel SDK exports to rotel-agent, rotel forwards to Phoenix, and Phoenix's REST API
returns the span and shows its `session.id` as a session.
"""

from __future__ import annotations

import socket

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

from helpers.servers import poll_until, start_phoenix, start_rotel

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory):
    with start_phoenix(tmp_path_factory.mktemp("phoenix")) as server:
        yield server


def _send_turn(exporter: SpanExporter, session_id: str) -> str:
    """Record one span carrying `session.id` and return its trace id as hex."""
    provider = TracerProvider(resource=Resource.create({"service.name": "servers-smoke"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        with provider.get_tracer(__name__).start_as_current_span("turn", attributes={"session.id": session_id}) as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
    finally:
        provider.shutdown()
    return trace_id


def _assert_in_phoenix(phoenix, trace_id: str, session_id: str) -> None:
    spans = poll_until(lambda: phoenix.spans(trace_id=trace_id), timeout=30, what=f"trace {trace_id}")
    assert [(s["name"], s["attributes"].get("session.id")) for s in spans] == [("turn", session_id)]
    sessions = poll_until(
        lambda: [s for s in phoenix.sessions() if s["session_id"] == session_id], timeout=30, what=session_id
    )
    assert [t["trace_id"] for t in sessions[0]["traces"]] == [trace_id]


class TestRotelToPhoenix:
    def test_otlp_http_in_and_out(self, phoenix, tmp_path):
        """A span sent to rotel over OTLP/HTTP reaches Phoenix over OTLP/HTTP as a session's trace."""
        with start_rotel(tmp_path, export_endpoint=phoenix.url, export_protocol="http") as rotel:
            trace_id = _send_turn(HttpSpanExporter(endpoint=rotel.http_endpoint + "/v1/traces"), "smoke-http")
            _assert_in_phoenix(phoenix, trace_id, "smoke-http")

    def test_otlp_grpc_in_and_out(self, phoenix, tmp_path):
        """gRPC works both ways: SDK -gRPC-> rotel -gRPC-> rotel -HTTP-> Phoenix, all on 127.0.0.1."""
        with start_rotel(tmp_path / "last", export_endpoint=phoenix.url) as last, start_rotel(
            tmp_path / "first", export_endpoint=f"http://{last.grpc_endpoint}", export_protocol="grpc"
        ) as first:
            trace_id = _send_turn(GrpcSpanExporter(endpoint=first.grpc_endpoint, insecure=True), "smoke-grpc")
            _assert_in_phoenix(phoenix, trace_id, "smoke-grpc")


def test_rotel_restart_keeps_ports(tmp_path):
    """restart() brings rotel back on the same ports, so an outage test's senders need no reconfiguring."""
    with start_rotel(tmp_path, export_endpoint=None, exporter="blackhole") as rotel:
        before = (rotel.grpc_endpoint, rotel.http_endpoint, rotel.pid)
        rotel.restart()
        assert (rotel.grpc_endpoint, rotel.http_endpoint) == before[:2] and rotel.pid != before[2]
        socket.create_connection(("127.0.0.1", rotel.http_port), timeout=2).close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", rotel.http_port), timeout=2).close()
