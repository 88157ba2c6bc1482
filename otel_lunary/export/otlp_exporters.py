"""The SDK's OTLP span exporters with otel-lunary's encoder (``otlp_proto``) in place of theirs.

Only the body encoding changes. Everything else is the stock exporter's own code, run
unchanged: endpoint, headers, TLS, compression, timeouts, retries with backoff, the
request size limit, its logging and metrics, what ``export`` returns. (The HTTP
exporter's ``requests`` session, when it makes its own, is a ``requests.Session`` that
skips re-reading an unchanged environment per request: ``http_session``.)

- HTTP: the stock ``OTLPSpanExporter.export`` encodes with the name ``encode_spans``
  looked up in its module. ``OtlpHttpSpanExporter.export`` is that same function (same
  code object) bound to a copy of the module's globals in which ``encode_spans`` returns
  the pre-encoded body: no line of the exporter is copied here.
- gRPC: the stock exporter asks ``_translate_data`` for the request and passes it to a
  stub whose serializer is ``ExportTraceServiceRequest.SerializeToString``.
  ``OtlpGrpcSpanExporter`` returns the encoded bytes from ``_translate_data`` and gives
  the channel a stub that sends them as they are; reconnects build the same stub.

If an exporter version does not have those seams, the class logs one debug line and
behaves exactly as the stock exporter (stock encoding too); ``fast_encoding`` says which.
"""

from __future__ import annotations

import logging
import os
import types
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http import trace_exporter as _http_trace_exporter
from opentelemetry.sdk import environment_variables
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_lunary.export.otlp_proto import encode_request

__all__ = ["OtlpHttpSpanExporter", "grpc_span_exporter"]

_logger = logging.getLogger("otel_lunary.export")
_EXPORT_PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class EncodedRequest:
    """A serialised ``ExportTraceServiceRequest`` answering the calls exporters make on one."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def SerializeToString(self, **_: Any) -> bytes:  # noqa: N802 - protobuf's name
        return self.data

    SerializePartialToString = SerializeToString

    def ByteSize(self) -> int:  # noqa: N802 - protobuf's name
        return len(self.data)


def encode_spans(spans: Sequence[ReadableSpan]) -> EncodedRequest:
    """Drop-in for the SDK's ``encode_spans`` as its exporters use it."""
    return EncodedRequest(encode_request(spans))


def _rebound_http_export() -> Callable[..., SpanExportResult] | None:
    stock = _http_trace_exporter.OTLPSpanExporter.export
    code = getattr(stock, "__code__", None)
    if code is None or "encode_spans" not in code.co_names or "encode_spans" not in stock.__globals__:
        return None
    namespace = dict(stock.__globals__)
    namespace["encode_spans"] = encode_spans
    export = types.FunctionType(code, namespace, stock.__name__, stock.__defaults__, stock.__closure__)
    export.__kwdefaults__ = stock.__kwdefaults__
    export.__doc__ = stock.__doc__
    return export


_http_export = _rebound_http_export()
if _http_export is None:  # pragma: no cover - another exporter version
    _logger.debug("otel-lunary: this OTLP/HTTP exporter version has no encode_spans seam; stock encoding")


# The variables naming a credential provider, whose session the stock exporter loads
# (then it is that session, not ours).
_CREDENTIAL_PROVIDER_VARIABLES = tuple(
    getattr(environment_variables, name)
    for name in ("_OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER", "_OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER")
    if hasattr(environment_variables, name)
)
_SESSION_POSITION = 7  # ``session`` among the stock constructor's positional parameters


class OtlpHttpSpanExporter(_http_trace_exporter.OTLPSpanExporter):
    """The SDK's OTLP/HTTP span exporter, encoding with ``otlp_proto``, posting through an
    ``EnvironmentCachingSession`` (``otel_lunary.export.http_session``) unless given a
    session or a transport, or told to load one from a credential provider."""

    fast_encoding = _http_export is not None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if (
            kwargs.get("session") is None
            and len(args) <= _SESSION_POSITION
            and "_transport" not in kwargs
            and not any(os.environ.get(name) for name in _CREDENTIAL_PROVIDER_VARIABLES)
        ):
            from otel_lunary.export.http_session import EnvironmentCachingSession

            kwargs["session"] = EnvironmentCachingSession()
        super().__init__(*args, **kwargs)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if _http_export is None:  # pragma: no cover
            return super().export(spans)
        return _http_export(self, spans)


def grpc_span_exporter(**options: Any) -> Any:
    """The SDK's OTLP/gRPC span exporter (``options`` are its own), encoding with ``otlp_proto``.

    A function, so that ``grpc`` is imported only when gRPC is chosen.
    """
    return _grpc_class()(**options)


_grpc_exporter_class: type | None = None


def _grpc_class() -> type:
    global _grpc_exporter_class
    if _grpc_exporter_class is None:
        _grpc_exporter_class = _make_grpc_class()
    return _grpc_exporter_class


def _make_grpc_class() -> type:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as StockGrpcExporter
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    class EncodedTraceServiceStub:
        """``TraceServiceStub`` sending requests already serialised by ``_translate_data``."""

        def __init__(self, channel: Any) -> None:
            self.Export = channel.unary_unary(
                _EXPORT_PATH, request_serializer=_request_bytes, response_deserializer=ExportTraceServiceResponse.FromString
            )

    class OtlpGrpcSpanExporter(StockGrpcExporter):
        """The SDK's OTLP/gRPC span exporter, encoding with ``otlp_proto``."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.fast_encoding = hasattr(self, "_stub") and hasattr(self, "_channel") and hasattr(self, "_client")
            if self.fast_encoding:
                self._stub = EncodedTraceServiceStub
                self._client = self._stub(self._channel)
            else:  # pragma: no cover - another exporter version
                _logger.debug("otel-lunary: this OTLP/gRPC exporter version has no stub seam; stock encoding")

        def _translate_data(self, data: Sequence[ReadableSpan]) -> Any:
            if self.fast_encoding:
                return EncodedRequest(encode_request(data))
            return super()._translate_data(data)  # pragma: no cover

    return OtlpGrpcSpanExporter


def _request_bytes(request: Any) -> bytes:
    if isinstance(request, EncodedRequest):
        return request.data
    data: bytes = request.SerializeToString()
    return data
