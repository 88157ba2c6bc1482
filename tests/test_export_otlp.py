"""OTLP over HTTP and gRPC to a real rotel collector, and end to end into Phoenix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import otel_lunary as lunary
from otel_lunary import attributes as a
from otel_lunary import export
from otel_lunary.export import ExportOptions, build_tracer_provider
from helpers.servers import OtlpSink, RotelProcess, poll_until, start_phoenix, start_rotel


pytestmark = pytest.mark.usefixtures("clean_otel_env")


@pytest.fixture
def rotel_to_sink(tmp_path: Path, sink: OtlpSink) -> Iterator[RotelProcess]:
    with start_rotel(tmp_path / "rotel", export_endpoint=sink.endpoint) as collector:
        yield collector


def track_threads(provider: Any, turns: dict[str, int], dialects: str | None = None) -> dict[str, str]:
    """Threads with the given number of turns (user message + reply, feedback on the first).

    Returns thread label -> thread id (``gen_ai.conversation.id``).
    """
    lunary.configure(tracer_provider=provider, dialects=dialects)
    ids = {}
    try:
        for label, count in turns.items():
            thread = lunary.open_thread(tags=[label], metadata={"label": label})
            ids[label] = thread.id
            for turn in range(count):
                msg_id = thread.track_message({"role": "user", "content": f"{label} question {turn}"})
                thread.track_message({"role": "assistant", "content": f"{label} answer {turn}"})
                if turn == 0:
                    lunary.track_feedback(msg_id, {"thumb": "up"})
        assert export.flush(provider, 20.0)
    finally:
        lunary.shutdown()
    return ids


def proto_attributes(span: Any) -> dict[str, Any]:
    out = {}
    for kv in span.attributes:
        value = kv.value
        which = value.WhichOneof("value")
        out[kv.key] = [v.string_value for v in value.array_value.values] if which == "array_value" else getattr(value, which)
    return out


class TestRotel:
    @pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
    def test_every_span_arrives_through_rotel(self, protocol: str, rotel_to_sink: RotelProcess, sink: OtlpSink) -> None:
        """SDK -> OTLP (HTTP or gRPC) -> rotel -> backend: every span arrives with its conversation."""
        endpoint = f"http://{rotel_to_sink.grpc_endpoint}" if protocol == "grpc" else rotel_to_sink.http_endpoint
        provider = build_tracer_provider(ExportOptions(endpoint=endpoint, protocol=protocol, service_name="chat"))
        try:
            ids = track_threads(provider, {"a": 2, "b": 1})
        finally:
            export.shutdown(provider, 5.0)
        expected = 3 * 3 + 2  # a turn span and two message spans per turn, one feedback span per thread
        poll_until(lambda: sink.count() == expected, timeout=20, what=f"{expected} spans at the sink")
        by_thread: dict[str, int] = {}
        for span in sink.spans:
            attrs = proto_attributes(span)
            by_thread[attrs[a.GEN_AI_CONVERSATION_ID]] = by_thread.get(attrs[a.GEN_AI_CONVERSATION_ID], 0) + 1
            if attrs[a.LUNARY_SPAN_TYPE] == "message":
                assert attrs[a.LUNARY_THREAD_TAGS] in (["a"], ["b"])
        assert by_thread == {ids["a"]: 7, ids["b"]: 4}


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with start_phoenix(tmp_path_factory.mktemp("phoenix")) as server:
        yield server


@pytest.mark.slow
class TestPhoenix:
    @pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
    def test_threads_show_as_phoenix_sessions_with_their_turns(self, protocol: str, phoenix: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """SDK -> OTLP (HTTP or gRPC) -> rotel -> Phoenix: every span arrives with its conversation, one trace per turn."""
        project = f"otel-lunary-e2e-{protocol.split('/')[0]}"
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", f"openinference.project.name={project}")
        with start_rotel(tmp_path / "rotel", export_endpoint=phoenix.url) as rotel:
            endpoint = f"http://{rotel.grpc_endpoint}" if protocol == "grpc" else rotel.http_endpoint
            provider = build_tracer_provider(ExportOptions(endpoint=endpoint, protocol=protocol))
            try:
                ids = track_threads(provider, {"long": 3, "short": 2}, dialects="openinference")
            finally:
                export.shutdown(provider, 5.0)
            total = (3 + 2) * 3 + 2  # per turn: the turn span and its two messages; one feedback per thread
            poll_until(lambda: len(phoenix.spans(project)) == total, timeout=60, what=f"{total} spans in Phoenix")
            for span in phoenix.spans(project):
                assert span["attributes"][a.SESSION_ID] in ids.values(), span
                assert span["attributes"][a.GEN_AI_CONVERSATION_ID] == span["attributes"][a.SESSION_ID], span
                assert span["span_kind"] in ("CHAIN", "EVALUATOR")
            for label, turns in (("long", 3), ("short", 2)):
                session = phoenix.session(ids[label])
                assert session is not None and len(session["traces"]) == turns, session
