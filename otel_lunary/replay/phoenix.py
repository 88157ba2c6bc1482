"""Reading conversations from Phoenix's span API (``GET /v1/projects/{project}/spans``).

Phoenix answers in its own shape, not OTLP: ``context.trace_id``/``span_id`` in hex,
``parent_id``, ISO timestamps, ``status_code`` as a word, and attributes flattened to
dotted keys with list items as ``key.0``, ``key.1``. This module maps that back to
``SpanRecord``. For a named conversation it finds the traces holding the conversation
id, then reads those traces whole, so spans that lack the id (feedback from another
process, a third-party LLM span) come along. ``PHOENIX_API_KEY``, when set, is sent as a
bearer token, for a Phoenix with authentication on.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from otel_lunary._phoenix_api import auth_headers
from otel_lunary.attributes import GEN_AI_CONVERSATION_ID
from otel_lunary.replay._http import SourceError, get, timeout_s
from otel_lunary.replay.decode import decode_id
from otel_lunary.replay.records import STATUS_ERROR, STATUS_OK, STATUS_UNSET, EventRecord, Problem, SpanAttributes, SpanRecord


@dataclass(frozen=True)
class PhoenixSource:
    """A Phoenix server and project, read through ``GET /v1/projects/{project}/spans``."""

    url: str
    project: str = "default"

PAGE_SIZE = 1000
TRACES_PER_QUERY = 50
_INDEXED = re.compile(r"^(.*)\.(\d+)$")
_STATUS = {"OK": STATUS_OK, "ERROR": STATUS_ERROR, "UNSET": STATUS_UNSET}


def _nanos(value: Any) -> int:
    if isinstance(value, (int, float)):
        return int(value)
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (int(moment.timestamp()) * 1_000_000 + moment.microsecond) * 1000


def unflatten_lists(attributes: dict[str, Any]) -> dict[str, Any]:
    """Phoenix's ``key.0``, ``key.1`` back into ``key: [..]``."""
    result: dict[str, Any] = {}
    lists: dict[str, dict[int, Any]] = {}
    for key, value in attributes.items():
        match = _INDEXED.match(key)
        if match:
            lists.setdefault(match.group(1), {})[int(match.group(2))] = value
        else:
            result[key] = value
    for key, items in lists.items():
        result.setdefault(key, [items[i] for i in sorted(items)])
    return result


def phoenix_span(span: dict[str, Any]) -> SpanRecord:
    """One Phoenix span as a ``SpanRecord``; raises ``ValueError`` when ids or times are missing."""
    context = span.get("context") or {}
    trace_id, span_id = decode_id(context.get("trace_id"), 16), decode_id(context.get("span_id"), 8)
    if trace_id is None or span_id is None:
        raise ValueError(f"span {span.get('name')!r} has no valid trace or span id")
    start = _nanos(span["start_time"])
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=decode_id(span.get("parent_id"), 8),
        name=str(span.get("name") or ""),
        start_ns=start,
        end_ns=_nanos(span.get("end_time") or start),
        attributes=SpanAttributes(unflatten_lists(dict(span.get("attributes") or {}))),
        events=tuple(
            EventRecord(name=str(e.get("name") or ""), time_ns=_nanos(e.get("timestamp") or start), attributes=unflatten_lists(dict(e.get("attributes") or {})))
            for e in span.get("events") or ()
        ),
        status_code=_STATUS.get(str(span.get("status_code") or "UNSET").upper(), STATUS_UNSET),
        status_message=str(span.get("status_message") or ""),
    )


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat()


def _pages(base: str, params: list[tuple[str, str]], on_problem: Callable[[Problem], None], deadline: float) -> Iterator[dict[str, Any]]:
    """Every span of a paginated query; stops with a problem on any answer it cannot use."""
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        query = params + [("limit", str(PAGE_SIZE))] + ([("cursor", cursor)] if cursor else [])
        url = f"{base}?{urllib.parse.urlencode(query)}"
        try:
            page = json.loads(get(url, deadline, auth_headers()))
        except SourceError as exc:
            on_problem(Problem(url, None, f"cannot read from Phoenix: {exc}"))
            return
        except UnicodeDecodeError as exc:
            on_problem(Problem(url, None, f"cannot read from Phoenix: the answer is not UTF-8 ({exc.reason} at byte {exc.start})"))
            return
        except (ValueError, RecursionError) as exc:
            on_problem(Problem(url, None, f"cannot read from Phoenix: the answer is not JSON ({exc})"))
            return
        if not isinstance(page, dict) or not isinstance(page.get("data", []), list):
            on_problem(Problem(url, None, f"cannot read from Phoenix: expected {{\"data\": [...]}}, got {json.dumps(page)[:100]}"))
            return
        for number, span in enumerate(page.get("data") or [], start=1):
            if isinstance(span, dict):
                yield span
            else:
                on_problem(Problem(url, number, "span is not an object; skipped"))
        cursor = page.get("next_cursor")
        if not cursor:
            return
        if not isinstance(cursor, str) or cursor in seen:
            on_problem(Problem(url, None, f"cannot read from Phoenix: next_cursor {cursor!r} repeats an earlier page; stopped"))
            return
        seen.add(cursor)


def read_phoenix(
    source: PhoenixSource,
    on_problem: Callable[[Problem], None],
    *,
    conversation_ids: frozenset[str] = frozenset(),
    since_ns: int | None = None,
    until_ns: int | None = None,
) -> Iterator[SpanRecord]:
    """Spans of the project (of the named conversations' traces when some are named)."""
    base = f"{source.url.rstrip('/')}/v1/projects/{urllib.parse.quote(source.project, safe='')}/spans"
    window: list[tuple[str, str]] = []
    if since_ns is not None:
        window.append(("start_time", _iso(since_ns)))
    if until_ns is not None:
        window.append(("end_time", _iso(until_ns)))

    def convert(raw: dict[str, Any]) -> SpanRecord | None:
        try:
            return phoenix_span(raw)
        except (KeyError, TypeError, ValueError) as exc:
            on_problem(Problem(base, None, f"{exc}; skipped"))
            return None

    deadline = time.monotonic() + timeout_s()
    if not conversation_ids:
        for raw in _pages(base, window, on_problem, deadline):
            record = convert(raw)
            if record is not None:
                yield record
        return
    trace_ids: set[str] = set()
    for conversation_id in sorted(conversation_ids):
        attribute = f"{GEN_AI_CONVERSATION_ID}:{json.dumps(conversation_id)}"
        for raw in _pages(base, window + [("attribute", attribute)], on_problem, deadline):
            trace_id = (raw.get("context") or {}).get("trace_id")
            if isinstance(trace_id, str):
                trace_ids.add(trace_id)
    ordered = sorted(trace_ids)
    for start in range(0, len(ordered), TRACES_PER_QUERY):
        batch = [("trace_id", t) for t in ordered[start : start + TRACES_PER_QUERY]]
        for raw in _pages(base, batch, on_problem, deadline):
            record = convert(raw)
            if record is not None:
                yield record
