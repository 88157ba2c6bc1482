"""The Phoenix sink against a Phoenix with authentication on: ``PHOENIX_API_KEY`` is what lets it in.

Phoenix runs with ``PHOENIX_ENABLE_AUTH`` and a ``PHOENIX_ADMIN_SECRET``, a bearer token
it accepts as an admin API key, so no user or key has to be created through its UI.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

import otel_lunary as lunary
from otel_lunary.phoenix_feedback import ENV_API_KEY, PhoenixAnnotationSink
from helpers.phoenix_feedback import annotate, ids, mirror_feedback, recording
from helpers.servers import PhoenixProcess, poll_until, start_phoenix

pytestmark = pytest.mark.slow

API_KEY = "annotations-admin-secret-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhoenixProcess]:
    settings = {
        "PHOENIX_ENABLE_AUTH": "true",
        "PHOENIX_SECRET": "phoenix-jwt-secret-0123456789abcdefghij",
        "PHOENIX_ADMIN_SECRET": API_KEY,
    }
    with start_phoenix(tmp_path_factory.mktemp("phoenix-auth"), extra_env=settings) as server:
        yield server


def spans_in(phoenix: PhoenixProcess, span_id: str) -> bool:
    """Phoenix has the message span and its feedback span (the feedback's parent is the message)."""
    request = urllib.request.Request(f"{phoenix.url}/v1/projects/default/spans?limit=1000", headers=AUTH)
    with urllib.request.urlopen(request, timeout=10) as response:
        spans = json.load(response)["data"]
    return any(span["context"]["span_id"] == span_id for span in spans) and any(span.get("parent_id") == span_id for span in spans)


def span_annotations(phoenix: PhoenixProcess, span_id: str) -> list[dict[str, object]]:
    query = urllib.parse.urlencode({"span_ids": span_id})
    request = urllib.request.Request(f"{phoenix.url}/v1/projects/default/span_annotations?{query}", headers=AUTH)
    with urllib.request.urlopen(request, timeout=10) as response:
        return list(json.load(response)["data"])


class TestApiKey:
    def test_with_the_key_annotations_land_and_without_it_they_are_counted_as_refused(self, phoenix: PhoenixProcess, monkeypatch: pytest.MonkeyPatch) -> None:
        """PHOENIX_API_KEY is sent as a bearer token (writes and GraphQL deletes); a sink without it is refused (401) and counts the drop."""
        monkeypatch.delenv(ENV_API_KEY, raising=False)
        refused = PhoenixAnnotationSink(phoenix.url)
        monkeypatch.setenv(ENV_API_KEY, API_KEY)
        allowed = PhoenixAnnotationSink(phoenix.url)
        with recording(OTLPSpanExporter(endpoint=phoenix.otlp_http_endpoint, headers=AUTH)):
            answer = lunary.open_thread().track_message({"role": "assistant", "content": "hi"})
            assert answer
            mirror_feedback(refused, answer, {"rating": 1})
            mirror_feedback(allowed, answer, {"thumb": "up", "comment": "thanks"})
            assert refused.flush(timeout=60) and allowed.flush(timeout=60)
            mirror_feedback(allowed, answer, {"comment": None})
            assert allowed.flush(timeout=60)
        refused.shutdown(timeout=5)
        allowed.shutdown(timeout=5)
        assert refused.counts()["dropped_rejected"] == 2
        assert (allowed.counts()["written"], allowed.counts()["removed"]) == (4, 2)
        _, span_id = ids(answer)
        assert [(row["name"], row["result"]) for row in span_annotations(phoenix, span_id)] == [("thumb", {"label": "up", "score": 1.0, "explanation": None})]

    def test_backfill_reads_and_writes_with_the_key(self, phoenix: PhoenixProcess, monkeypatch: pytest.MonkeyPatch) -> None:
        """``otel-lunary annotate`` with PHOENIX_API_KEY reads the spans from, and writes the annotations to, a Phoenix with auth on."""
        with recording(OTLPSpanExporter(endpoint=phoenix.otlp_http_endpoint, headers=AUTH)):
            thread = lunary.open_thread()
            answer = thread.track_message({"role": "assistant", "content": "hi"})
            assert answer
            lunary.track_feedback(answer, {"rating": 4})
        _, span_id = ids(answer)
        monkeypatch.setenv(ENV_API_KEY, API_KEY)
        poll_until(lambda: spans_in(phoenix, span_id), timeout=60, what="the spans in Phoenix")
        result = annotate(phoenix, "--conversation", thread.id)
        assert result.returncode == 0, result.stdout + result.stderr
        assert [(row["name"], row["result"]) for row in span_annotations(phoenix, span_id)] == [("rating", {"label": None, "score": 4.0, "explanation": None})]
