"""Feedback as Phoenix annotations without a Phoenix: the mapping, the settings, and a Phoenix that is down.

The annotations are built from what ``feedback.feedback_record`` really produces, and
the outage tests talk to real sockets: a port nobody listens on, and a listener that
accepts connections and never answers.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import pytest

from otel_lunary import _health
from otel_lunary._content import ContentPolicy
from otel_lunary._settings import resolve_settings
from otel_lunary._record import feedback_record
from otel_lunary.phoenix_feedback import (
    ENV_ENDPOINT,
    Annotation,
    PhoenixAnnotationSink,
    feedback_annotations,
    identifier_for,
    resolve_endpoint,
)
from otel_lunary.attributes import GEN_AI_EVALUATION_NAME, GEN_AI_EVALUATION_SCORE_LABEL
from helpers.servers import free_port

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0xB7AD6B7169203331
TRACE_HEX = "0af7651916cd43dd8448eb211c80319c"
SPAN_HEX = "b7ad6b7169203331"


def annotations_for(feedback: dict[str, object], policy: ContentPolicy | None = None) -> list[Annotation]:
    """What the sink is given for ``feedback`` on the message (TRACE_ID, SPAN_ID), via the real feedback record."""
    _, events = feedback_record(feedback, policy or ContentPolicy(resolve_settings()))
    return feedback_annotations(TRACE_ID, SPAN_ID, [attributes for _, attributes in events], message_id="m-1")


def by_target(annotations: list[Annotation]) -> dict[tuple[str, str], Annotation]:
    return {(a.kind, a.name): a for a in annotations}


class TestMapping:
    def test_thumb_up_annotates_the_turn_and_the_message(self) -> None:
        """A thumb up is a HUMAN annotation named ``thumb``, label up, score 1, on the trace and on the message span."""
        found = by_target(annotations_for({"thumb": "up"}))
        assert set(found) == {("trace", "thumb"), ("span", "thumb")}
        assert found[("trace", "thumb")].target_id == TRACE_HEX
        assert found[("span", "thumb")].target_id == SPAN_HEX
        for annotation in found.values():
            payload = annotation.payload()
            assert payload["annotator_kind"] == "HUMAN"
            assert payload["result"] == {"label": "up", "score": 1.0, "explanation": None}
            assert payload["identifier"] == identifier_for(SPAN_HEX)
            assert payload["metadata"]["message_id"] == "m-1"

    def test_thumb_down_with_comment_as_the_evaluation_events_say(self) -> None:
        """Thumb down keeps the event's label and score (-1); the comment is the explanation."""
        found = by_target(annotations_for({"thumb": "down", "comment": "wrong city"}))
        assert (found[("span", "thumb")].label, found[("span", "thumb")].score) == ("down", -1.0)
        comment = found[("trace", "comment")]
        assert (comment.label, comment.score, comment.explanation) == (None, None, "wrong city")

    def test_comment_is_redacted_like_message_content(self) -> None:
        """The redaction hook runs on the comment before it becomes an explanation."""
        policy = ContentPolicy(resolve_settings(redact=lambda text: text.replace("Paris", "[city]")))
        found = by_target(annotations_for({"comment": "not Paris"}, policy))
        assert found[("span", "comment")].explanation == "not [city]"

    def test_numbers_are_scores_and_strings_labels(self) -> None:
        """A rating is a score, an emoji a label, a boolean 1/0."""
        found = by_target(annotations_for({"rating": 4, "emoji": "tada", "resolved": False}))
        assert found[("span", "rating")].score == 4.0
        assert found[("span", "emoji")].label == "tada"
        assert found[("span", "resolved")].score == 0.0

    def test_removal_is_a_removed_annotation_without_result(self) -> None:
        """``None`` removes the key: both annotations are marked removed and carry no value."""
        found = by_target(annotations_for({"thumb": None}))
        assert {a.removed for a in found.values()} == {True}
        assert {(a.label, a.score, a.explanation) for a in found.values()} == {(None, None, None)}

    def test_a_later_value_has_the_same_key(self) -> None:
        """Up then down for one message address the same annotations (what Phoenix upserts on)."""
        first = {a.key for a in annotations_for({"thumb": "up"})}
        second = {a.key for a in annotations_for({"thumb": "down"})}
        assert first == second

    def test_two_messages_of_one_turn_keep_one_trace_annotation_each(self) -> None:
        """Feedback on two messages of the same trace gets two identifiers, so neither replaces the other."""
        events = [{GEN_AI_EVALUATION_NAME: "thumb", GEN_AI_EVALUATION_SCORE_LABEL: "up"}]
        one = feedback_annotations(TRACE_ID, SPAN_ID, events)
        other = feedback_annotations(TRACE_ID, SPAN_ID + 1, events)
        assert {a.key for a in one if a.kind == "trace"}.isdisjoint({a.key for a in other if a.kind == "trace"})

    def test_reserved_name_is_renamed(self) -> None:
        """Phoenix refuses annotations named ``note``; that key is written as ``note (feedback)``."""
        assert {a.name for a in annotations_for({"note": "see ticket"})} == {"note (feedback)"}

    def test_hex_ids_from_replay_give_the_same_annotations(self) -> None:
        """Replay's hex ids and the SDK's integer ids address the same annotations."""
        _, events = feedback_record({"thumb": "up"}, ContentPolicy(resolve_settings()))
        evaluations = [attributes for _, attributes in events]
        assert feedback_annotations(TRACE_HEX, SPAN_HEX.upper(), evaluations) == feedback_annotations(TRACE_ID, SPAN_ID, evaluations)

    @pytest.mark.parametrize(("trace_id", "span_id"), [(0, SPAN_ID), (TRACE_ID, 0), ("xyz", SPAN_HEX), (TRACE_HEX, "12")])
    def test_invalid_ids_give_nothing(self, trace_id: int | str, span_id: int | str) -> None:
        """No annotation for an invalid span context (nothing in Phoenix could hold it)."""
        assert feedback_annotations(trace_id, span_id, [{GEN_AI_EVALUATION_NAME: "thumb"}]) == []


class TestSettings:
    def test_explicit_url_wins_over_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """configure(phoenix_annotations=URL) beats OTEL_LUNARY_PHOENIX_ANNOTATIONS; the OTLP path is dropped."""
        monkeypatch.setenv(ENV_ENDPOINT, "http://env:6006")
        assert resolve_endpoint("http://arg:6006/v1/traces") == "http://arg:6006"
        assert resolve_endpoint(None) == "http://env:6006"
        assert resolve_endpoint(False) is None

    def test_unset_means_no_sink(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without argument or environment the mirroring is off."""
        monkeypatch.delenv(ENV_ENDPOINT, raising=False)
        assert resolve_endpoint(None) is None

    def test_bad_argument_raises(self) -> None:
        """A wrong URL passed in code is a ValueError at setup."""
        with pytest.raises(ValueError, match="phoenix_annotations"):
            resolve_endpoint("localhost:6006")
        with pytest.raises(ValueError, match="max_queue"):
            PhoenixAnnotationSink("http://127.0.0.1:6006", max_queue=0)

    def test_bad_env_warns_and_stays_off(self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
        """A wrong environment value logs a warning and leaves the sink off rather than failing the app."""
        monkeypatch.setenv(ENV_ENDPOINT, "ftp://phoenix")
        with caplog.at_level(logging.WARNING):
            assert resolve_endpoint(None) is None
        assert ENV_ENDPOINT in caplog.text


@pytest.fixture
def silent_phoenix() -> Iterator[str]:
    """A URL whose server accepts connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(512)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def distinct(count: int) -> list[Annotation]:
    return [Annotation(kind="span", target_id=f"{i + 1:016x}", name="thumb", identifier=identifier_for(f"{i + 1:016x}"), label="up", score=1.0) for i in range(count)]


class TestPhoenixDown:
    def test_silent_phoenix_never_blocks_submit_and_shutdown_is_bounded(self, silent_phoenix: str) -> None:
        """Against a Phoenix that never answers, submit returns at once and shutdown(1) returns in about 1 s, counting every loss."""
        _health.reset()
        sink = PhoenixAnnotationSink(silent_phoenix, request_timeout_s=30)
        slowest = 0.0
        for annotation in distinct(500):
            start = time.perf_counter()
            sink.submit([annotation])
            slowest = max(slowest, time.perf_counter() - start)
        assert slowest < 0.05
        start = time.monotonic()
        assert sink.shutdown(timeout=1.0) is False
        assert time.monotonic() - start < 2.0
        counts = sink.counts()
        assert counts["dropped_shutdown"] == 500
        assert counts["written"] == 0
        assert _health.counts()["phoenix_annotations_dropped"] == 500  # otel_lunary.stats() shows them

    def test_refused_connections_are_retried_then_counted(self) -> None:
        """With nothing listening, each annotation is retried for the wait, then dropped as unreachable."""
        sink = PhoenixAnnotationSink(f"http://127.0.0.1:{free_port()}", ingestion_wait_s=0.5)
        sink.submit(distinct(3))
        assert sink.flush(timeout=30) is True
        counts = sink.counts()
        assert counts["dropped_unreachable"] == 3
        assert counts["retried"] >= 3
        sink.shutdown(timeout=1)

    def test_queue_is_bounded_and_a_newer_value_replaces_a_waiting_one(self, silent_phoenix: str) -> None:
        """Past max_queue annotations are dropped and counted; the same annotation again replaces the waiting one."""
        sink = PhoenixAnnotationSink(silent_phoenix, max_queue=4)
        first = distinct(1)[0]
        newer = Annotation(kind=first.kind, target_id=first.target_id, name=first.name, identifier=first.identifier, label="down", score=-1.0)
        sink.submit([*distinct(10), newer])
        counts = sink.counts()
        assert counts["dropped_queue_full"] == 6
        assert counts["superseded"] == 1
        sink.shutdown(timeout=0.2)

    def test_after_shutdown_submissions_are_counted_not_sent(self, silent_phoenix: str) -> None:
        """Feedback after shutdown is dropped and counted; shutdown twice is harmless."""
        sink = PhoenixAnnotationSink(silent_phoenix)
        sink.shutdown(timeout=0.2)
        sink.submit(distinct(2))
        sink.shutdown(timeout=0.2)
        assert sink.counts()["dropped_shutdown"] == 2

    def test_garbage_never_raises_into_the_app(self, silent_phoenix: str) -> None:
        """A bad submission is logged and counted, not raised."""
        _health.reset()
        sink = PhoenixAnnotationSink(silent_phoenix)
        sink.submit([object()])  # type: ignore[list-item]
        sink.submit(None)  # type: ignore[arg-type]
        assert _health.counts().get("internal_errors", 0) == 2
        sink.shutdown(timeout=0.2)
