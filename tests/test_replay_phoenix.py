"""Replay from Phoenix's span API: SDK -> OTLP/HTTP -> Phoenix -> ``GET /v1/projects/{p}/spans`` -> replay."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from fixtures.replay.sdk_conversation import record
from otel_lunary.replay.assemble import assemble
from otel_lunary.replay.reader import PhoenixSource, read_sources
from servers import poll_until, start_phoenix
from test_replay_roundtrip import assert_replays, only

pytestmark = pytest.mark.slow


class TestPhoenix:
    def test_sdk_conversation_replays_from_phoenix(self, tmp_path: Path) -> None:
        """A conversation sent to Phoenix replays from its span API as tracked, searched by conversation id."""
        with start_phoenix(tmp_path) as phoenix:
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=phoenix.otlp_http_endpoint)))
            provider.add_span_processor(SimpleSpanProcessor(sent := InMemorySpanExporter()))
            try:
                tracked = record(provider)
            finally:
                provider.shutdown()
            total = len(sent.get_finished_spans())
            poll_until(lambda: len(phoenix.spans()) >= total or None, timeout=60, what="spans in Phoenix")
            problems: list[object] = []
            source = PhoenixSource(phoenix.url, "default")
            spans = read_sources([source], problems.append, conversation_ids=frozenset({tracked.conversation_id}))
            conversations = assemble(spans, conversation_ids={tracked.conversation_id})
        assert problems == []
        assert_replays(only(conversations, tracked.conversation_id), tracked)
