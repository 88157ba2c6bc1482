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
- ``OTEL_LUNARY_DIALECTS``: extra attributes for ``openinference`` and/or ``langfuse``.
- ``OTEL_LUNARY_TURN_TIMEOUT``: seconds a turn waits for its reply before it ends
  unanswered (300; ``configure(turn_timeout=...)``).
- ``OTEL_LUNARY_PHOENIX_ANNOTATIONS``: Phoenix's URL, to mirror feedback as annotations
  there (``configure(phoenix_annotations=...)``, docs/export.md).
- ``OTEL_LUNARY_EXPORTER``, ``OTEL_LUNARY_FILE_PATH`` and the standard ``OTEL_EXPORTER_OTLP_*``,
  ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_BSP_*``: where spans go when
  otel-lunary sets up the TracerProvider itself (see docs/export.md).
"""

from __future__ import annotations

from otel_lunary import _health
from otel_lunary._state import configure, flush, shutdown
from otel_lunary._version import __version__ as __version__
from otel_lunary.agents import agent, chain, tool, wrap_agent, wrap_tool
from otel_lunary.context import identify, parent, tags
from otel_lunary.feedback import track_feedback
from otel_lunary.monitor import monitor
from otel_lunary.thread import Thread, open_thread


def stats() -> dict[str, int]:
    """What tracking calls dropped or altered so far, by kind (never raises).

    ``invalid_arguments``, ``internal_errors``, ``unknown_parent``, ``feedback_unlinked``,
    ``content_truncated``, ``redaction_failures`` and ``spans_dropped`` (queue overflow).
    """
    counts = _health.counts()
    counts["spans_dropped"] = _health.drops.total()
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
