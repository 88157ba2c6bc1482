"""Reading one Lunary ingest event as either SDK sends it, or saying why it cannot be read.

Python (lunary 1.4.x) sends all 22 keys with nulls and ISO 8601 timestamps; JS (lunary
1.0.x, Node and browser) sends only the keys it set and epoch milliseconds. Both are
accepted; see docs/lunary-wire-protocol.md. A problem with one event is an
``EventError`` with a message for the ``results`` entry; the rest of the batch goes on.
"""

from __future__ import annotations

import json
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
# OTLP carries times as nanoseconds since the Unix epoch, unsigned; Go, Jaeger and most
# stores read them as signed 64-bit. One span outside that range fails the encoding of
# the whole export batch it sits in, so such a time is refused at the door.
MAX_TIME_NS = 2**63 - 1
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# Objects and lists nested deeper than this inside one event are refused: no SDK sends
# them, and as JSON attribute values they would crash the readers (replay, collectors'
# JSON parsers) that recurse into them.
MAX_DEPTH = 64
# Request parameters the span carries as integer attributes (OTLP int64).
_INTEGER_PARAMS = ("max_tokens", "max_completion_tokens")


class BodyError(ValueError):
    """The request body as a whole cannot be read; the message goes back with a 400."""


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


def _int_or_float(text: str) -> int | float:
    """A JSON integer; past 64 bits it is read as the double a JS client meant (OTLP has no bigger int)."""
    value = int(text)
    return value if _INT64_MIN <= value <= _INT64_MAX else float(value)


def parse_body(data: bytes) -> list[Any]:
    """The ``events`` of an ingest body; raises ``BodyError`` with the reason for a 400."""
    try:
        parsed = json.loads(data, parse_int=_int_or_float)
    except RecursionError:
        raise BodyError("body is nested too deeply to read") from None
    except (UnicodeDecodeError, ValueError) as problem:
        raise BodyError(f"body is not JSON: {str(problem)[:200]}") from None
    events = parsed.get("events") if isinstance(parsed, dict) else None
    if not isinstance(events, list):
        raise BodyError('body must be an object {"events": [...]}')
    return events


def _in_time_range(nanoseconds: int, shown: str) -> int:
    if nanoseconds < 0:
        raise EventError(f"timestamp {shown} is before 1970-01-01, which OTLP cannot carry")
    if nanoseconds > MAX_TIME_NS:
        raise EventError(f"timestamp {shown} is after 2262-04-11, outside the range OTLP backends read")
    return nanoseconds


def timestamp_ns(value: Any) -> int:
    """ISO 8601 (Python SDK) or epoch milliseconds (JS SDK); None means now."""
    if value is None:
        return time.time_ns()
    if isinstance(value, bool):
        raise EventError("timestamp must be an ISO 8601 string or epoch milliseconds, got a boolean")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise EventError(f"timestamp {value!r} is not epoch milliseconds")
        return _in_time_range(int(value * 1_000_000), repr(value))
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise EventError(f"timestamp {value[:64]!r} is not ISO 8601") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
        return _in_time_range((delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000, repr(value[:64]))
    raise EventError(f"timestamp must be an ISO 8601 string or epoch milliseconds, got {type(value).__name__}")


def _check_integer_params(params: Any) -> None:
    if not isinstance(params, Mapping):
        return
    for key in _INTEGER_PARAMS:
        value = params.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not (math.isfinite(value) and _INT64_MIN <= value <= _INT64_MAX):
                raise EventError(f"params.{key} {value!r:.64} is outside the 64-bit integer range OTLP carries")


def _too_deep(value: Any, room: int) -> bool:
    """True if ``value`` nests more than ``room`` more levels (stops as soon as it does, so
    the recursion never goes past ``MAX_DEPTH``)."""
    if room <= 0:
        return True
    for child in value.values() if type(value) is dict else value:
        if (type(child) is dict or type(child) is list) and _too_deep(child, room - 1):
            return True
    return False


def _check_depth(raw: Mapping[str, Any]) -> None:
    if _too_deep(raw, MAX_DEPTH):
        raise EventError(f"the event nests objects or lists deeper than {MAX_DEPTH} levels")


def parse_event(raw: Any) -> Event:
    """Validate the envelope and what each kind needs; raises ``EventError``."""
    if not isinstance(raw, Mapping):
        raise EventError(f"each event must be an object, got {type(raw).__name__}")
    _check_depth(raw)
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
    else:
        _check_integer_params(raw.get("params"))
    inline = raw.get("feedback")
    if kind == "chat" and inline is not None and not isinstance(inline, Mapping):
        raise EventError("feedback must be an object")
    return Event(kind, run_type, run_id or "", parent, stamp, raw)
