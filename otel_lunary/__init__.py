"""Lunary-style chat tracking recorded as OpenTelemetry spans.

Usage::

    import otel_lunary as lunary

    thread = lunary.open_thread(tags=["support"])
    msg_id = thread.track_message({"role": "user", "content": "Hello!"})
    client = lunary.monitor(openai.OpenAI())
    reply = client.chat.completions.create(model="gpt-4o", messages=[...], parent=msg_id)
    thread.track_message({"role": "assistant", "content": reply.choices[0].message.content})
    lunary.track_feedback(msg_id, {"thumb": "up"})

Configuration (explicit ``configure(...)`` argument > environment > default):

- ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``: record message text
  (default true, see conventions/README.md); ``false``/``NO_CONTENT`` keeps it in-process.
- ``OTEL_LUNARY_MAX_CONTENT_LENGTH``: longest text kept per piece of content (32768).
- ``OTEL_LUNARY_MAX_NAME_LENGTH`` (256), ``OTEL_LUNARY_MAX_TAGS`` (64),
  ``OTEL_LUNARY_MAX_METADATA_LENGTH`` (8192): bounds on names and ids, tags, and metadata
  or user props JSON (see docs/security.md).
- ``OTEL_LUNARY_DIALECTS``: extra attributes for ``openinference`` and/or ``langfuse``.
- ``OTEL_LUNARY_MONITOR_SPANS``: ``auto`` (default: ``monitor`` records no LLM span when
  another instrumentation records the call), ``always``, ``never``.
- ``OTEL_LUNARY_TURN_PARENT``: ``new_trace`` (default: each turn is its own trace, linked to
  the request span) or ``current_span`` (each turn nests under the request span).
- ``OTEL_LUNARY_TURN_TIMEOUT``: seconds a turn waits for its reply before it ends
  unanswered (300; ``configure(turn_timeout=...)``).
- ``OTEL_LUNARY_PHOENIX_ANNOTATIONS``: Phoenix's URL, to mirror feedback as annotations
  there (``configure(phoenix_annotations=...)``, docs/export.md).
- ``OTEL_LUNARY_EXPORTER``, ``OTEL_LUNARY_FILE_PATH`` and the standard ``OTEL_EXPORTER_OTLP_*``,
  ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_BSP_*``: where spans go when
  otel-lunary sets up the TracerProvider itself (see docs/export.md).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from otel_lunary._version import __version__ as __version__

if TYPE_CHECKING:
    from otel_lunary._state import configure, flush, shutdown
    from otel_lunary.agents import agent, chain, tool, wrap_agent, wrap_tool
    from otel_lunary.context import identify, parent, tags
    from otel_lunary.feedback import track_feedback
    from otel_lunary.monitor import monitor
    from otel_lunary.thread import Thread, open_thread

# The public API is imported on first use (PEP 562), so that ``import otel_lunary`` and
# the ``otel-lunary`` command (``--help``, ``replay``) do not load the OTel SDK and the
# recording layer before something needs them (bench/startup.py, docs/performance.md).
_API = {
    "configure": "otel_lunary._state",
    "flush": "otel_lunary._state",
    "shutdown": "otel_lunary._state",
    "agent": "otel_lunary.agents",
    "chain": "otel_lunary.agents",
    "tool": "otel_lunary.agents",
    "wrap_agent": "otel_lunary.agents",
    "wrap_tool": "otel_lunary.agents",
    "identify": "otel_lunary.context",
    "parent": "otel_lunary.context",
    "tags": "otel_lunary.context",
    "track_feedback": "otel_lunary.feedback",
    "monitor": "otel_lunary.monitor",
    "Thread": "otel_lunary.thread",
    "open_thread": "otel_lunary.thread",
}


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:  # a submodule, as ``import otel_lunary`` used to load them all
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as missing:
            if missing.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))


class _Package(types.ModuleType):
    """``otel_lunary.monitor`` is the function, as it always was, even once the submodule of
    the same name is imported (which would otherwise set the package attribute to it)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _API and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def stats() -> dict[str, Any]:
    """What tracking calls dropped or altered so far, by kind (never raises).

    ``invalid_arguments``, ``internal_errors``, ``unknown_parent``, ``feedback_unlinked``,
    ``content_truncated``, ``values_truncated`` (a name, id, tag list or metadata over its
    limit), ``redaction_failures``; ``spans_dropped``: spans lost by
    otel-lunary's own provider (queue full, failed export, shutdown deadline), or None when
    otel-lunary records into the application's provider, whose losses it cannot see;
    ``spans_dropped_scope``: ``otel_lunary`` or ``application``, which of the two.
    """
    from otel_lunary import _health, _state

    counts: dict[str, Any] = dict(_health.counts())
    scope = _state.drop_scope()
    counts["spans_dropped"] = None if scope == "application" else _health.drops.total()
    counts["spans_dropped_scope"] = scope
    return counts


def config(**lunary_cloud_settings: object) -> None:
    """Lunary's ``config(app_id=..., api_url=...)``: accepted so Lunary code runs unchanged.

    Those settings address Lunary's cloud; spans go where ``configure()`` and the
    ``OTEL_*`` variables say, so this does nothing.
    """


__all__ = [
    "Thread",
    "agent",
    "chain",
    "config",
    "configure",
    "flush",
    "identify",
    "monitor",
    "open_thread",
    "parent",
    "shutdown",
    "stats",
    "tags",
    "tool",
    "track_feedback",
    "wrap_agent",
    "wrap_tool",
]
