"""User feedback mirrored into Phoenix annotations, where Phoenix shows feedback.

Phoenix has no ingestion path for ``gen_ai.evaluation.result`` events: it shows feedback
only as annotations written through its REST API. Each feedback key becomes two
annotations, one on the turn (the trace: Phoenix's session view and its own chat
feedback use trace annotations) and one on the message span, both named after the key
(``thumb``, ``rating``, ``comment``...), annotator kind ``HUMAN``, with the label, score
and explanation the evaluation event has (``feedback.evaluation_attributes`` is the one
mapping: thumbs ``up``/``down`` with 1.0/-1.0, numbers as scores, strings as labels, a
comment as the explanation, redacted like message content).

The annotation ``identifier`` is derived from the message span id, so a later value for
the same key and message replaces the earlier one (Phoenix upserts on name, target and
identifier), two messages of one turn keep one annotation each, and a backfill
(``otel-lunary annotate``) rewrites exactly what the live sink wrote. A removal (a
``None`` value, ``lunary.feedback.removed``) deletes both annotations.

``feedback_annotations`` turns one feedback record into ``Annotation`` values;
``PhoenixAnnotationSink`` sends them from a background thread: bounded queue, a later
value for the same annotation replaces a queued one, retries with backoff while Phoenix
has not ingested the span yet (an annotation posted right after the span's export gets
404 for a while) or is unreachable, each for a bounded time; ``submit`` never blocks on
the network and never raises; every annotation that does not land is counted.

Settings (explicit argument > environment > default):

- ``OTEL_LUNARY_PHOENIX_ANNOTATIONS``: Phoenix's base URL (``http://127.0.0.1:6006``);
  unset: no sink.
- ``PHOENIX_API_KEY``: sent as ``Authorization: Bearer <key>`` when Phoenix has
  authentication on.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from otel_lunary import _health
from otel_lunary._health import never_raises
from otel_lunary._settings import env_str, url_problem, warn_env
from otel_lunary._phoenix_api import ENV_API_KEY, Answer, Outcome, PhoenixAnnotationsAPI, TargetKind, auth_headers
from otel_lunary.attributes import (
    GEN_AI_EVALUATION_EXPLANATION,
    GEN_AI_EVALUATION_NAME,
    GEN_AI_EVALUATION_SCORE_LABEL,
    GEN_AI_EVALUATION_SCORE_VALUE,
    LUNARY_FEEDBACK_REMOVED,
)

__all__ = [
    "ENV_API_KEY",
    "ENV_ENDPOINT",
    "Annotation",
    "PhoenixAnnotationSink",
    "feedback_annotations",
    "identifier_for",
    "resolve_endpoint",
    "sink_from_settings",
]

logger = logging.getLogger("otel_lunary")

ENV_ENDPOINT = "OTEL_LUNARY_PHOENIX_ANNOTATIONS"
IDENTIFIER_PREFIX = "otel-lunary.feedback:"
ANNOTATOR_KIND = "HUMAN"
# Annotation names Phoenix refuses on this API ("note" is its notes feature); a feedback
# key with such a name is written under ``<key> (feedback)``.
RESERVED_NAMES = frozenset({"note"})

DEFAULT_MAX_QUEUE = 2048
DEFAULT_INGESTION_WAIT_S = 60.0
DEFAULT_REQUEST_TIMEOUT_S = 5.0
MAX_BATCH = 100
FIRST_BACKOFF_S = 0.2
MAX_BACKOFF_S = 5.0

COUNT_KEYS = (
    "written",
    "removed",
    "superseded",
    "retried",
    "dropped_queue_full",
    "dropped_not_ingested",
    "dropped_unreachable",
    "dropped_rejected",
    "dropped_shutdown",
)


@dataclass(frozen=True)
class Annotation:
    """One annotation Phoenix should hold, or (``removed``) should not hold any more."""

    kind: TargetKind
    target_id: str  # hex: 16 digits for a span, 32 for a trace
    name: str
    identifier: str
    label: str | None = None
    score: float | None = None
    explanation: str | None = None
    removed: bool = False
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What Phoenix upserts on: a later annotation with the same key replaces this one."""
        return (self.kind, self.target_id, self.name, self.identifier)

    def payload(self) -> dict[str, Any]:
        """The entry of Phoenix's ``{"data": [...]}`` annotation request body."""
        return {
            ("span_id" if self.kind == "span" else "trace_id"): self.target_id,
            "name": self.name,
            "annotator_kind": ANNOTATOR_KIND,
            "result": {"label": self.label, "score": self.score, "explanation": self.explanation},
            "identifier": self.identifier,
            "metadata": dict(self.metadata),
        }


def _hex_id(value: int | str, digits: int) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return format(value, f"0{digits}x") if 0 < value < 16**digits else None
    if isinstance(value, str) and len(value) == digits:
        try:
            return value.lower() if int(value, 16) else None
        except ValueError:
            return None
    return None


def identifier_for(span_id: str) -> str:
    """The identifier of every annotation mirrored from feedback on the message span ``span_id`` (hex)."""
    return IDENTIFIER_PREFIX + span_id


def feedback_annotations(
    trace_id: int | str,
    span_id: int | str,
    evaluations: Iterable[Mapping[str, Any]],
    *,
    message_id: str | None = None,
    conversation_id: str | None = None,
) -> list[Annotation]:
    """The annotations mirroring one feedback record on the message span ``span_id`` of trace ``trace_id``.

    ``evaluations`` are the attributes of the record's ``gen_ai.evaluation.result``
    events (``_record.feedback_record`` makes them), so the annotations say exactly
    what the events say, redaction included. Ids are ints (a ``SpanContext``) or hex
    strings (replay); invalid ids give no annotations.
    """
    trace_hex, span_hex = _hex_id(trace_id, 32), _hex_id(span_id, 16)
    if trace_hex is None or span_hex is None:
        return []
    identifier = identifier_for(span_hex)
    metadata = {"message_span_id": span_hex}
    if message_id:
        metadata["message_id"] = message_id
    if conversation_id:
        metadata["conversation_id"] = conversation_id
    annotations = []
    for attributes in evaluations:
        key = attributes.get(GEN_AI_EVALUATION_NAME)
        if not isinstance(key, str) or not key:
            continue
        name = f"{key} (feedback)" if key in RESERVED_NAMES else key
        removed = bool(attributes.get(LUNARY_FEEDBACK_REMOVED))
        label = attributes.get(GEN_AI_EVALUATION_SCORE_LABEL)
        score = attributes.get(GEN_AI_EVALUATION_SCORE_VALUE)
        explanation = attributes.get(GEN_AI_EVALUATION_EXPLANATION)
        targets: tuple[tuple[TargetKind, str], ...] = (("trace", trace_hex), ("span", span_hex))
        for kind, target in targets:
            annotations.append(
                Annotation(
                    kind=kind,
                    target_id=target,
                    name=name,
                    identifier=identifier,
                    label=None if removed or not isinstance(label, str) else label,
                    score=None if removed or not isinstance(score, (int, float)) or isinstance(score, bool) else float(score),
                    explanation=None if removed or not isinstance(explanation, str) else explanation,
                    removed=removed,
                    metadata=metadata,
                )
            )
    return annotations


def resolve_endpoint(explicit: str | bool | None) -> str | None:
    """Phoenix's base URL, or None for no sink: explicit (False: off) > env > off.

    A bad explicit URL raises ``ValueError``; a bad environment value logs a warning and
    leaves the sink off. A trailing ``/v1/traces`` (the OTLP endpoint) is dropped.
    """
    if explicit is False:
        return None
    if explicit is not None and explicit is not True:
        if not isinstance(explicit, str) or (problem := url_problem(explicit)) is not None:
            why = "not a string" if not isinstance(explicit, str) else problem
            raise ValueError(f"phoenix_annotations must be Phoenix's http(s) base URL, e.g. http://127.0.0.1:6006, got {explicit!r}: {why}")
        return _base_url(explicit)
    raw = env_str(ENV_ENDPOINT)
    if raw is None:
        if explicit is True:
            raise ValueError(f"phoenix_annotations=True needs {ENV_ENDPOINT} set to Phoenix's URL; pass the URL instead")
        return None
    problem = url_problem(raw)
    if problem is not None:
        warn_env(ENV_ENDPOINT, raw, problem, None)
        return None
    return _base_url(raw)


def _base_url(url: str) -> str:
    url = url.rstrip("/")
    return url[: -len("/v1/traces")] if url.endswith("/v1/traces") else url


def sink_from_settings(phoenix_annotations: str | bool | None = None, *, api_key: str | None = None) -> PhoenixAnnotationSink | None:
    """The sink ``configure(phoenix_annotations=...)`` asks for (or the environment does), or None."""
    endpoint = resolve_endpoint(phoenix_annotations)
    return None if endpoint is None else PhoenixAnnotationSink(endpoint, api_key=api_key)


@dataclass
class _Job:
    annotation: Annotation
    next_attempt: float
    deadline: float | None = None  # set at the first attempt: a backlog does not use up the wait
    attempts: int = 0


class PhoenixAnnotationSink:
    """Sends annotations to Phoenix from one background thread; ``submit`` returns at once.

    At most ``max_queue`` annotations wait; one more is dropped and counted. An
    annotation whose span or trace Phoenix does not have yet, or that cannot reach
    Phoenix, is retried with backoff for ``ingestion_wait_s`` seconds from its first
    attempt, then dropped and counted. A newer annotation with the same key replaces a
    waiting one (only the latest value matters, and it keeps a removal from being
    overtaken by the value it removes). ``counts()`` tells what happened.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        api_key: str | None = None,
        max_queue: int = DEFAULT_MAX_QUEUE,
        ingestion_wait_s: float = DEFAULT_INGESTION_WAIT_S,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
    ) -> None:
        problem = url_problem(endpoint) if isinstance(endpoint, str) else "not a string"
        if problem is not None:
            raise ValueError(f"endpoint must be Phoenix's http(s) base URL, got {endpoint!r}: {problem}")
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1:
            raise ValueError(f"max_queue must be an int >= 1, got {max_queue!r}")
        for what, value in (("ingestion_wait_s", ingestion_wait_s), ("request_timeout_s", request_timeout_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{what} must be a number > 0, got {value!r}")
        self.endpoint = _base_url(endpoint)
        self._api = PhoenixAnnotationsAPI(self.endpoint, headers=auth_headers(api_key), timeout_s=float(request_timeout_s))
        self._max_queue = max_queue
        self._wait_s = float(ingestion_wait_s)
        self._cond = threading.Condition()
        self._pending: dict[tuple[str, str, str, str], _Job] = {}
        self._in_flight = 0
        self._closed = False
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._counts = dict.fromkeys(COUNT_KEYS, 0)
        self._unlogged: list[tuple[int, str]] = []  # drops to log once the lock is released

    # --- the application side: never blocks on the network, never raises ---------------

    @never_raises("queueing Phoenix annotations failed")  # feedback must never break the application
    def submit(self, annotations: Iterable[Annotation]) -> None:
        """Queue ``annotations`` for Phoenix."""
        now = time.monotonic()
        with self._cond:
            for annotation in annotations:
                if self._closed:
                    self._drop("dropped_shutdown", 1, "the sink is shut down")
                    continue
                key = annotation.key
                if self._pending.pop(key, None) is not None:
                    self._counts["superseded"] += 1
                elif len(self._pending) >= self._max_queue:
                    self._drop("dropped_queue_full", 1, "the queue is full")
                    continue
                self._pending[key] = _Job(annotation, next_attempt=now)
            if not self._closed:
                self._ensure_worker()
                self._cond.notify_all()
        self._log_drops()

    def counts(self) -> dict[str, int]:
        """What happened to submitted annotations so far: ``written``, ``removed``, ``superseded``
        (replaced by a newer value before being sent), ``dropped_*`` by reason, and
        ``retried``: attempts that Phoenix answered "not ingested yet" or did not answer."""
        with self._cond:
            return dict(self._counts)

    def pending(self) -> int:
        """Annotations queued or in flight."""
        with self._cond:
            return len(self._pending) + self._in_flight

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued annotation landed or was dropped; False if ``timeout`` s passed first."""
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        with self._cond:
            while self._pending or self._in_flight:
                if self._stopped:
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Refuse new annotations, send what waits for at most ``timeout`` s, drop (and count) the rest.

        True when nothing was left behind. Calling it twice is harmless.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            self._closed = True
        drained = self.flush(timeout)
        with self._cond:
            if not self._stopped:
                self._stopped = True
                left = len(self._pending) + self._in_flight
                self._pending.clear()
                if left:
                    self._drop("dropped_shutdown", left, "shutdown came before Phoenix took them")
            self._cond.notify_all()
            thread = self._thread
        self._log_drops()
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))  # else abandoned: a request ends by its own timeout
        return drained

    # --- the worker ---------------------------------------------------------------------

    def _ensure_worker(self) -> None:
        """Start the thread on first use (and again in a forked child, where it is gone)."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="otel-lunary-phoenix-annotations", daemon=True)
            self._thread.start()

    def _drop(self, reason: str, count: int, why: str) -> None:
        """Count a loss (the lock is held); ``_log_drops`` logs it after the lock is released."""
        self._counts[reason] += count
        self._unlogged.append((count, why))

    def _log_drops(self) -> None:
        """Log the losses counted so far (rate-limited), outside the lock: a slow log handler
        must not hold up ``submit``."""
        with self._cond:
            unlogged, self._unlogged = self._unlogged, []
        by_reason: dict[str, int] = {}
        for count, why in unlogged:
            by_reason[why] = by_reason.get(why, 0) + count
        for why, count in by_reason.items():
            _health.report("phoenix_annotations_dropped", "otel_lunary: %d Phoenix annotation(s) dropped: %s", count, why, n=count)

    def _take_due(self) -> list[_Job] | None:
        """The next batch to send (the lock is held), waiting for one; None when stopped."""
        while True:
            if self._stopped:
                return None
            now = time.monotonic()
            due = [key for key, job in self._pending.items() if job.next_attempt <= now]
            if due:
                batch = [self._pending.pop(key) for key in due[:MAX_BATCH]]
                self._in_flight += len(batch)
                return batch
            waits = [job.next_attempt - now for job in self._pending.values()]
            self._cond.wait(min(waits) if waits else None)

    def _run(self) -> None:
        while True:
            with self._cond:
                batch = self._take_due()
            if batch is None:
                return
            try:
                results = self._send(batch)
            except Exception as error:  # noqa: BLE001 - the worker must survive anything
                logger.debug("otel_lunary: sending Phoenix annotations failed", exc_info=True)
                results = [(job, Answer(Outcome.UNREACHABLE, repr(error))) for job in batch]
            with self._cond:
                self._in_flight -= len(batch)
                if not self._stopped:
                    for job, answer in results:
                        self._settle(job, answer)
                self._cond.notify_all()
            self._log_drops()

    def _send(self, batch: list[_Job]) -> list[tuple[_Job, Answer]]:
        now = time.monotonic()
        for job in batch:
            if job.deadline is None:
                job.deadline = now + self._wait_s
        results: list[tuple[_Job, Answer]] = []
        groups: dict[tuple[TargetKind, bool], dict[str, list[_Job]]] = {}
        for job in batch:
            a = job.annotation
            groups.setdefault((a.kind, a.removed), {}).setdefault(a.target_id, []).append(job)
        for (kind, removed), by_target in groups.items():
            if removed:
                for target, jobs in by_target.items():
                    keys = {(j.annotation.name, j.annotation.identifier) for j in jobs}
                    answer = self._api.delete(kind, target, keys)
                    results.extend((job, answer) for job in jobs)
            else:
                results.extend(self._upsert(kind, by_target))
        return results

    def _upsert(self, kind: TargetKind, by_target: dict[str, list[_Job]]) -> list[tuple[_Job, Answer]]:
        """One request for all targets; when some target is unknown (404), one per target."""
        jobs = [job for group in by_target.values() for job in group]
        answer = self._api.upsert(kind, [job.annotation.payload() for job in jobs])
        if answer.outcome is not Outcome.NOT_FOUND or len(by_target) == 1:
            return [(job, answer) for job in jobs]
        results: list[tuple[_Job, Answer]] = []
        for group in by_target.values():
            single = self._api.upsert(kind, [job.annotation.payload() for job in group])
            results.extend((job, single) for job in group)
        return results

    def _settle(self, job: _Job, answer: Answer) -> None:
        """Count a finished job or put it back for a retry (the lock is held)."""
        annotation = job.annotation
        if answer.outcome is Outcome.DONE:
            self._counts["removed" if annotation.removed else "written"] += 1
            return
        if answer.outcome is Outcome.REJECTED:
            self._drop("dropped_rejected", 1, f"Phoenix refused it ({answer.detail})")
            return
        key = annotation.key
        if key in self._pending:  # a newer value came meanwhile: it wins
            self._counts["superseded"] += 1
            return
        now = time.monotonic()
        if job.deadline is not None and now >= job.deadline:
            if answer.outcome is Outcome.NOT_FOUND:
                self._drop("dropped_not_ingested", 1, f"Phoenix still had no {annotation.kind} {annotation.target_id} after {self._wait_s:g}s")
            else:
                self._drop("dropped_unreachable", 1, f"Phoenix at {self.endpoint} did not take it for {self._wait_s:g}s ({answer.detail})")
            return
        job.attempts += 1
        self._counts["retried"] += 1
        backoff = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** (job.attempts - 1)) * random.uniform(0.8, 1.2)  # noqa: S311 - jitter
        job.next_attempt = now + backoff
        self._pending[key] = job
