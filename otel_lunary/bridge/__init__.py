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

Needs the ``bridge`` extra (``pip install 'otel-lunary[bridge]'``: uvicorn, Starlette).

Configuration: ``otel_lunary.bridge.config`` (``OTEL_LUNARY_BRIDGE_*``) and the export
settings of ``otel_lunary.export`` (``OTEL_LUNARY_EXPORTER``, ``OTEL_EXPORTER_OTLP_*``,
``OTEL_SERVICE_NAME``...). See docs/bridge.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from otel_lunary.bridge.config import BridgeConfig, resolve_config

if TYPE_CHECKING:
    from otel_lunary.bridge.service import Bridge
    from otel_lunary.bridge.store import StoreUnusable

__all__ = ["Bridge", "BridgeConfig", "StoreUnusable", "resolve_config"]

# Imported on first use: the server needs the ``bridge`` extra, and ``otel-lunary bridge``
# (otel_lunary.bridge.command, inside this package) must be able to say so itself.
_LAZY = {"Bridge": "otel_lunary.bridge.service", "StoreUnusable": "otel_lunary.bridge.store"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
