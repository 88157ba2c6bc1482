"""The few Phoenix calls that write and delete annotations, each answered with an ``Outcome``.

Writes go through the REST API (``POST /v1/span_annotations`` and
``/v1/trace_annotations`` with ``sync=true``): Phoenix upserts on (name, target,
identifier) and answers 404 while the target span or trace is not ingested yet, which
is what lets the caller retry through the ingestion race. Without ``sync`` Phoenix
accepts everything, keeps annotations for unknown spans in memory and retries them
itself for ten minutes; a removal sent meanwhile would find nothing to delete and the
old value would land after it, so the sink never uses that mode.

Deletes go through GraphQL (``getSpanByOtelId`` / ``getTraceByOtelId`` then
``deleteSpanAnnotations`` / ``deleteTraceAnnotations``), the API Phoenix's own UI uses:
Phoenix 20.26's REST delete (``DELETE /v1/projects/{project}/span_annotations``) is
scoped to a project, and a feedback record does not know which project its spans went
to (the exporting process's resource picks it), while span and trace ids are unique
across projects.

Every request runs with OpenTelemetry instrumentation suppressed, so an instrumented
``urllib`` does not turn annotation traffic into spans of its own.
"""

from __future__ import annotations

import enum
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from opentelemetry import context as otel_context

TargetKind = Literal["span", "trace"]

ENV_API_KEY = "PHOENIX_API_KEY"

_REST_PATH: dict[TargetKind, str] = {"span": "/v1/span_annotations", "trace": "/v1/trace_annotations"}
_ID_FIELD: dict[TargetKind, str] = {"span": "span_id", "trace": "trace_id"}
_FIND_QUERY: dict[TargetKind, str] = {
    "span": "query($id: String!) { target: getSpanByOtelId(spanId: $id) { annotations: spanAnnotations { id name identifier } } }",
    "trace": "query($id: String!) { target: getTraceByOtelId(traceId: $id) { annotations: traceAnnotations { id name identifier } } }",
}
_DELETE_MUTATION: dict[TargetKind, str] = {
    "span": "mutation($ids: [ID!]!) { deleteSpanAnnotations(input: {annotationIds: $ids}) { __typename } }",
    "trace": "mutation($ids: [ID!]!) { deleteTraceAnnotations(input: {annotationIds: $ids}) { __typename } }",
}
# Phoenix's answer when an id to delete is already gone (someone else deleted it).
_ALREADY_GONE = "Could not find"


class Outcome(enum.Enum):
    DONE = "done"
    NOT_FOUND = "not_found"  # the span or trace is not in Phoenix (yet): retry
    UNREACHABLE = "unreachable"  # connection failed, timed out, 5xx or 429: retry
    REJECTED = "rejected"  # Phoenix refused the request itself (auth, validation): do not retry


@dataclass(frozen=True)
class Answer:
    outcome: Outcome
    detail: str = ""


def auth_headers(api_key: str | None = None) -> dict[str, str]:
    """``Authorization: Bearer <key>`` for ``api_key``, else ``PHOENIX_API_KEY`` (Phoenix's own client
    variable); empty when neither is set (a Phoenix without authentication)."""
    key = api_key if api_key is not None else (os.environ.get(ENV_API_KEY) or "").strip()
    return {"Authorization": f"Bearer {key}"} if key else {}


@contextmanager
def _instrumentation_suppressed() -> Iterator[None]:
    token = otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        yield
    finally:
        otel_context.detach(token)


def _classify_status(status: int, body: bytes) -> Answer:
    detail = f"HTTP {status}: {body[:300].decode('utf-8', 'replace')}"
    if status == 404:
        return Answer(Outcome.NOT_FOUND, detail)
    if status == 429 or status >= 500:
        return Answer(Outcome.UNREACHABLE, detail)
    return Answer(Outcome.REJECTED, detail)


class PhoenixAnnotationsAPI:
    """Phoenix at ``base_url`` (``http://host:6006``), with optional extra headers (the API key)."""

    def __init__(self, base_url: str, *, headers: Mapping[str, str] | None = None, timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
        self._timeout_s = timeout_s

    def _post(self, path: str, body: Any) -> tuple[int, bytes] | Answer:
        """The status and body, or an UNREACHABLE answer when there was no HTTP answer."""
        request = urllib.request.Request(self.base_url + path, data=json.dumps(body).encode(), method="POST", headers=self._headers)
        try:
            with _instrumentation_suppressed(), urllib.request.urlopen(request, timeout=self._timeout_s) as response:  # noqa: S310 - http(s) checked at setup
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except (urllib.error.URLError, OSError, ValueError) as error:  # refused, reset, timed out, bad status line
            return Answer(Outcome.UNREACHABLE, str(error))

    def upsert(self, kind: TargetKind, items: Sequence[Mapping[str, Any]]) -> Answer:
        """Write ``items`` (REST ``data`` entries) in one request; 404 when a target is unknown."""
        answer = self._post(f"{_REST_PATH[kind]}?sync=true", {"data": list(items)})
        if isinstance(answer, Answer):
            return answer
        status, body = answer
        if 200 <= status < 300:
            return Answer(Outcome.DONE)
        return _classify_status(status, body)

    def _graphql(self, query: str, variables: Mapping[str, Any]) -> Any:
        """``data`` of a GraphQL answer, or an Answer saying why there is none."""
        answer = self._post("/graphql", {"query": query, "variables": dict(variables)})
        if isinstance(answer, Answer):
            return answer
        status, body = answer
        if not 200 <= status < 300:
            return _classify_status(status, body)
        try:
            document = json.loads(body)
        except ValueError:
            return Answer(Outcome.UNREACHABLE, f"GraphQL answer is not JSON: {body[:200]!r}")
        errors = document.get("errors") if isinstance(document, dict) else None
        if errors:
            message = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors)
            # Already deleted by someone else: looking again finds the truth.
            return Answer(Outcome.NOT_FOUND if _ALREADY_GONE in message else Outcome.REJECTED, f"GraphQL: {message}")
        return document.get("data") if isinstance(document, dict) else None

    def delete(self, kind: TargetKind, target_id: str, keys: set[tuple[str, str]]) -> Answer:
        """Delete the annotations of one span or trace whose (name, identifier) is in ``keys``.

        A target Phoenix does not have cannot hold annotations: that is DONE too.
        """
        data = self._graphql(_FIND_QUERY[kind], {"id": target_id})
        if isinstance(data, Answer):
            return Answer(Outcome.UNREACHABLE, data.detail) if data.outcome is Outcome.NOT_FOUND else data
        target = (data or {}).get("target")
        if not target:
            return Answer(Outcome.DONE)
        ids = [a["id"] for a in target.get("annotations") or () if (a.get("name"), a.get("identifier")) in keys]
        if not ids:
            return Answer(Outcome.DONE)
        deleted = self._graphql(_DELETE_MUTATION[kind], {"ids": ids})
        if isinstance(deleted, Answer):
            # NOT_FOUND here means an id vanished meanwhile: retrying looks again.
            return deleted
        return Answer(Outcome.DONE)

