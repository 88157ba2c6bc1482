"""The bridge assembled: HTTP server, state store, outbox delivery, maintenance (``Bridge``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otel_lunary import export
from otel_lunary._settings import Settings
from otel_lunary._state import INSTRUMENTATION_NAME
from otel_lunary._version import __version__
from otel_lunary.attributes import LUNARY_PROJECT
from otel_lunary.bridge.config import BridgeConfig
from otel_lunary.bridge.ingest import Ingestor
from otel_lunary.bridge.outbox import Delivery, OutboxWriter
from otel_lunary.bridge.server import BridgeApp, HttpServer, Ingestion, Maintenance
from otel_lunary.bridge.store import StateStore
from otel_lunary.phoenix_feedback import sink_from_settings

def project_resource(options: export.ExportOptions, project: str) -> Resource:
    """The resource of one project's spans: the export settings' (``OTEL_SERVICE_NAME``,
    ``OTEL_RESOURCE_ATTRIBUTES``...) plus ``lunary.project``."""
    attributes: dict[str, Any] = dict(options.resource_attributes or {})
    if options.service_name:
        attributes[SERVICE_NAME] = options.service_name
    attributes[LUNARY_PROJECT] = project
    return Resource.create(attributes)


class Bridge:
    """The HTTP server, the state store, the outbox delivery and the maintenance thread.

    ``exporters`` receive the spans (default: what ``export_options`` and the ``OTEL_*``
    environment choose, as ``otel_lunary.export`` does); pass an in-memory exporter to
    assert on what the bridge records. The bridge owns them and shuts them down on close.
    """

    def __init__(
        self,
        config: BridgeConfig,
        exporters: Sequence[SpanExporter] | None = None,
        *,
        settings: Settings | None = None,
        export_options: export.ExportOptions | None = None,
        phoenix_annotations: str | bool | None = None,
    ) -> None:
        self.config = config
        self.export_options = export_options or export.ExportOptions()
        chosen = list(exporters) if exporters is not None else export.build_exporters(self.export_options)  # raises before anything starts
        self.store = StateStore(config.state_path, ttl_s=config.state_ttl_s, max_rows=config.state_max_rows, busy_timeout_s=config.state_busy_timeout_s)
        self.delivery: Delivery | None = None
        if chosen:
            self.delivery = Delivery(
                config.state_path,
                chosen,
                self.project_resource,
                InstrumentationScope(INSTRUMENTATION_NAME, __version__),
                busy_timeout_s=config.state_busy_timeout_s,
            )
            self.store.on_commit.append(self.delivery.wake)
        # Feedback mirrored as Phoenix annotations, as the SDK's configure() does (explicit > env > off).
        self.annotations = sink_from_settings(phoenix_annotations)
        self.ingestor = Ingestor(
            self.store, self._recording_provider, settings=settings, run_timeout_s=config.run_timeout_s, annotations=self.annotations
        )
        self.ingestion = Ingestion(config, self.ingestor, self.delivery.backlog if self.delivery else None)
        try:
            self.server = HttpServer(config, BridgeApp(config, self.ingestion, self.health))
        except OSError:
            self.store.close()
            raise
        interval = min(config.run_timeout_s, self.ingestor.settings.turn_timeout) / 4
        self.maintenance = Maintenance(self.ingestor, max(0.05, min(30.0, interval)), self.ingestion)
        self._started = self._closed = False
        self._close_lock = threading.Lock()

    def project_resource(self, project: str) -> Resource:
        return project_resource(self.export_options, project)

    def _recording_provider(self, project: str) -> TracerProvider:
        """Spans of ``project`` go to the outbox, in the request's transaction (none without exporters)."""
        provider = TracerProvider(resource=self.project_resource(project), shutdown_on_exit=False)
        if self.delivery is not None:
            provider.add_span_processor(OutboxWriter(self.store, project))
        return provider

    @property
    def url(self) -> str:
        return self.server.url

    def health(self) -> dict[str, Any]:
        """``/healthz``: ok unless the state file failed the last time it was used."""
        report: dict[str, Any] = {"ok": self.ingestion.store_error is None, **self.ingestor.counts}
        if self.ingestion.store_error is not None:
            report["error"] = self.ingestion.store_error
        if self.delivery is not None:
            report.update(self.delivery.counts)
            try:
                report["pending"] = self.delivery.backlog()
            except Exception as problem:  # noqa: BLE001 - health must answer
                report.update(ok=False, error=f"the state file failed: {problem}")
            if self.delivery.last_error is not None:
                report["export_error"] = self.delivery.last_error
        return report

    def start(self) -> Bridge:
        """Serve in background threads (HTTP, delivery, maintenance); returns once listening."""
        if self._started:
            return self
        self._started = True
        if self.delivery is not None:
            self.delivery.start()
        self.maintenance.start()
        self.server.start()
        return self

    def serve_forever(self) -> None:
        """``start()``, then block until the server stops (``close()`` from a signal handler)."""
        self.start()
        while self.server.running() and not self._closed:
            time.sleep(0.2)

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until the outbox is empty (everything exported), then until the Phoenix
        annotations landed; False if they have not by then."""
        deadline = time.monotonic() + timeout_s
        while self.delivery is not None:
            self.delivery.wake()
            if self.delivery.backlog() == 0:
                break
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        if self.annotations is not None:
            return self.annotations.flush(max(0.0, deadline - time.monotonic()))
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop serving (requests under way finish), deliver for up to ``timeout_s``, close.

        What is not delivered by then stays in the state file and goes out at the next start.
        Idempotent.
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self.server.stop()
        self.maintenance.stopped.set()
        if self.maintenance.is_alive():
            self.maintenance.join(timeout_s)
        if self.delivery is not None:
            self.delivery.stop(timeout_s)
        if self.annotations is not None:
            self.annotations.shutdown(timeout_s)
        self.store.close()

    def __enter__(self) -> Bridge:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
