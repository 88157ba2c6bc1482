"""Reading conversations from a Jaeger v2 query service (``GET /api/v3/traces``).

The v3 API answers OTLP JSON wrapped as ``{"result": {"resourceSpans": [...]}}``; a
streamed answer is several such objects one after another, so the body is decoded as a
sequence of JSON values. Jaeger's search wants a time window (and, depending on the
storage, a service name), so the window is ``--since/--until`` or the last 30 days.
Only urllib: no client library for one GET.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

from otel_lunary.attributes import GEN_AI_CONVERSATION_ID
from otel_lunary.replay._http import NotFound, SourceError, Unreachable, get, timeout_s
from otel_lunary.replay.decode import otlp_spans
from otel_lunary.replay.records import Problem, SpanRecord



@dataclass(frozen=True)
class JaegerSource:
    """A Jaeger v2 query service (``/api/v3``) to search by conversation id."""

    url: str
    service: str | None = None


DEFAULT_WINDOW_NS = 30 * 86400 * 10**9
SEARCH_DEPTH = 1000


def _rfc3339(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def query_url(source: JaegerSource, conversation_id: str | None, since_ns: int | None, until_ns: int | None) -> str:
    """The FindTraces URL for one conversation (or every trace of the window)."""
    until = until_ns if until_ns is not None else time.time_ns()
    since = since_ns if since_ns is not None else until - DEFAULT_WINDOW_NS
    params = {"query.start_time_min": _rfc3339(since), "query.start_time_max": _rfc3339(until), "query.search_depth": str(SEARCH_DEPTH)}
    # Jaeger v2 (v1.76) reads the depth as query.num_traces and answers 500 without it;
    # earlier /api/v3 servers read query.search_depth. Each ignores the other's name.
    params["query.num_traces"] = str(SEARCH_DEPTH)
    if source.service:
        params["query.service_name"] = source.service
    if conversation_id is not None:
        params["query.attributes"] = json.dumps({GEN_AI_CONVERSATION_ID: conversation_id})
    return source.url.rstrip("/") + "/api/v3/traces?" + urllib.parse.urlencode(params)


def _json_values(body: str) -> Iterator[object]:
    decoder = json.JSONDecoder()
    index = 0
    while True:
        while index < len(body) and body[index].isspace():
            index += 1
        if index >= len(body):
            return
        value, index = decoder.raw_decode(body, index)
        yield value


def read_jaeger(
    source: JaegerSource,
    on_problem: Callable[[Problem], None],
    *,
    conversation_ids: frozenset[str] = frozenset(),
    since_ns: int | None = None,
    until_ns: int | None = None,
) -> Iterator[SpanRecord]:
    """Spans of the conversations asked for (all with the attribute when none is named)."""
    wanted: list[str | None] = [*sorted(conversation_ids)] or [None]
    deadline = time.monotonic() + timeout_s()
    for conversation_id in wanted:
        url = query_url(source, conversation_id, since_ns, until_ns)
        try:
            body = get(url, deadline).decode("utf-8")
        except NotFound:  # Jaeger: no trace matched
            continue
        except Unreachable as exc:
            on_problem(Problem(url, None, f"cannot reach Jaeger: {exc}"))
            continue
        except SourceError as exc:
            on_problem(Problem(url, None, f"cannot read from Jaeger: {exc}"))
            continue
        except UnicodeDecodeError as exc:
            on_problem(Problem(url, None, f"cannot read from Jaeger: the answer is not UTF-8 ({exc.reason} at byte {exc.start})"))
            continue
        try:
            for number, value in enumerate(_json_values(body), start=1):

                def report(message: str, _n: int = number) -> None:
                    on_problem(Problem(url, _n, f"{message}; skipped"))

                if isinstance(value, dict) and "error" in value and "result" not in value:
                    report(f"Jaeger error {value['error']}")
                    continue
                yield from otlp_spans(value, report)
        except (ValueError, RecursionError) as exc:
            on_problem(Problem(url, None, f"cannot read from Jaeger: the answer is not JSON ({exc}); rest skipped"))
