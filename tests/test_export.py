"""Where spans go: exporter choice, OTLP settings from arguments and env, the drop counter."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from otel_lunary import _health, export
from otel_lunary.export import ExportOptions, build_tracer_provider, resolve_exporters, resolve_protocol
from helpers.servers import OtlpSink, free_port


pytestmark = pytest.mark.usefixtures("clean_otel_env")


@pytest.fixture
def providers() -> Iterator[list[TracerProvider]]:
    built: list[TracerProvider] = []
    yield built
    for provider in built:
        export.shutdown(provider, 2.0)


@pytest.fixture
def drops() -> None:
    """Drop counts and their rate-limited log line start at zero: both are process-wide."""
    _health.reset()


def emit(provider: TracerProvider, count: int, prefix: str = "span") -> None:
    tracer = provider.get_tracer("test")
    for i in range(count):
        with tracer.start_as_current_span(f"{prefix} {i}"):
            pass


class TestExporterChoice:
    def test_nothing_configured_means_the_file(self) -> None:
        """With no setting anywhere the embedded file default is used."""
        assert resolve_exporters(ExportOptions()) == ("file",)

    @pytest.mark.parametrize(
        "name",
        ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"],
    )
    def test_an_otlp_endpoint_in_env_means_otlp_never_the_file(self, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """An app that set an OTLP endpoint gets OTLP, never a file behind its back."""
        monkeypatch.setenv(name, "http://127.0.0.1:4318")
        assert resolve_exporters(ExportOptions()) == ("otlp",)

    @pytest.mark.parametrize(("value", "expected"), [("otlp", ("otlp",)), ("console", ("console",)), ("none", ()), ("otlp,console", ("otlp", "console"))])
    def test_otel_traces_exporter_is_honoured(self, value: str, expected: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
        """OTEL_TRACES_EXPORTER=otlp|console|none chooses the exporter."""
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
        assert resolve_exporters(ExportOptions()) == expected

    def test_unknown_otel_traces_exporter_warns_and_falls_back_to_otlp(self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
        """An unsupported OTEL_TRACES_EXPORTER logs a warning and uses OTLP, not the file."""
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
        assert resolve_exporters(ExportOptions()) == ("otlp",)
        assert "OTEL_TRACES_EXPORTER" in caplog.text

    def test_otel_lunary_exporter_beats_otel_traces_exporter(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """OTEL_LUNARY_EXPORTER (specific) wins over OTEL_TRACES_EXPORTER (generic)."""
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
        monkeypatch.setenv("OTEL_LUNARY_EXPORTER", "file")
        assert resolve_exporters(ExportOptions()) == ("file",)

    def test_explicit_exporter_beats_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """configure(exporter=...) wins over every env variable."""
        monkeypatch.setenv("OTEL_LUNARY_EXPORTER", "otlp")
        assert resolve_exporters(ExportOptions(exporter="console")) == ("console",)

    def test_explicit_endpoint_means_otlp(self) -> None:
        """configure(endpoint=...) alone selects OTLP."""
        assert resolve_exporters(ExportOptions(endpoint="http://127.0.0.1:4318")) == ("otlp",)

    def test_unknown_lunary_exporter_in_env_warns_and_is_ignored(self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
        """A bad OTEL_LUNARY_EXPORTER logs a warning; the next rule decides."""
        monkeypatch.setenv("OTEL_LUNARY_EXPORTER", "kafka")
        assert resolve_exporters(ExportOptions()) == ("file",)
        assert "OTEL_LUNARY_EXPORTER" in caplog.text

    @pytest.mark.parametrize(
        "options",
        [
            ExportOptions(exporter="kafka"),
            ExportOptions(protocol="http/json"),
            ExportOptions(endpoint="127.0.0.1:4318"),
            ExportOptions(endpoint="ftp://collector:21"),
            ExportOptions(endpoint="http://collector:port"),
            ExportOptions(exporter="otlp", compression="brotli"),
            ExportOptions(exporter="otlp", headers={"a": 1}),  # type: ignore[dict-item]
            ExportOptions(exporter="otlp", timeout_s=-1),
            ExportOptions(service_name=""),
        ],
    )
    def test_invalid_explicit_option_raises(self, options: ExportOptions) -> None:
        """A wrong explicit option is a ValueError naming the problem."""
        with pytest.raises(ValueError):
            build_tracer_provider(options)


class TestProtocol:
    def test_default_is_http_protobuf(self) -> None:
        """With nothing set, OTLP goes over HTTP/protobuf (the spec's default)."""
        assert resolve_protocol(None) == "http/protobuf"

    def test_traces_specific_env_beats_generic(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """OTEL_EXPORTER_OTLP_TRACES_PROTOCOL wins over OTEL_EXPORTER_OTLP_PROTOCOL."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
        assert resolve_protocol(None) == "grpc"

    def test_invalid_env_protocol_warns_and_uses_default(self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
        """An unsupported OTEL_EXPORTER_OTLP_PROTOCOL logs a warning and uses http/protobuf."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        assert resolve_protocol(None) == "http/protobuf"
        assert "OTEL_EXPORTER_OTLP_PROTOCOL" in caplog.text


class TestOtlpSettingsReachTheWire:
    def test_env_endpoint_headers_compression_and_resource(self, sink: OtlpSink, providers: list, monkeypatch: pytest.MonkeyPatch) -> None:
        """OTEL_EXPORTER_OTLP_* and resource env vars shape what the collector receives."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", sink.endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-team=chat,authorization=Bearer%20abc")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "support-bot")
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
        providers.append(provider := build_tracer_provider(ExportOptions()))
        emit(provider, 3)
        assert export.flush(provider, 10.0)
        assert sorted(sink.names()) == ["span 0", "span 1", "span 2"]
        headers = sink.headers[0]
        assert (headers["x-team"], headers["authorization"], headers["content-encoding"]) == ("chat", "Bearer abc", "gzip")
        resource = {kv.key: kv.value.string_value for kv in sink.resources[0].attributes}
        assert (resource["service.name"], resource["deployment.environment"]) == ("support-bot", "test")

    def test_explicit_base_endpoint_gets_the_traces_path(self, sink: OtlpSink, providers: list) -> None:
        """configure(endpoint="http://host:port") posts to /v1/traces, like the env variable."""
        providers.append(provider := build_tracer_provider(ExportOptions(endpoint=sink.endpoint, headers={"x-k": "v"}, service_name="svc")))
        emit(provider, 1)
        assert export.flush(provider, 10.0)
        assert sink.names() == ["span 0"] and sink.headers[0]["x-k"] == "v"
        assert sink.paths == ["/v1/traces"]

    def test_invalid_env_values_warn_and_still_export(self, sink: OtlpSink, providers: list, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
        """Bad timeout/compression/BSP env values log warnings; export still works with defaults."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{sink.endpoint}/v1/traces")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli")
        monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "many")
        providers.append(provider := build_tracer_provider(ExportOptions()))
        emit(provider, 2)
        assert export.flush(provider, 10.0)
        assert sink.count() == 2
        assert "OTEL_EXPORTER_OTLP_TIMEOUT" in caplog.text and "OTEL_EXPORTER_OTLP_COMPRESSION" in caplog.text

    def test_invalid_env_endpoint_warns_and_uses_default(self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, providers: list) -> None:
        """A malformed OTEL_EXPORTER_OTLP_ENDPOINT logs a warning instead of raising."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:notaport")
        providers.append(build_tracer_provider(ExportOptions()))
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" in caplog.text

    def test_bsp_env_is_read_by_the_sdk_processor(self, monkeypatch: pytest.MonkeyPatch, providers: list, drops: None) -> None:
        """OTEL_BSP_MAX_QUEUE_SIZE bounds the queue: with nowhere to send, the overflow is counted."""
        monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "20")
        monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "20")
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
        providers.append(provider := build_tracer_provider(ExportOptions()))
        emit(provider, 19)  # below the batch size: the worker stays asleep, nothing leaves
        assert export.dropped_spans() == 0
        export.shutdown(provider, 0.0)  # the 19 are abandoned: counted
        assert export.drop_counts()["shutdown_timeout"] + export.drop_counts()["export_failed"] == 19


class TestDropCounter:
    def test_queue_overflow_is_counted_and_logged_once(self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, providers: list, drops: None) -> None:
        """Spans that overflow the queue are counted exactly, reported on one log line."""
        silent = __import__("socket").socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # accepts connections (kernel backlog), never answers
        monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "10")
        monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        providers.append(provider := build_tracer_provider(ExportOptions()))
        with caplog.at_level(logging.WARNING):
            emit(provider, 10)  # fills the queue: the worker takes one batch and hangs on the socket
            silent.settimeout(10)
            connection, _ = silent.accept()  # the worker took the batch and is sending it
            emit(provider, 100)  # 10 wait in the queue, 90 overflow
        assert export.dropped_spans() == 90
        assert export.drop_counts()["queue_full"] == 90
        ours = [r for r in caplog.records if r.name == "otel_lunary.export" and "dropped" in r.getMessage()]
        assert len(ours) == 1
        assert not [r for r in caplog.records if "Queue full" in r.getMessage()]
        export.shutdown(provider, 0.5)
        connection.close()
        silent.close()

    def test_spans_after_shutdown_are_counted(self, providers: list, drops: None, tmp_path) -> None:
        """A span ended after shutdown is counted as dropped, not lost silently."""
        providers.append(provider := build_tracer_provider(ExportOptions(exporter="file", file_path=str(tmp_path / "f.jsonl"))))
        export.shutdown(provider, 2.0)
        emit(provider, 3)
        assert export.drop_counts()["after_shutdown"] == 3
