"""Replay from Phoenix's span API: SDK -> OTLP/HTTP -> Phoenix -> ``GET /v1/projects/{p}/spans`` -> replay."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.replay.sdk_conversation import record_over_otlp
from otel_lunary.replay.assemble import assemble
from otel_lunary.replay.sources import PhoenixSource, read_sources
from servers import poll_until, start_phoenix
from test_replay_roundtrip import assert_replays, only

pytestmark = pytest.mark.slow


class TestPhoenix:
    def test_sdk_conversation_replays_from_phoenix(self, tmp_path: Path) -> None:
        """A conversation sent to Phoenix replays from its span API as tracked, searched by conversation id."""
        with start_phoenix(tmp_path) as phoenix:
            tracked, total = record_over_otlp(phoenix.otlp_http_endpoint)
            poll_until(lambda: len(phoenix.spans()) >= total or None, timeout=60, what="spans in Phoenix")
            problems: list[object] = []
            source = PhoenixSource(phoenix.url, "default")
            spans = read_sources([source], problems.append, conversation_ids=frozenset({tracked.conversation_id}))
            conversations = assemble(spans, conversation_ids={tracked.conversation_id})
        assert problems == []
        assert_replays(only(conversations, tracked.conversation_id), tracked)
