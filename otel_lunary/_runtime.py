"""The one piece of process state: which tracer and settings tracking calls use.

otel-lunary fits into an existing OTel setup: it uses the application's TracerProvider
when there is one (including the one ``opentelemetry-instrument`` installs) and sets one
up only when ``configure()`` is asked to or when none exists at the first tracking call.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Tracer, TracerProvider

from otel_lunary import _index, export
from otel_lunary._content import ContentPolicy
from otel_lunary._conversation import ConversationStamper
from otel_lunary._settings import Redactor, Settings, resolve_settings

INSTRUMENTATION_NAME = "otel_lunary"
VERSION = "0.1.0"


@dataclass(frozen=True)
class Runtime:
    provider: TracerProvider
    tracer: Tracer
    settings: Settings
    policy: ContentPolicy
    owns_provider: bool


# Re-entrant: get() holds it while configure() (which takes it too) sets up the first
# runtime, so two threads' first tracking calls cannot build two providers.
_lock = threading.RLock()
_current: Runtime | None = None
_stampers: weakref.WeakKeyDictionary[Any, ConversationStamper] = weakref.WeakKeyDictionary()


def _install_stamper(provider: TracerProvider, dialects: frozenset[str]) -> None:
    add = getattr(provider, "add_span_processor", None)
    if add is None:
        return  # not the SDK's provider: foreign spans go without the conversation id
    stamper = _stampers.get(provider)
    if stamper is None:
        stamper = ConversationStamper(dialects)
        _stampers[provider] = stamper
        add(stamper)
    stamper.dialects = dialects


def _build(provider: TracerProvider, owns: bool, settings: Settings) -> Runtime:
    _install_stamper(provider, settings.dialects)
    tracer = provider.get_tracer(INSTRUMENTATION_NAME, VERSION)
    return Runtime(provider, tracer, settings, ContentPolicy(settings), owns)


def _global_sdk_provider() -> TracerProvider | None:
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider) or isinstance(provider, trace.NoOpTracerProvider):
        return None
    return provider


def configure(
    *,
    tracer_provider: TracerProvider | None = None,
    exporter: str | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: dict[str, str] | None = None,
    file_path: str | None = None,
    service_name: str | None = None,
    capture_content: bool | None = None,
    redact: Redactor | None = None,
    max_content_length: int | None = None,
    dialects: str | Iterable[str] | None = None,
) -> TracerProvider:
    """Set up tracking; every argument left out resolves from ``OTEL_*`` env, then defaults.

    With ``tracer_provider`` given, spans go there. Otherwise the application's global
    provider is used if it has one and no export option is passed; else otel-lunary builds
    one (OTLP or the local file, see ``otel_lunary.export``) and installs it as the global
    provider when none was set. Raises ``ValueError`` on a wrong argument.
    """
    global _current
    settings = resolve_settings(
        capture_content=capture_content, redact=redact, max_content_length=max_content_length, dialects=dialects
    )
    options = export.ExportOptions(
        exporter=exporter, endpoint=endpoint, protocol=protocol, headers=headers, file_path=file_path, service_name=service_name
    )
    wants_export = options != export.ExportOptions()  # any export option given
    with _lock:
        if tracer_provider is not None:
            runtime = _build(tracer_provider, False, settings)
        elif not wants_export and (existing := _global_sdk_provider()) is not None:
            runtime = _build(existing, False, settings)
        else:
            provider = export.build_tracer_provider(options)
            if _global_sdk_provider() is None:
                trace.set_tracer_provider(provider)
            runtime = _build(provider, True, settings)
        _current = runtime
    return runtime.provider


def get() -> Runtime:
    """The runtime, set up from the environment at the first tracking call if needed."""
    runtime = _current
    if runtime is not None:
        return runtime
    with _lock:
        if _current is None:
            configure()
        return _current  # type: ignore[return-value]  # configure() always sets it


def flush(timeout: float = 5.0) -> bool:
    """Export what is queued, giving up after ``timeout`` seconds."""
    runtime = _current
    if runtime is None:
        return True
    if hasattr(runtime.provider, "force_flush"):
        return export.flush(runtime.provider, timeout)  # type: ignore[arg-type]
    return True


def shutdown(timeout: float = 5.0) -> None:
    """Flush and stop. A provider the application owns is flushed, not shut down."""
    global _current
    runtime = _current
    if runtime is None:
        return
    if runtime.owns_provider:
        export.shutdown(runtime.provider, timeout)  # type: ignore[arg-type]
    else:
        flush(timeout)
    with _lock:
        _current = None
    _index.messages.clear()
    _index.turns.clear()
