"""Feedback in a real Phoenix: the live sink and ``otel-lunary annotate``, checked through Phoenix's REST API.

Spans are recorded with the real SDK (otel-lunary on an SDK ``TracerProvider``)
exported over OTLP/HTTP to one Phoenix started for this module. ``mirror_feedback`` does
what ``track_feedback`` does with the sink switched on: record the feedback span, then
submit ``feedback_annotations`` built from the same evaluation events.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

import otel_lunary as lunary
from otel_lunary.export.file import OtlpJsonFileExporter
from otel_lunary.phoenix_feedback import IDENTIFIER_PREFIX, PhoenixAnnotationSink
from helpers.phoenix_feedback import annotate, ids, mirror_feedback, recording
from helpers.servers import PhoenixProcess, poll_until, start_phoenix

pytestmark = pytest.mark.slow

Live = dict[tuple[str, str], tuple[str | None, float | None, str | None]]


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhoenixProcess]:
    with start_phoenix(tmp_path_factory.mktemp("phoenix")) as server:
        yield server


def annotation_rows(phoenix: PhoenixProcess, kind: str, targets: list[str]) -> list[dict[str, Any]]:
    """Every annotation Phoenix holds on these spans or traces: ``GET /v1/projects/default/{kind}_annotations``."""
    query = urllib.parse.urlencode([(f"{kind}_ids", target) for target in targets] + [("limit", "1000")])
    try:
        with urllib.request.urlopen(f"{phoenix.url}/v1/projects/default/{kind}_annotations?{query}", timeout=10) as response:
            return list(json.load(response)["data"])
    except urllib.error.HTTPError as error:
        if error.code == 404:  # none of the targets is in Phoenix
            return []
        raise


def live(phoenix: PhoenixProcess, kind: str, targets: list[str]) -> Live:
    """Our annotations on ``targets``: (target, name) -> (label, score, explanation); one per key, HUMAN."""
    found: Live = {}
    for row in annotation_rows(phoenix, kind, targets):
        if not row["identifier"].startswith(IDENTIFIER_PREFIX):
            continue
        key = (row[f"{kind}_id"], row["name"])
        assert key not in found, f"two annotations for {key}"
        assert row["annotator_kind"] == "HUMAN"
        result = row["result"]
        found[key] = (result["label"], result["score"], result["explanation"])
    return found


def annotation_ids(phoenix: PhoenixProcess, kind: str, targets: list[str]) -> dict[tuple[str, str], str]:
    return {(row[f"{kind}_id"], row["name"]): row["id"] for row in annotation_rows(phoenix, kind, targets)}


def in_phoenix(phoenix: PhoenixProcess, trace_id: str) -> bool:
    return bool(phoenix.spans(trace_id=trace_id))


def turns(thread: lunary.Thread, count: int) -> list[tuple[str, str]]:
    """``count`` turns (user question, assistant answer); their message ids."""
    pairs = []
    for number in range(count):
        question = thread.track_message({"role": "user", "content": f"question {number}"})
        answer = thread.track_message({"role": "assistant", "content": f"answer {number}"})
        assert question and answer
        pairs.append((question, answer))
    return pairs


class TestSink:
    def test_live_values_are_annotations_on_the_turn_and_the_message(self, phoenix: PhoenixProcess) -> None:
        """Thumbs up, thumbs down with a comment, a replaced rating and a removed thumb end as exactly the live values."""
        sink = PhoenixAnnotationSink(phoenix.url)
        with recording(OTLPSpanExporter(endpoint=phoenix.otlp_http_endpoint)):
            (q1, a1), (q2, a2), (q3, a3) = turns(lunary.open_thread(), 3)
            mirror_feedback(sink, a1, {"thumb": "up"})
            mirror_feedback(sink, a2, {"thumb": "down", "comment": "wrong city"})
            mirror_feedback(sink, a3, {"rating": 3, "thumb": "up"})
            assert sink.flush(timeout=60)
            traces = [ids(q)[0] for q in (q1, q2, q3)]
            spans = [ids(a)[1] for a in (a1, a2, a3)]
            before = annotation_ids(phoenix, "span", spans)
            assert (spans[2], "thumb") in before
            mirror_feedback(sink, a3, {"rating": 5})
            mirror_feedback(sink, a3, {"thumb": None})
            assert sink.flush(timeout=60)
        sink.shutdown(timeout=5)

        assert ids(a1)[0] == traces[0]  # the answer is in its question's turn
        expected = {
            0: {"thumb": ("up", 1.0, None)},
            1: {"thumb": ("down", -1.0, None), "comment": (None, None, "wrong city")},
            2: {"rating": (None, 5.0, None)},
        }
        assert live(phoenix, "trace", traces) == {(traces[t], name): value for t, keys in expected.items() for name, value in keys.items()}
        assert live(phoenix, "span", spans) == {(spans[t], name): value for t, keys in expected.items() for name, value in keys.items()}
        assert annotation_ids(phoenix, "span", spans)[(spans[2], "rating")] == before[(spans[2], "rating")]  # replaced in place
        counts = sink.counts()
        assert counts["removed"] == 2
        assert {key: n for key, n in counts.items() if key.startswith("dropped_") and n} == {}

    def test_feedback_right_after_export_lands(self, phoenix: PhoenixProcess) -> None:
        """Feedback submitted the moment its message span was exported survives Phoenix's ingestion delay."""
        sink = PhoenixAnnotationSink(phoenix.url)
        with recording(OTLPSpanExporter(endpoint=phoenix.otlp_http_endpoint)):
            thread = lunary.open_thread()
            answer = thread.track_message({"role": "assistant", "content": "hi"})
            assert answer
            mirror_feedback(sink, answer, {"thumb": "up"})
            assert sink.flush(timeout=60)
        sink.shutdown(timeout=5)
        trace_id, span_id = ids(answer)
        assert live(phoenix, "span", [span_id]) == {(span_id, "thumb"): ("up", 1.0, None)}
        assert live(phoenix, "trace", [trace_id]) == {(trace_id, "thumb"): ("up", 1.0, None)}

    def test_feedback_before_the_span_reaches_phoenix_lands_when_it_does(self, phoenix: PhoenixProcess) -> None:
        """Phoenix answers 404 while the span is still in the app's batch queue; the sink retries until it is there."""
        sink = PhoenixAnnotationSink(phoenix.url)
        with recording(OTLPSpanExporter(endpoint=phoenix.otlp_http_endpoint), hold_until_flushed=True) as provider:
            answer = lunary.open_thread().track_message({"role": "assistant", "content": "hi"})
            assert answer
            mirror_feedback(sink, answer, {"thumb": "down", "comment": "too slow"})
            poll_until(lambda: sink.counts()["retried"] >= 2, timeout=30, what="Phoenix to answer 404")
            trace_id, span_id = ids(answer)
            assert not in_phoenix(phoenix, trace_id)
            assert provider.force_flush()
            assert sink.flush(timeout=60)
        sink.shutdown(timeout=5)
        expected = {"thumb": ("down", -1.0, None), "comment": (None, None, "too slow")}
        assert live(phoenix, "span", [span_id]) == {(span_id, name): value for name, value in expected.items()}
        assert live(phoenix, "trace", [trace_id]) == {(trace_id, name): value for name, value in expected.items()}

    def test_a_removal_that_overtakes_its_value_leaves_nothing(self, phoenix: PhoenixProcess) -> None:
        """Up then removed while the span is not in Phoenix yet: once it is, no annotation appears."""
        sink = PhoenixAnnotationSink(phoenix.url)
        with recording(OTLPSpanExporter(endpoint=phoenix.otlp_http_endpoint), hold_until_flushed=True) as provider:
            answer = lunary.open_thread().track_message({"role": "assistant", "content": "hi"})
            assert answer
            mirror_feedback(sink, answer, {"thumb": "up"})
            poll_until(lambda: sink.counts()["retried"] >= 1, timeout=30, what="Phoenix to answer 404")
            mirror_feedback(sink, answer, {"thumb": None})
            assert sink.flush(timeout=60)
            assert provider.force_flush()
        sink.shutdown(timeout=5)
        trace_id, span_id = ids(answer)
        poll_until(lambda: in_phoenix(phoenix, trace_id), timeout=60, what="the span in Phoenix")
        assert sink.counts()["superseded"] >= 1
        assert live(phoenix, "span", [span_id]) == {}
        assert live(phoenix, "trace", [trace_id]) == {}


def full_rows(phoenix: PhoenixProcess, kind: str, targets: list[str]) -> list[tuple[Any, ...]]:
    """Everything that tells two annotation sets apart, ids included, sorted."""
    return sorted(
        (row["id"], row[f"{kind}_id"], row["name"], row["identifier"], row["annotator_kind"], json.dumps(row["result"], sort_keys=True))
        for row in annotation_rows(phoenix, kind, targets)
    )


class TestBackfill:
    def test_backfill_from_phoenix_twice_gives_the_same_annotations(self, phoenix: PhoenixProcess) -> None:
        """Feedback recorded without the sink becomes the live annotations; a second run changes nothing."""
        with recording(OTLPSpanExporter(endpoint=phoenix.otlp_http_endpoint)):
            thread = lunary.open_thread()
            (q1, a1), (q2, a2) = turns(thread, 2)
            lunary.track_feedback(a1, {"thumb": "up"})
            lunary.track_feedback(a2, {"thumb": "up", "comment": "great"})
            lunary.track_feedback(a2, {"thumb": "down"})
            lunary.track_feedback(a2, {"comment": None})
        traces = [ids(q1)[0], ids(q2)[0]]
        spans = [ids(a1)[1], ids(a2)[1]]
        poll_until(lambda: all(in_phoenix(phoenix, t) for t in traces), timeout=60, what="spans in Phoenix")

        first = annotate(phoenix, "--conversation", thread.id)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "4 annotations written" in first.stdout and "2 removals applied" in first.stdout
        expected = {0: {"thumb": ("up", 1.0, None)}, 1: {"thumb": ("down", -1.0, None)}}
        assert live(phoenix, "trace", traces) == {(traces[t], n): v for t, keys in expected.items() for n, v in keys.items()}
        assert live(phoenix, "span", spans) == {(spans[t], n): v for t, keys in expected.items() for n, v in keys.items()}
        snapshot = (full_rows(phoenix, "trace", traces), full_rows(phoenix, "span", spans))

        second = annotate(phoenix, "--conversation", thread.id)
        assert second.returncode == 0, second.stdout + second.stderr
        assert second.stdout == first.stdout
        assert (full_rows(phoenix, "trace", traces), full_rows(phoenix, "span", spans)) == snapshot

    def test_backfill_from_a_file_rewrites_the_live_sinks_annotations(self, phoenix: PhoenixProcess, tmp_path: Path) -> None:
        """A file source: the removal the sink never saw is applied, and what the sink wrote is rewritten in place, not copied."""
        path = tmp_path / "traces.jsonl"
        sink = PhoenixAnnotationSink(phoenix.url)
        with recording(OTLPSpanExporter(endpoint=phoenix.otlp_http_endpoint), OtlpJsonFileExporter(str(path))):
            thread = lunary.open_thread()
            (q1, a1), (q2, a2) = turns(thread, 2)
            mirror_feedback(sink, a1, {"thumb": "up"})
            mirror_feedback(sink, a2, {"thumb": "down", "comment": "wrong city"})
            assert sink.flush(timeout=60)
            lunary.track_feedback(a1, {"thumb": None})  # from a process without the sink
        sink.shutdown(timeout=5)
        traces, spans = [ids(q1)[0], ids(q2)[0]], [ids(a1)[1], ids(a2)[1]]
        written_by_sink = annotation_ids(phoenix, "span", spans)

        result = annotate(phoenix, str(path))
        assert result.returncode == 0, result.stdout + result.stderr
        expected = {(1, "thumb"): ("down", -1.0, None), (1, "comment"): (None, None, "wrong city")}
        assert live(phoenix, "trace", traces) == {(traces[t], n): v for (t, n), v in expected.items()}
        assert live(phoenix, "span", spans) == {(spans[t], n): v for (t, n), v in expected.items()}
        assert annotation_ids(phoenix, "span", spans) == {key: id_ for key, id_ in written_by_sink.items() if key[0] == spans[1]}
