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
from servers import PhoenixProcess, start_phoenix
from test_phoenix_feedback_phoenix import ids, mirror_feedback, recording

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
