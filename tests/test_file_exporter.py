"""The embedded default: OTLP JSON Lines written by real SDK spans, read back, rotated."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from helpers.otlp import json_format_dict
from otel_lunary import attributes as a
from otel_lunary import export
from otel_lunary.export import otlp_json
from otel_lunary.export.file import DEFAULT_PATH, OtlpJsonFileExporter, rotated_paths

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("OTEL_", "PHOENIX_")):
            monkeypatch.delenv(name)


# --- a small OTLP JSON reader, independent of the package ---------------------------------


def any_value(value: dict[str, Any]) -> Any:
    ((kind, inner),) = value.items()
    if kind == "intValue":
        return int(inner)
    if kind == "arrayValue":
        return tuple(any_value(v) for v in inner.get("values", []))
    return inner


def read_spans(*paths: Path) -> list[dict[str, Any]]:
    """Every span of OTLP JSON Lines files, flattened, attributes decoded."""
    spans = []
    for path in paths:
        for line in path.read_text().splitlines():
            request = json.loads(line)
            for rs in request["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    for span in ss["spans"]:
                        span["attrs"] = {kv["key"]: any_value(kv["value"]) for kv in span.get("attributes", [])}
                        spans.append(span)
    return spans


def record_conversation(exporter: OtlpJsonFileExporter) -> list:
    """A user turn with a child LLM span, an event, an error status and a link; returns SDK spans."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test", "1.0")
    with tracer.start_as_current_span("message user", attributes={a.GEN_AI_CONVERSATION_ID: "t-1", a.LUNARY_TAGS: ["x", "y"]}) as user:
        with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT, links=[Link(user.get_span_context(), {"why": "turn"})]) as llm:
            llm.set_attributes({a.GEN_AI_USAGE_INPUT_TOKENS: 12, a.GEN_AI_REQUEST_TEMPERATURE: 0.5, a.LUNARY_MESSAGE_IS_RETRY: True})
            llm.add_event(a.EVENT_NAME_GEN_AI_EVALUATION_RESULT, {a.GEN_AI_EVALUATION_NAME: "thumb", a.GEN_AI_EVALUATION_SCORE_VALUE: 1.0})
            llm.set_status(Status(StatusCode.ERROR, "rate limited"))
    provider.shutdown()
    return list(memory.get_finished_spans())


class TestRoundTrip:
    def test_every_span_reads_back_with_ids_parent_attributes_events_status(self, tmp_path: Path) -> None:
        """Spans written to the file read back whole: ids, parent, attributes, events, links, status."""
        path = tmp_path / "t.jsonl"
        sdk_spans = record_conversation(OtlpJsonFileExporter(str(path)))
        read = {s["spanId"]: s for s in read_spans(path)}
        assert len(read) == len(sdk_spans) == 2
        for sdk in sdk_spans:
            span = read[format(sdk.context.span_id, "016x")]
            assert span["traceId"] == format(sdk.context.trace_id, "032x")
            assert span.get("parentSpanId") == (format(sdk.parent.span_id, "016x") if sdk.parent else None)
            assert span["name"] == sdk.name
            assert span["kind"] == sdk.kind.value + 1  # OTLP numbers kinds from 1 (internal)
            assert span["startTimeUnixNano"] == str(sdk.start_time)
            assert span["attrs"] == {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in sdk.attributes.items()}
        llm = read[format(sdk_spans[0].context.span_id, "016x")]
        assert llm["status"] == {"code": 2, "message": "rate limited"}
        assert llm["events"][0]["name"] == a.EVENT_NAME_GEN_AI_EVALUATION_RESULT
        assert llm["links"][0]["spanId"] == llm["parentSpanId"]

    def test_replay_reader_reads_the_file(self, tmp_path: Path) -> None:
        """otel-lunary replay's reader takes the file as written, with no problems reported."""
        from otel_lunary.replay.reader import read_file

        path = tmp_path / "t.jsonl"
        sdk_spans = record_conversation(OtlpJsonFileExporter(str(path)))
        problems: list = []
        records = list(read_file(path, problems.append))
        assert problems == []
        assert {r.span_id for r in records} == {format(s.context.span_id, "016x") for s in sdk_spans}
        assert next(r for r in records if r.parent_span_id is None).attributes[a.GEN_AI_CONVERSATION_ID] == "t-1"

    def test_lines_follow_the_otlp_json_rules(self, tmp_path: Path) -> None:
        """Each line is an ExportTraceServiceRequest: hex ids, integer enums, int64 as strings."""
        path = tmp_path / "t.jsonl"
        record_conversation(OtlpJsonFileExporter(str(path)))
        line = json.loads(path.read_text().splitlines()[0])
        span = line["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
        assert len(span["traceId"]) == 32 and int(span["traceId"], 16)
        assert isinstance(span["kind"], int) and isinstance(span["endTimeUnixNano"], str)
        int_attr = next(kv for kv in span["attributes"] if kv["key"] == a.GEN_AI_USAGE_INPUT_TOKENS)
        assert int_attr["value"] == {"intValue": "12"}

    def test_walker_matches_protobuf_json_format(self) -> None:
        """The fast encoder gives exactly what protobuf's json_format plus the id fix-up gives."""
        memory = InMemorySpanExporter()
        spans = record_conversation(memory)  # type: ignore[arg-type]
        request = encode_spans(spans)
        assert otlp_json.request_to_dict(request) == json_format_dict(request)

    def test_file_is_the_default_when_nothing_is_configured(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """With no exporter setting at all, spans land in ./otel-lunary-traces.jsonl."""
        monkeypatch.chdir(tmp_path)
        provider = export.build_tracer_provider(export.ExportOptions())
        with provider.get_tracer("t").start_as_current_span("hello"):
            pass
        assert export.flush(provider, 5.0)
        export.shutdown(provider, 5.0)
        assert [s["name"] for s in read_spans(tmp_path / DEFAULT_PATH)] == ["hello"]


class TestRotation:
    def test_rotation_keeps_the_size_bound(self, tmp_path: Path) -> None:
        """Files never pass max_bytes, and at most `backups` rotated files are kept."""
        path = tmp_path / "t.jsonl"
        exporter = OtlpJsonFileExporter(str(path), max_bytes=8192, backups=2)
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("t")
        for i in range(300):
            with tracer.start_as_current_span(f"span {i}", attributes={a.LUNARY_METADATA: "x" * 100}):
                pass
        provider.shutdown()
        files = sorted(tmp_path.iterdir())
        assert files == sorted(Path(p) for p in rotated_paths(str(path), 2))
        assert all(f.stat().st_size <= 8192 for f in files)
        assert read_spans(path)[-1]["name"] == "span 299"

    def test_a_big_batch_is_split_into_lines_below_the_bound(self, tmp_path: Path) -> None:
        """A batch larger than the bound is written as several lines, each file within the bound."""
        path = tmp_path / "t.jsonl"
        memory = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        for i in range(200):
            with provider.get_tracer("t").start_as_current_span(f"s{i}"):
                pass
        exporter = OtlpJsonFileExporter(str(path), max_bytes=16384, backups=50)
        exporter.export(memory.get_finished_spans())
        files = [Path(p) for p in rotated_paths(str(path), 50) if Path(p).exists()]
        assert len(read_spans(*files)) == 200
        assert all(f.stat().st_size <= 16384 for f in files)

    def test_two_processes_append_whole_lines(self, tmp_path: Path) -> None:
        """Two processes writing to one path with rotation lose no span and never split a line."""
        path = tmp_path / "shared.jsonl"
        script = textwrap.dedent(f"""
            import sys
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from otel_lunary.export.file import OtlpJsonFileExporter
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(OtlpJsonFileExporter({str(path)!r}, max_bytes=65536, backups=100)))
            for i in range(300):
                with provider.get_tracer("t").start_as_current_span(sys.argv[1] + str(i)):
                    pass
            provider.shutdown()
        """)
        env = dict(os.environ, PYTHONPATH=str(REPO))
        procs = [subprocess.Popen([sys.executable, "-c", script, name], env=env) for name in ("a", "b")]
        assert [p.wait(60) for p in procs] == [0, 0]
        files = [Path(p) for p in rotated_paths(str(path), 100) if Path(p).exists()]
        assert len(files) > 1
        names = [s["name"] for s in read_spans(*files)]  # json.loads fails on a torn line
        assert sorted(names) == sorted([f"a{i}" for i in range(300)] + [f"b{i}" for i in range(300)])
        assert all(f.stat().st_size <= 65536 for f in files)


class TestFileSettings:
    def test_env_sets_path_size_and_backups(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """OTEL_LUNARY_FILE_PATH, _MAX_BYTES and _BACKUPS configure the file."""
        monkeypatch.setenv("OTEL_LUNARY_FILE_PATH", str(tmp_path / "env.jsonl"))
        monkeypatch.setenv("OTEL_LUNARY_FILE_MAX_BYTES", "5000")
        monkeypatch.setenv("OTEL_LUNARY_FILE_BACKUPS", "1")
        exporter = OtlpJsonFileExporter()
        assert (exporter.path, exporter.max_bytes, exporter.backups) == (str(tmp_path / "env.jsonl"), 5000, 1)

    def test_explicit_arguments_beat_env(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """configure(file_path=...) wins over OTEL_LUNARY_FILE_PATH."""
        monkeypatch.setenv("OTEL_LUNARY_FILE_PATH", str(tmp_path / "env.jsonl"))
        assert OtlpJsonFileExporter(str(tmp_path / "arg.jsonl")).path == str(tmp_path / "arg.jsonl")

    def test_invalid_env_warns_and_uses_defaults(self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
        """A bad OTEL_LUNARY_FILE_MAX_BYTES logs a warning and the default applies."""
        monkeypatch.setenv("OTEL_LUNARY_FILE_MAX_BYTES", "lots")
        monkeypatch.setenv("OTEL_LUNARY_FILE_BACKUPS", "-2")
        with caplog.at_level(logging.WARNING, logger="otel_lunary"):
            exporter = OtlpJsonFileExporter()
        assert (exporter.max_bytes, exporter.backups) == (64 * 1024 * 1024, 3)
        assert "OTEL_LUNARY_FILE_MAX_BYTES" in caplog.text and "OTEL_LUNARY_FILE_BACKUPS" in caplog.text

    @pytest.mark.parametrize("kwargs", [{"max_bytes": 10}, {"backups": -1}, {"path": ""}])
    def test_invalid_explicit_settings_raise(self, kwargs: dict[str, Any]) -> None:
        """A bad explicit file setting is a ValueError at setup."""
        with pytest.raises(ValueError):
            OtlpJsonFileExporter(**kwargs)
