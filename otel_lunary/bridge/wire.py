"""Reading one Lunary ingest event as either SDK sends it, or saying why it cannot be read.

Python (lunary 1.4.x) sends all 22 keys with nulls and ISO 8601 timestamps; JS (lunary
1.0.x, Node and browser) sends only the keys it set and epoch milliseconds. Both are
accepted; see docs/lunary-wire-protocol.md. A problem with one event is an
``EventError`` with a message for the ``results`` entry; the rest of the batch goes on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from otel_lunary._record import normalise_role

THREAD_KINDS = frozenset({"chat", "custom-event"})
RUN_KINDS = frozenset({"start", "end", "error"})
KINDS = THREAD_KINDS | RUN_KINDS | {"feedback"}
RUN_TYPES = frozenset({"llm", "agent", "tool", "chain"})
MAX_ID_LENGTH = 512


class EventError(ValueError):
    """This event cannot be turned into spans; the message goes back to the client."""


@dataclass(frozen=True)
class Event:
    kind: str
    type: str | None
    run_id: str
    parent_run_id: str | None
    timestamp_ns: int
    raw: Mapping[str, Any]

    def get(self, key: str) -> Any:
        return self.raw.get(key)


def _identifier(raw: Mapping[str, Any], key: str, required: bool) -> str | None:
    value = raw.get(key)
    if value is None:
        if required:
            raise EventError(f"{key} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise EventError(f"{key} must be a string, got {type(value).__name__}")
    text = str(value)
    if not text or len(text) > MAX_ID_LENGTH:
        raise EventError(f"{key} must be 1 to {MAX_ID_LENGTH} characters")
    return text


def timestamp_ns(value: Any) -> int:
    """ISO 8601 (Python SDK) or epoch milliseconds (JS SDK); None means now."""
    if value is None:
        return time.time_ns()
    if isinstance(value, bool):
        raise EventError("timestamp must be an ISO 8601 string or epoch milliseconds, got a boolean")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0 or value > 1e14:
            raise EventError(f"timestamp {value!r} is not epoch milliseconds")
        return int(value * 1_000_000)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise EventError(f"timestamp {value[:64]!r} is not ISO 8601") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
        return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    raise EventError(f"timestamp must be an ISO 8601 string or epoch milliseconds, got {type(value).__name__}")


def parse_event(raw: Any) -> Event:
    """Validate the envelope and what each kind needs; raises ``EventError``."""
    if not isinstance(raw, Mapping):
        raise EventError(f"each event must be an object, got {type(raw).__name__}")
    kind = raw.get("event")
    if not isinstance(kind, str):
        raise EventError("event (the event kind) is required and must be a string")
    if kind not in KINDS:
        raise EventError(f"unsupported event kind {kind[:64]!r} (supported: {', '.join(sorted(KINDS))})")
    run_type = raw.get("type")
    if run_type is not None and not isinstance(run_type, str):
        raise EventError(f"type must be a string, got {type(run_type).__name__}")
    run_id = _identifier(raw, "runId", True)
    parent = _identifier(raw, "parentRunId", kind in THREAD_KINDS)
    stamp = timestamp_ns(raw.get("timestamp"))
    if kind == "chat":
        message = raw.get("message")
        if not isinstance(message, Mapping):
            raise EventError("a chat event needs message, an object with role and content")
        if normalise_role(message.get("role")) is None:
            raise EventError(f"message.role must be user, assistant, system or tool, got {message.get('role')!r:.64}")
    elif kind == "custom-event":
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise EventError("a custom-event needs name, a non-empty string")
    elif kind == "feedback":
        if not isinstance(raw.get("feedback"), Mapping):
            raise EventError("a feedback event needs feedback, an object such as {\"thumb\": \"up\"}")
    elif run_type not in RUN_TYPES:
        raise EventError(f"unsupported run type {run_type!r:.64} for {kind} (supported: {', '.join(sorted(RUN_TYPES))})")
    inline = raw.get("feedback")
    if kind == "chat" and inline is not None and not isinstance(inline, Mapping):
        raise EventError("feedback must be an object")
    return Event(kind, run_type, run_id or "", parent, stamp, raw)
