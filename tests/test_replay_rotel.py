"""Round trip through a real collector: SDK -> OTLP -> rotel -> OTLP -> sink -> JSON Lines -> replay.

rotel (the Rust collector in the ``rotel`` wheel) receives the SDK's OTLP/HTTP export and
forwards it over OTLP/HTTP protobuf to an OTLP sink started here; the captured
requests are written as OTLP JSON Lines by ``otel_lunary.export.otlp_json`` and replayed. A
second test posts replay's own input file to rotel as OTLP JSON, checking that a real
collector accepts the file format and that nothing is lost through it.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from fixtures.replay import raw_conversation as raw
from fixtures.replay.sdk_conversation import record_over_otlp
from otel_lunary.export.otlp_json import encode_line, request_to_dict
from otel_lunary.replay import assemble_file
from helpers.servers import OtlpSink, poll_until, start_rotel
from helpers.replay import assert_replays, only

pytestmark = pytest.mark.slow


def write_captured(sink: OtlpSink, path: Path) -> Path:
    """What reached the sink, as OTLP JSON Lines: one request per line, as a file exporter writes."""
    requests = (ExportTraceServiceRequest.FromString(body) for body in list(sink.bodies))
    path.write_text("".join(json.dumps(request_to_dict(request)) + "\n" for request in requests))
    return path


class TestThroughRotel:
    def test_sdk_conversation_survives_rotel(self, tmp_path: Path, sink: OtlpSink) -> None:
        """What the SDK tracked, exported over OTLP through rotel, replays exactly."""
        with start_rotel(tmp_path, export_endpoint=sink.endpoint) as rotel:
            tracked, total = record_over_otlp(rotel.http_endpoint + "/v1/traces")
            poll_until(lambda: sink.count() >= total or None, timeout=20, what="spans through rotel")
        assert sink.count() == total
        conversations = assemble_file(write_captured(sink, tmp_path / "captured.jsonl"))
        assert_replays(only(conversations, tracked.conversation_id), tracked)

    def test_otlp_json_file_accepted_by_rotel(self, tmp_path: Path, sink: OtlpSink) -> None:
        """Our OTLP JSON lines, posted as JSON to rotel, come back out as the same conversation."""
        line = encode_line(raw.record())
        expected = len(json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"])
        with start_rotel(tmp_path, export_endpoint=sink.endpoint) as rotel:
            post = urllib.request.Request(rotel.http_endpoint + "/v1/traces", data=line, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(post, timeout=10) as response:
                assert response.status == 200
            poll_until(lambda: sink.count() >= expected or None, timeout=20, what="spans through rotel")
        conversation = only(assemble_file(write_captured(sink, tmp_path / "captured.jsonl")), raw.CONVERSATION)
        assert [(m.role, m.content) for m in conversation.messages] == raw.EXPECTED_MESSAGES
        assert [m.feedback for m in conversation.messages][4:] == [{"thumb": "down", "comment": "too vague"}, {}, {"rating": 4}]
