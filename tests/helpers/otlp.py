"""OTLP JSON the slow, generic way: the oracle the shipped encoder is held to (and measured
against in bench/encoders.py)."""

from __future__ import annotations

import base64
from typing import Any


def json_format_dict(request: Any) -> dict[str, Any]:
    """An ``ExportTraceServiceRequest`` as OTLP JSON via protobuf's ``MessageToDict``, plus
    the OTLP id rule (lowercase hex, not base64) and the status the walker always writes."""
    from google.protobuf.json_format import MessageToDict

    out = MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in out.get("resourceSpans", ()):
        for scope_spans in resource_spans.get("scopeSpans", ()):
            for span in scope_spans.get("spans", ()):
                span.setdefault("status", {})
                for holder in (span, *span.get("links", ())):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in holder:
                            holder[key] = base64.b64decode(holder[key]).hex()
    return out
