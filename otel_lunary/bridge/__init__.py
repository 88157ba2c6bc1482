"""``otel-lunary bridge``: the Lunary SDKs' ingestion endpoint, emitting OTel spans.

Point the real Lunary SDKs (Python ``lunary``, npm ``lunary`` in Node or the browser) at
the bridge (``LUNARY_API_URL`` / ``lunary.init({apiUrl})``) and their threads, messages,
custom events, feedback and LLM/agent/tool runs become the spans conventions/ defines,
exported through otel-lunary's usual path (``otel_lunary.export``: OTLP, the local file).

Usage::

    otel-lunary bridge --port 8077 --keys pk-support=support,pk-sales=sales

    from otel_lunary.bridge import Bridge, resolve_config
    with Bridge(resolve_config(keys="pk-support=support", port=0)) as bridge:
        print(bridge.url)

Configuration: ``otel_lunary.bridge.config`` (``OTEL_LUNARY_BRIDGE_*``) and the export
settings of ``otel_lunary.export`` (``OTEL_LUNARY_EXPORTER``, ``OTEL_EXPORTER_OTLP_*``,
``OTEL_SERVICE_NAME``...). See docs/bridge.md.
"""

from __future__ import annotations

import dataclasses

import threading
from types import TracebackType

from opentelemetry.sdk.trace import TracerProvider

from otel_lunary import export
from otel_lunary._settings import Settings
from otel_lunary.attributes import LUNARY_PROJECT
from otel_lunary.bridge.config import BridgeConfig, resolve_config
from otel_lunary.bridge.ingest import Ingestor, ProviderFactory
from otel_lunary.bridge.server import BridgeHTTPServer, Maintenance
from otel_lunary.bridge.store import StateStore
from otel_lunary.phoenix_feedback import sink_from_settings

__all__ = ["Bridge", "BridgeConfig", "export_provider_factory", "resolve_config"]


def export_provider_factory(options: export.ExportOptions | None = None) -> ProviderFactory:
    """One TracerProvider per project, built by ``otel_lunary.export``, with ``lunary.project`` on its resource."""

    def build(project: str) -> TracerProvider:
        base = options or export.ExportOptions()
        extra = {**(base.resource_attributes or {}), LUNARY_PROJECT: project}
        return export.build_tracer_provider(dataclasses.replace(base, resource_attributes=extra))

    return build


class Bridge:
    """The server, its state store and its maintenance thread; ``start()``/``close()``."""

    def __init__(
        self,
        config: BridgeConfig,
        provider_factory: ProviderFactory | None = None,
        *,
        settings: Settings | None = None,
        phoenix_annotations: str | bool | None = None,
    ) -> None:
        self.config = config
        self._owns_providers = provider_factory is None
        self.store = StateStore(config.state_path, ttl_s=config.state_ttl_s, max_rows=config.state_max_rows)
        # Feedback mirrored as Phoenix annotations, as the SDK's configure() does (explicit > env > off).
        self.annotations = sink_from_settings(phoenix_annotations)
        self.ingestor = Ingestor(
            self.store, provider_factory or export_provider_factory(), settings=settings, run_timeout_s=config.run_timeout_s, annotations=self.annotations
        )
        self.server = BridgeHTTPServer(config, self.ingestor)
        self.maintenance = Maintenance(self.ingestor, max(0.05, min(30.0, config.run_timeout_s / 4)))
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> Bridge:
        """Serve in a background thread (and run maintenance); returns at once."""
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.1,), name="otel-lunary-bridge", daemon=True)
        self._thread.start()
        self.maintenance.start()
        return self

    def serve_forever(self) -> None:
        self.maintenance.start()
        self.server.serve_forever()

    def flush(self, timeout_s: float = 5.0) -> bool:
        ok = True
        for project in list(self.ingestor.projects.values()):
            ok = export.flush(project.runtime.provider, timeout_s) and ok  # type: ignore[arg-type]
        if self.annotations is not None:
            ok = self.annotations.flush(timeout_s) and ok
        return ok

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop serving, then flush (and shut down the providers the bridge built). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.maintenance.stopped.set()
        if self._thread is not None:
            self.server.shutdown()
        self.server.server_close()
        for project in list(self.ingestor.projects.values()):
            provider = project.runtime.provider
            if self._owns_providers:
                export.shutdown(provider, timeout_s)  # type: ignore[arg-type]
            else:
                export.flush(provider, timeout_s)  # type: ignore[arg-type]
        if self.annotations is not None:
            self.annotations.shutdown(timeout_s)
        self.store.close()

    def __enter__(self) -> Bridge:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
