"""otel-lunary's OTLP exporters: the SDK's exporters with only the body encoding replaced.

Real servers on 127.0.0.1: an OTLP/HTTP receiver (``servers.OtlpSink`` and a scripted one
for failures), a gRPC TraceService built with grpcio. What reaches them must be the bytes
the SDK's exporter would have sent, and the stock behaviour around the body (headers,
compression, retries, timeouts, failure results) must be unchanged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_lunary as lunary
from otel_lunary import export
from otel_lunary.export import ExportOptions, build_tracer_provider
from otel_lunary.export.otlp_exporters import OtlpHttpSpanExporter, grpc_span_exporter
from helpers.servers import OtlpHttpHandler, OtlpSink, poll_until, serve_http, stop_http

pytestmark = pytest.mark.usefixtures("clean_otel_env")


def conversation_spans() -> list[ReadableSpan]:
    """Real otel-lunary spans: two threads of messages, an event, feedback."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "exporter-test"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    lunary.configure(tracer_provider=provider, capture_content=True)
    try:
        for n in range(2):
            thread = lunary.open_thread(tags=["t"], user_id=f"u{n}")
            thread.track_message({"role": "user", "content": f"question {n} ✓"})
            thread.track_event("clicked", metadata={"n": n})
            reply = thread.track_message({"role": "assistant", "content": f"answer {n}"})
            lunary.track_feedback(reply, {"thumb": "up"})
    finally:
        lunary.shutdown()
        provider.shutdown()
    return list(memory.get_finished_spans())


@pytest.fixture
def spans() -> list[ReadableSpan]:
    return conversation_spans()


class ScriptedOtlpServer:
    """OTLP/HTTP receiver answering each POST with the next status of ``script`` (then 200),
    or never answering when the status is None."""

    def __init__(self, script: list[int | None]) -> None:
        self.script = list(script)
        self.bodies: list[bytes] = []
        self.times: list[float] = []
        self.release = threading.Event()
        server = self

        class Handler(OtlpHttpHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = server.script.pop(0) if server.script else 200
                server.bodies.append(body)
                server.times.append(time.monotonic())
                if status is None:
                    server.release.wait(30)
                    return
                self.answer(status)

        self.httpd = serve_http(Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1/traces"

    def stop(self) -> None:
        self.release.set()
        stop_http(self.httpd)


@pytest.fixture
def scripted() -> Iterator[Any]:
    made: list[ScriptedOtlpServer] = []

    def make(script: list[int | None]) -> ScriptedOtlpServer:
        made.append(ScriptedOtlpServer(script))
        return made[-1]

    yield make
    for server in made:
        server.stop()


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    """A gRPC OTLP receiver failing the first ``failures`` calls with ``code``."""

    def __init__(self, failures: int = 0, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
        self.failures = failures
        self.code = code
        self.requests: list[ExportTraceServiceRequest] = []
        self.metadata: list[dict[str, str]] = []

    def Export(self, request: ExportTraceServiceRequest, context: grpc.ServicerContext) -> ExportTraceServiceResponse:  # noqa: N802
        self.metadata.append(dict(context.invocation_metadata()))
        if self.failures:
            self.failures -= 1
            context.abort(self.code, "try again")
        self.requests.append(request)
        return ExportTraceServiceResponse()


@pytest.fixture
def grpc_receiver() -> Iterator[Any]:
    servers: list[grpc.Server] = []

    def start(failures: int = 0, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> tuple[TraceService, str]:
        service = TraceService(failures, code)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(service, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return service, f"http://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.stop(grace=None)


class TestHttp:
    def test_the_body_is_what_the_sdk_exporter_sends(self, spans: list[ReadableSpan], sink: OtlpSink) -> None:
        """Byte for byte the SDK's request, with the stock headers and path."""
        exporter = OtlpHttpSpanExporter(endpoint=sink.endpoint + "/v1/traces", headers={"x-team": "support"})
        assert exporter.fast_encoding
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        exporter.shutdown()
        assert sink.bodies == [encode_spans(spans).SerializeToString()]
        assert sink.paths == ["/v1/traces"]
        assert sink.headers[0]["x-team"] == "support"
        assert sink.headers[0]["content-type"] == "application/x-protobuf"

    def test_gzip_compression_is_the_stock_one(self, spans: list[ReadableSpan], sink: OtlpSink) -> None:
        """compression=gzip sends a gzip body (Content-Encoding: gzip) of the same request."""
        exporter = OtlpHttpSpanExporter(endpoint=sink.endpoint + "/v1/traces", compression=Compression.Gzip)
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        exporter.shutdown()
        assert sink.headers[0]["content-encoding"] == "gzip"
        assert sink.bodies == [encode_spans(spans).SerializeToString()]

    def test_retryable_status_is_retried_then_delivered(self, spans: list[ReadableSpan], scripted: Any) -> None:
        """A 503 is retried with the stock backoff; the second attempt delivers the same body."""
        server = scripted([503])
        exporter = OtlpHttpSpanExporter(endpoint=server.url, timeout=10)
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        exporter.shutdown()
        assert len(server.bodies) == 2 and server.bodies[0] == server.bodies[1] == encode_spans(spans).SerializeToString()
        assert server.times[1] - server.times[0] >= 0.5  # the stock first backoff is 1 s ± 20 %

    def test_permanent_error_fails_without_retry(self, spans: list[ReadableSpan], scripted: Any) -> None:
        """A 400 is not retried and export reports FAILURE, as the stock exporter does."""
        server = scripted([400])
        exporter = OtlpHttpSpanExporter(endpoint=server.url, timeout=10)
        assert exporter.export(spans) is SpanExportResult.FAILURE
        exporter.shutdown()
        assert len(server.bodies) == 1

    def test_timeout_bounds_an_export_to_a_silent_server(self, spans: list[ReadableSpan], scripted: Any) -> None:
        """A server that never answers: export gives up after the stock timeout with FAILURE."""
        server = scripted([None, None, None, None])
        exporter = OtlpHttpSpanExporter(endpoint=server.url, timeout=1)
        started = time.monotonic()
        assert exporter.export(spans) is SpanExportResult.FAILURE
        assert time.monotonic() - started < 8
        exporter.shutdown()

    def test_configure_uses_it_for_http(self, sink: OtlpSink) -> None:
        """configure(exporter="otlp") builds this exporter, and tracked messages arrive."""
        provider = build_tracer_provider(ExportOptions(exporter="otlp", endpoint=sink.endpoint))
        try:
            exporters = [p.counting_exporter.inner for p in export.processor._processors[provider]]
            assert [type(e) for e in exporters] == [OtlpHttpSpanExporter]
            lunary.configure(tracer_provider=provider)
            lunary.open_thread().track_message({"role": "user", "content": "hi"})
            assert export.flush(provider, 10)
            assert poll_until(lambda: sink.count() >= 1, timeout=10)
        finally:
            lunary.shutdown()
            export.shutdown(provider, 5)


class TestGrpc:
    def test_the_request_is_what_the_sdk_exporter_sends(self, spans: list[ReadableSpan], grpc_receiver: Any) -> None:
        """The receiver decodes the SDK's request, with the stock metadata."""
        service, endpoint = grpc_receiver()
        exporter = grpc_span_exporter(endpoint=endpoint, insecure=True, headers={"x-team": "support"})
        assert exporter.fast_encoding
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        exporter.shutdown()
        assert [r.SerializeToString() for r in service.requests] == [encode_spans(spans).SerializeToString()]
        assert service.metadata[0]["x-team"] == "support"

    def test_unavailable_is_retried_like_the_stock_exporter(self, spans: list[ReadableSpan], grpc_receiver: Any) -> None:
        """UNAVAILABLE is retried (on a new channel built with the same stub) and then delivered,
        through a gzip channel (compression is the channel's, untouched here)."""
        service, endpoint = grpc_receiver(failures=1)
        exporter = grpc_span_exporter(endpoint=endpoint, insecure=True, compression=grpc.Compression.Gzip, timeout=10)
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        exporter.shutdown()
        assert len(service.metadata) == 2
        assert [r.SerializeToString() for r in service.requests] == [encode_spans(spans).SerializeToString()]

    def test_permanent_error_fails_without_retry(self, spans: list[ReadableSpan], grpc_receiver: Any) -> None:
        """INVALID_ARGUMENT is not retried; export reports FAILURE."""
        service, endpoint = grpc_receiver(failures=1, code=grpc.StatusCode.INVALID_ARGUMENT)
        exporter = grpc_span_exporter(endpoint=endpoint, insecure=True, timeout=10)
        assert exporter.export(spans) is SpanExportResult.FAILURE
        exporter.shutdown()
        assert len(service.metadata) == 1 and not service.requests

    def test_configure_uses_it_for_grpc(self, grpc_receiver: Any) -> None:
        """protocol=grpc builds this exporter and tracked messages arrive."""
        service, endpoint = grpc_receiver()
        provider = build_tracer_provider(ExportOptions(exporter="otlp", endpoint=endpoint, protocol="grpc"))
        try:
            (exporter,) = [p.counting_exporter.inner for p in export.processor._processors[provider]]
            assert exporter.fast_encoding and type(exporter).__name__ == "OtlpGrpcSpanExporter"
            lunary.configure(tracer_provider=provider)
            lunary.open_thread().track_message({"role": "user", "content": "hi"})
            assert export.flush(provider, 10)
            assert poll_until(lambda: len(service.requests) >= 1, timeout=10)
        finally:
            lunary.shutdown()
            export.shutdown(provider, 5)


# --- the session: requests' environment settings, re-read only when the environment changed ---

_PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY")
_CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


class ForwardProxy:
    """A plain HTTP forward proxy's front: records the absolute-form request lines it gets
    and answers 200 itself (as the receiver behind it would)."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        proxy = self

        class Handler(OtlpHttpHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                proxy.targets.append(self.path)  # "http://127.0.0.1:port/v1/traces" through a proxy
                self.answer(200)

        self.httpd = serve_http(Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        stop_http(self.httpd)


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy or CA-bundle variable from the machine: each test sets its own."""
    for name in _PROXY_VARIABLES + _CA_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


class TestHttpSession:
    def test_proxy_variables_changed_at_run_time_apply_from_the_next_export_as_with_the_stock_exporter(
        self, spans: list[ReadableSpan], sink: OtlpSink, no_proxy_env: pytest.MonkeyPatch
    ) -> None:
        """Each export goes where the environment says at that moment (direct, through
        HTTP_PROXY, direct again under NO_PROXY, through the proxy, direct once unset), for
        otel-lunary's exporter and for the stock one alike."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        from otel_lunary.export.http_session import EnvironmentCachingSession, environment_cacheable

        proxy = ForwardProxy()
        url = sink.endpoint + "/v1/traces"
        ours, stock = OtlpHttpSpanExporter(endpoint=url), OTLPSpanExporter(endpoint=url)
        assert type(ours._client._transport._session) is EnvironmentCachingSession
        assert environment_cacheable()  # Linux and CPython: the cache is in use here
        steps = [
            ({}, "direct"),
            ({"HTTP_PROXY": proxy.url}, "proxy"),
            ({"HTTP_PROXY": proxy.url, "NO_PROXY": "127.0.0.1"}, "direct"),
            ({"http_proxy": proxy.url}, "proxy"),
            ({}, "direct"),
        ]
        try:
            for exporter in (ours, stock):
                for variables, expected in steps:
                    for name in _PROXY_VARIABLES:
                        no_proxy_env.delenv(name, raising=False)
                    for name, value in variables.items():
                        no_proxy_env.setenv(name, value)
                    direct, proxied = len(sink.bodies), len(proxy.targets)
                    for _ in range(2):  # the second export of a step is the cached settings' one
                        assert exporter.export(spans) is SpanExportResult.SUCCESS
                    went = "direct" if len(sink.bodies) == direct + 2 else "proxy" if len(proxy.targets) == proxied + 2 else "?"
                    assert (type(exporter).__name__, variables, went) == (type(exporter).__name__, variables, expected)
                    if expected == "proxy":
                        assert proxy.targets[-1] == url  # the absolute form a forward proxy gets
        finally:
            ours.shutdown()
            stock.shutdown()
            proxy.stop()

    @pytest.mark.parametrize("url", ["http://127.0.0.1:4318/v1/traces", "https://collector.example:4318/v1/traces"])
    def test_settings_equal_requests_own_through_environment_and_session_changes(self, url: str, no_proxy_env: pytest.MonkeyPatch) -> None:
        """merge_environment_settings answers what a plain requests.Session answers, before
        and after each change (proxies, NO_PROXY, CA bundles, the session's own verify and
        proxies), asked twice per state (the second answer comes from the cache)."""
        import requests

        from otel_lunary.export.http_session import EnvironmentCachingSession

        ours, plain = EnvironmentCachingSession(), requests.Session()
        changes: list[tuple[str, Any]] = [
            ("env", {}),
            ("env", {"HTTPS_PROXY": "http://proxy.example:3128", "HTTP_PROXY": "http://proxy.example:3129"}),
            ("env", {"NO_PROXY": "collector.example,127.0.0.1"}),
            ("env", {"REQUESTS_CA_BUNDLE": "/etc/ssl/bundle.pem"}),
            ("env", {"CURL_CA_BUNDLE": "/etc/ssl/curl.pem"}),
            ("verify", "/etc/ssl/session.pem"),
            ("verify", True),
            ("proxies", {"https": "http://session-proxy.example:8080"}),
            ("proxies", {}),
            ("trust_env", False),
            ("trust_env", True),
            ("env", {"all_proxy": "socks5://proxy.example:1080"}),
            ("env", {}),
        ]
        for argument_proxies in ({}, {"http": "http://argument.example:1"}, None):
            # the same arguments all along: after each change, the first call finds the
            # previous state's answer cached and must see that the state changed
            for what, value in changes:
                if what == "env":
                    for name in _PROXY_VARIABLES + _CA_VARIABLES:
                        no_proxy_env.delenv(name, raising=False)
                    for name, setting in value.items():
                        no_proxy_env.setenv(name, setting)
                else:
                    for session in (ours, plain):
                        setattr(session, what, value)
                expected_proxies = None if argument_proxies is None else dict(argument_proxies)
                expected = plain.merge_environment_settings(url, expected_proxies, None, None, None)
                for _ in range(2):
                    given = None if argument_proxies is None else dict(argument_proxies)
                    got = ours.merge_environment_settings(url, given, None, None, None)
                    assert got == expected, (what, value)
                    assert given == expected_proxies  # the caller's dict changed as requests changes it
                    got["proxies"]["x"] = "changed by the caller"  # must not reach the cached answer
        ours.close()
        plain.close()

    def test_a_pickled_session_still_answers_as_requests_does(self, no_proxy_env: pytest.MonkeyPatch) -> None:
        """requests pickles only its own attributes: a restored session answers as the stock one."""
        import pickle

        import requests

        from otel_lunary.export.http_session import EnvironmentCachingSession

        no_proxy_env.setenv("HTTP_PROXY", "http://proxy.example:3128")
        restored = pickle.loads(pickle.dumps(EnvironmentCachingSession()))
        url = "http://127.0.0.1:4318/v1/traces"
        assert restored.merge_environment_settings(url, {}, None, None, None) == requests.Session().merge_environment_settings(url, {}, None, None, None)

    def test_a_given_session_or_credential_provider_is_used_as_is(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """session= is the stock exporter's: used as given; a credential provider variable
        makes the stock exporter load its session, so no session of ours replaces it."""
        import requests

        from otel_lunary.export.http_session import EnvironmentCachingSession

        mine = requests.Session()
        exporter = OtlpHttpSpanExporter(endpoint="http://127.0.0.1:9/v1/traces", session=mine)
        assert exporter._client._transport._session is mine
        exporter.shutdown()
        monkeypatch.setenv("OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER", "no-such-provider")
        with pytest.raises(RuntimeError, match="no-such-provider"):  # the stock loader ran
            OtlpHttpSpanExporter(endpoint="http://127.0.0.1:9/v1/traces")
        monkeypatch.delenv("OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER")
        exporter = OtlpHttpSpanExporter(endpoint="http://127.0.0.1:9/v1/traces")
        assert type(exporter._client._transport._session) is EnvironmentCachingSession
        exporter.shutdown()

    def test_a_process_forked_while_another_thread_chose_its_settings_still_exports(
        self, spans: list[ReadableSpan], sink: OtlpSink, no_proxy_env: pytest.MonkeyPatch
    ) -> None:
        """A fork (gunicorn --preload, a multiprocessing pool) copies the parent's locks as
        they are: one an export thread held at that moment would stay held in the child, and
        every export of the child would wait on it for good. The child's exporter, the
        parent's own copied over, must still deliver."""
        import os
        import signal

        from otel_lunary.export.http_session import EnvironmentCachingSession

        exporter = OtlpHttpSpanExporter(endpoint=sink.endpoint + "/v1/traces")
        holding, done = threading.Event(), threading.Event()

        def export_thread_choosing_settings() -> None:  # the parent's export, caught mid-way by the fork
            with EnvironmentCachingSession._settings_lock:
                holding.set()
                done.wait(60)

        thread = threading.Thread(target=export_thread_choosing_settings, daemon=True)
        thread.start()
        assert holding.wait(30)
        try:
            pid = os.fork()
            if pid == 0:  # the child: report by exit status, never return into pytest
                code = 1
                try:
                    code = 0 if exporter.export(spans) is SpanExportResult.SUCCESS else 2
                finally:
                    os._exit(code)
            deadline = time.monotonic() + 30
            status = None
            while status is None and time.monotonic() < deadline:
                finished, raw = os.waitpid(pid, os.WNOHANG)
                status = os.waitstatus_to_exitcode(raw) if finished else None
                time.sleep(0.05)
            if status is None:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            assert status == 0, "the forked child's export never finished (a lock held at fork)" if status is None else status
            assert len(sink.bodies) == 1
        finally:
            done.set()
            thread.join(10)
            exporter.shutdown()

    def test_a_verify_equal_to_true_without_being_true_is_answered_as_requests_does(self, no_proxy_env: pytest.MonkeyPatch) -> None:
        """requests applies REQUESTS_CA_BUNDLE only to ``verify`` None or True itself (``is
        True``), and its adapter uses the default CA store only for True itself: 1 and 1.0,
        equal to True, are not answered with True's settings."""
        import requests

        from otel_lunary.export.http_session import EnvironmentCachingSession

        no_proxy_env.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/bundle.pem")
        url = "https://collector.example:4318/v1/traces"
        ours, plain = EnvironmentCachingSession(), requests.Session()
        for verify in (True, 1, 1.0, True, None):
            for _ in range(2):
                expected = plain.merge_environment_settings(url, {}, None, verify, None)
                got = ours.merge_environment_settings(url, {}, None, verify, None)
                assert (verify, got["verify"], type(got["verify"])) == (verify, expected["verify"], type(expected["verify"]))
        no_proxy_env.delenv("REQUESTS_CA_BUNDLE")
        for session_verify in (True, 1, True):  # the session's own setting, per-call verify unset
            ours.verify = plain.verify = session_verify
            expected = plain.merge_environment_settings(url, {}, None, None, None)
            got = ours.merge_environment_settings(url, {}, None, None, None)
            assert (session_verify, got["verify"], type(got["verify"])) == (session_verify, expected["verify"], type(expected["verify"]))
        ours.close()
        plain.close()
