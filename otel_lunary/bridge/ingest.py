"""Lunary events -> the spans conventions/ defines, through the SDK's recording layer.

Messages, custom events, feedback and runs (llm, agent, tool, chain) are recorded by
``otel_lunary._record``, the layer ``track_message``, ``track_feedback``, ``monitor`` and
the run decorators use, so what came through the bridge carries exactly what the native
calls would record. Runs are created when they end, with the span id drawn at ``start``
(see ``_ids``) and the client's own start and end times.

Trace layout is the native one: a user message opens a new trace (its thread's turn);
other messages and custom events join the thread's current turn (a new root when none is
known); feedback is a child of the message it is about; a run is a child of its
``parentRunId`` (a message or another run), else a root.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from otel_lunary import _record, _turns
from otel_lunary._content import ContentPolicy, to_string_list
from otel_lunary._record import ASSISTANT, SYSTEM, USER, ReportedError, normalise_role
from otel_lunary._settings import Settings, resolve_settings
from otel_lunary._state import NEW_TRACE, context_of, new_runtime
from otel_lunary.attributes import GEN_AI_CONVERSATION_ID, LUNARY_RUN_ID, LUNARY_RUN_UNFINISHED, LUNARY_TURN_ENDED_BY
from otel_lunary.bridge._ids import ForcedIdGenerator, python_wire_id
from otel_lunary.bridge.store import OpenRun, StateStore, StoreFailure
from otel_lunary.bridge.wire import Event, EventError, parse_event
from otel_lunary.phoenix_feedback import PhoenixAnnotationSink, feedback_annotations

logger = logging.getLogger("otel_lunary.bridge")

ProviderFactory = Callable[[str], TracerProvider]

# Model name prefixes -> gen_ai.provider.name; Lunary's wire does not name the provider.
_PROVIDERS = (("claude", "anthropic"), ("gemini", "gcp.gemini"), ("mistral", "mistral_ai"), ("command", "cohere"))
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def provider_for_model(model: str) -> str:
    lowered = model.lower()
    return next((provider for prefix, provider in _PROVIDERS if lowered.startswith(prefix)), _record.OPENAI)


def error_type(error: Any) -> str:
    """A class name from the SDK's error object: Python's last stack line, JS's first."""
    if not isinstance(error, Mapping):
        return "_OTHER"
    stack = error.get("stack")
    if isinstance(stack, str) and stack.strip():
        lines = [line for line in stack.strip().splitlines() if line.strip()]
        line = lines[-1] if lines[0].startswith("Traceback") else lines[0]
        head = line.split(":", 1)[0].strip()
        if head and " " not in head:
            return head.rsplit(".", 1)[-1]
    return "_OTHER"


TURN_KEY_PREFIX = "otel-lunary-turn:"
_AWAITING_QUESTION = "awaiting_question"  # in an open turn's start data: opened for a system prompt


def _turn_key(thread_id: str) -> str:
    """The open-run key of a thread's turn (not a Lunary run id: those are UUIDs or the app's)."""
    return TURN_KEY_PREFIX + thread_id


class Project:
    """One project's TracerProvider (resource ``lunary.project``), tracer and id generator."""

    def __init__(self, name: str, provider: TracerProvider, settings: Settings) -> None:
        self.name = name
        self.ids = ForcedIdGenerator()
        # Public SDK attribute, read by get_tracer below. The SDK declares no type for it, so
        # mypy infers its default's (RandomIdGenerator); the SDK accepts any IdGenerator.
        provider.id_generator = self.ids  # type: ignore[assignment]
        self.runtime = new_runtime(provider, settings, owns_provider=True)


class Ingestor:
    """Turns batches of Lunary events into spans; thread-safe (one batch at a time)."""

    def __init__(
        self,
        store: StateStore,
        provider_factory: ProviderFactory,
        *,
        settings: Settings | None = None,
        run_timeout_s: float = 600.0,
        annotations: PhoenixAnnotationSink | None = None,
    ) -> None:
        self.store = store
        self.annotations = annotations
        self.provider_factory = provider_factory
        self.settings = settings or resolve_settings()
        self.run_timeout_s = run_timeout_s
        self.projects: dict[str, Project] = {}
        self._projects_lock = threading.Lock()
        self.counts = {"events": 0, "rejected": 0, "duplicates": 0, "unfinished": 0}

    def project(self, name: str) -> Project:
        with self._projects_lock:
            found = self.projects.get(name)
            if found is None:
                found = self.projects[name] = Project(name, self.provider_factory(name), self.settings)
            return found

    # --- batches -------------------------------------------------------------------------
    def ingest(self, project_name: str, app_key: str, events: Sequence[Any]) -> list[dict[str, Any]]:
        """One ``results`` entry per event, in order; bad events do not stop good ones."""
        project = self.project(project_name)
        results: list[dict[str, Any]] = []
        self.store.begin()
        try:
            for raw in events:
                run_id = raw.get("runId") if isinstance(raw, Mapping) else None
                result: dict[str, Any] = {"id": run_id if isinstance(run_id, str) else None, "success": True}
                try:
                    self._one(project, app_key, parse_event(raw))
                    self.counts["events"] += 1
                except EventError as problem:
                    result.update(success=False, error=str(problem))
                    self.counts["rejected"] += 1
                except StoreFailure:
                    raise  # the state file, not the event: the whole request fails and is retried
                except Exception as problem:  # noqa: BLE001 - one event must not sink the batch
                    logger.warning("otel-lunary bridge: could not process an event", exc_info=True)
                    result.update(success=False, error=f"internal error: {type(problem).__name__}")
                    self.counts["rejected"] += 1
                results.append(result)
        except BaseException:
            self.store.rollback()  # no state and no spans of this request
            raise
        self.store.commit()
        return results

    def _one(self, project: Project, app_key: str, event: Event) -> None:
        handler = {
            "chat": self._chat,
            "custom-event": self._custom_event,
            "feedback": self._feedback,
            "start": self._start,
            "end": self._end,
            "error": self._end,
        }[event.kind]
        handler(project, app_key, event)

    # --- thread events -------------------------------------------------------------------
    @staticmethod
    def _thread_base(event: Event) -> dict[str, Any]:
        return _record.thread_attributes(
            str(event.parent_run_id), to_string_list(event.get("threadTags")), event.get("threadMetadata"), None, None
        )

    def _remember(self, project: Project, app_key: str, event: Event, span_context: SpanContext, conversation: str | None, kind: str) -> None:
        self.store.put(project.name, event.run_id, span_context, conversation, kind)
        if event.get("runtime") != "lunary-py":
            # A JS-sent id is raw; a Python SDK elsewhere would refer to it hashed.
            self.store.put(project.name, python_wire_id(event.run_id, app_key), span_context, conversation, kind)

    def _duplicate(self, project: Project, event: Event) -> bool:
        if self.store.get(project.name, event.run_id) is None:
            return False
        self.counts["duplicates"] += 1
        return True

    def _turn_parent(self, project: Project, thread_id: str) -> Any:
        turn = self.store.turn(project.name, thread_id)
        return NEW_TRACE if turn is None else context_of(turn)

    def _chat(self, project: Project, app_key: str, event: Event) -> None:
        if self._duplicate(project, event):
            return
        thread_id = _record.conversation_id(event.parent_run_id)
        message = dict(event.get("message"))
        role = normalise_role(message.get("role")) or USER
        thread_base = self._thread_base(event)
        runtime = project.runtime
        attributes = _record.message_attributes(
            runtime.policy, _record.message_base(thread_base, role), {**message, "id": event.run_id}, role, event.get("userId"), event.get("userProps")
        )
        if role == USER:
            parent = context_of(self._open_turn(project, thread_id, thread_base, attributes, event.timestamp_ns))
        elif role == SYSTEM and self.store.turn(project.name, thread_id) is None:
            # A system prompt before the thread's first question: it goes in the first turn,
            # as the SDK holds it (decision 2 in conventions/README.md), here by opening that
            # turn now, still without its question (_open_turn adopts it).
            parent = context_of(self._open_turn(project, thread_id, thread_base, None, event.timestamp_ns))
        else:
            parent = self._turn_parent(project, thread_id)
        span_context, _ = _record.emit_message(runtime, attributes, role, parent, None, event.timestamp_ns)
        self._remember(project, app_key, event, span_context, thread_id, "message")
        if role == ASSISTANT and not _record.has_tool_calls(message):
            self._answer_turn(project, thread_id, span_context, attributes, event.timestamp_ns)
        inline = event.get("feedback") or message.get("feedback")
        if isinstance(inline, Mapping) and inline:
            self._emit_feedback(project, event.run_id, inline, event.timestamp_ns)

    # --- turns: open runs of their own, so a reply ends its turn whichever bridge gets it ----
    def _open_turn(
        self, project: Project, thread_id: str, thread_base: Mapping[str, Any], question: Mapping[str, Any] | None, started_ns: int
    ) -> SpanContext:
        """Reserve the turn span of a user message (recorded when the turn ends) and make it
        the thread's current turn; the thread's previous turn, still open, ends unanswered.

        ``question`` None opens the first turn for a system prompt that came before any
        question; the question that follows takes that turn over (its ids, its prompt) and
        starts it, so the trace reads as the SDK's. Without a question before the turn
        timeout, it ends with no input."""
        previous = self.store.close_run(project.name, _turn_key(thread_id))
        adopt = previous is not None and question is not None and previous.start.get(_AWAITING_QUESTION) is True
        if previous is not None and not adopt:
            self._end_turn(project, previous, _turns.NEXT_MESSAGE, {}, started_ns)
        if previous is not None and adopt:
            span_context = previous.span_context
        else:
            span_context = SpanContext(project.ids.generate_trace_id(), project.ids.generate_span_id(), is_remote=True, trace_flags=_SAMPLED)
        start: dict[str, Any] = {
            "name": _record.TURN_SPAN_NAME, "kind": "internal", "type": _record.TURN, "attributes": _record.turn_attributes(thread_base, question or {}), "parent": None
        }
        if question is None:
            start[_AWAITING_QUESTION] = True
        self.store.open_run(project.name, _turn_key(thread_id), span_context, thread_id, started_ns, start)
        self.store.set_turn(project.name, thread_id, span_context)
        return span_context

    def _answer_turn(self, project: Project, thread_id: str, reply: SpanContext, attributes: Mapping[str, Any], end_ns: int) -> None:
        turn = self.store.turn(project.name, thread_id)
        if turn is None or turn.trace_id != reply.trace_id:
            return
        opened = self.store.close_run(project.name, _turn_key(thread_id))
        if opened is not None:
            self._end_turn(project, opened, _turns.REPLY, _record.turn_output(attributes), end_ns)

    def _end_turn(self, project: Project, opened: OpenRun, ended_by: str, output: dict[str, Any], end_ns: int) -> None:
        attributes = {**opened.start["attributes"], **output, LUNARY_TURN_ENDED_BY: ended_by}
        with project.ids.forced(opened.span_context.trace_id, opened.span_context.span_id):
            _record.emit(
                project.runtime, opened.start["name"], attributes, NEW_TRACE, start_ns=opened.started_ns, end_ns=max(opened.started_ns, end_ns)
            )

    def _custom_event(self, project: Project, app_key: str, event: Event) -> None:
        if self._duplicate(project, event):
            return
        thread_id = _record.conversation_id(event.parent_run_id)
        span_context = _record.event(
            project.runtime,
            self._thread_base(event),
            str(event.get("name")),
            self._turn_parent(project, thread_id),
            event.get("userId"),
            event.get("userProps"),
            event.get("metadata"),
            event.timestamp_ns,
        )
        self._remember(project, app_key, event, span_context, thread_id, "event")

    def _feedback(self, project: Project, app_key: str, event: Event) -> None:
        self._emit_feedback(project, event.run_id, event.get("feedback"), event.timestamp_ns)

    def _emit_feedback(self, project: Project, message_id: str, feedback: Mapping[str, Any], timestamp: int) -> None:
        target = self.store.get(project.name, message_id)
        parent = NEW_TRACE if target is None else context_of(target.span_context)
        conversation = target.conversation_id if target else None
        _, evaluations = _record.feedback(project.runtime, message_id, feedback, conversation, parent, timestamp)
        if self.annotations is not None and target is not None:
            span = target.span_context
            self.annotations.submit(feedback_annotations(span.trace_id, span.span_id, evaluations, message_id=message_id, conversation_id=conversation))

    # --- runs ----------------------------------------------------------------------------
    def _start_attributes(self, event: Event, policy: ContentPolicy) -> tuple[str, str, dict[str, Any]]:
        """(span name, span kind, attributes) of a run from its start event."""
        name = event.get("name")
        name = name if isinstance(name, str) and name else (event.type or "run")
        options = {"user_id": event.get("userId"), "user_props": event.get("userProps"), "tags": event.get("tags"), "metadata": event.get("metadata")}
        if event.type == "llm":
            params = event.get("params") if isinstance(event.get("params"), Mapping) else {}
            span_title, attributes = _record.inference(name, params, options, provider_for_model(name))
            messages = event.get("input")
            if isinstance(messages, str):
                messages = [{"role": USER, "content": messages}]
            attributes.update(_record.inference_input(messages, policy))
            kind = "client"
        else:
            run_kind = _record.RUN_KINDS.get(event.type or "", _record.CHAIN)
            span_title, attributes = run_kind.start(name, options)
            if event.get("input") is not None:
                attributes.update(run_kind.input(event.get("input"), policy))
            kind = "internal"
        attributes[LUNARY_RUN_ID] = event.run_id
        return span_title, kind, attributes

    @staticmethod
    def _end_attributes(run_type: str, event: Event, policy: ContentPolicy) -> dict[str, Any]:
        output = event.get("output")
        if run_type == "llm":
            usage = event.get("tokensUsage")
            # A streamed call's "completion" is a chunk count with no prompt count beside
            # it (both SDKs): only a pair of numbers is token usage.
            pair = isinstance(usage, Mapping) and all(isinstance(usage.get(k), int) and not isinstance(usage.get(k), bool) for k in ("prompt", "completion"))
            outputs = [] if output is None else output if isinstance(output, list) else [output]
            return _record.inference_result(
                policy,
                outputs=[m if isinstance(m, Mapping) else {"content": m} for m in outputs],
                input_tokens=usage["prompt"] if pair else None,
                output_tokens=usage["completion"] if pair else None,
            )
        run_kind = _record.RUN_KINDS.get(run_type)
        return run_kind.output(output, policy) if run_kind is not None and output is not None else {}

    def _start(self, project: Project, app_key: str, event: Event) -> None:
        if self._duplicate(project, event):
            return
        span_title, kind, attributes = self._start_attributes(event, project.runtime.policy)
        parent = self.store.get(project.name, event.parent_run_id) if event.parent_run_id else None
        conversation = parent.conversation_id if parent else None
        if conversation is not None:
            attributes[GEN_AI_CONVERSATION_ID] = conversation
        trace_id = parent.span_context.trace_id if parent else project.ids.generate_trace_id()
        flags = parent.span_context.trace_flags if parent else _SAMPLED
        span_context = SpanContext(trace_id, project.ids.generate_span_id(), is_remote=True, trace_flags=flags)
        start = {
            "name": span_title,
            "kind": kind,
            "type": event.type,
            "attributes": attributes,
            "parent": [f"{parent.span_context.span_id:016x}", int(parent.span_context.trace_flags)] if parent else None,
        }
        self.store.open_run(project.name, event.run_id, span_context, conversation, event.timestamp_ns, start)

    def _end(self, project: Project, app_key: str, event: Event) -> None:
        opened = self.store.close_run(project.name, event.run_id)
        if opened is None:
            if self._duplicate(project, event):
                return
            # The start never came (or was pruned): record what the end says, as an instant.
            self._start(project, app_key, event)
            opened = self.store.close_run(project.name, event.run_id)
            if opened is None:
                return
        self._finish(project, opened, event, event.timestamp_ns, unfinished=False)

    def _finish(self, project: Project, opened: OpenRun, event: Event | None, end_ns: int, *, unfinished: bool) -> None:
        start = opened.start
        runtime = project.runtime
        attributes = dict(start["attributes"])
        if event is not None:
            attributes.update(self._end_attributes(start["type"], event, runtime.policy))
        if unfinished:
            attributes[LUNARY_RUN_UNFINISHED] = True
        if start["parent"]:
            parent_span = SpanContext(opened.span_context.trace_id, int(start["parent"][0], 16), is_remote=True, trace_flags=TraceFlags(start["parent"][1]))
            parent = context_of(parent_span)
        else:
            parent = NEW_TRACE
        error = None
        if event is not None and event.kind == "error":
            reported = event.get("error")
            message = str(reported.get("message") if isinstance(reported, Mapping) else reported or "")
            stack = reported.get("stack") if isinstance(reported, Mapping) else None
            error = ReportedError(error_type(reported), message, stack if isinstance(stack, str) else None)
        with project.ids.forced(opened.span_context.trace_id, opened.span_context.span_id):
            _record.emit(
                runtime,
                start["name"],
                attributes,
                parent,
                start_ns=min(opened.started_ns, end_ns),
                end_ns=max(opened.started_ns, end_ns),
                kind=SpanKind.CLIENT if start["kind"] == "client" else SpanKind.INTERNAL,
                error=error,
            )
        self.store.put(project.name, opened.run_id, opened.span_context, opened.conversation_id, "run")

    # --- runs that never end -------------------------------------------------------------
    def close_stale_runs(self, now_ns: int | None = None) -> int:
        """End turns open longer than the turn timeout (``lunary.turn.ended_by=timeout``, as in
        the SDK) and close runs open longer than the run timeout, marked ``lunary.run.unfinished``."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        closed = 0
        self.store.begin()
        try:
            turn_cutoff = now_ns - int(self.settings.turn_timeout * 1e9)
            for project_name, run_id in self.store.open_before(turn_cutoff, run_id_prefix=TURN_KEY_PREFIX):
                opened = self.store.close_run(project_name, run_id)
                if opened is not None:
                    self._end_turn(self.project(project_name), opened, _turns.TIMEOUT, {}, now_ns)
            if math.isfinite(self.run_timeout_s):
                run_cutoff = now_ns - int(self.run_timeout_s * 1e9)
                for project_name, run_id in self.store.open_before(run_cutoff, run_id_prefix=TURN_KEY_PREFIX, prefixed=False):
                    opened = self.store.close_run(project_name, run_id)
                    if opened is not None:
                        self._finish(self.project(project_name), opened, None, now_ns, unfinished=True)
                        closed += 1
        except BaseException:
            self.store.rollback()
            raise
        self.store.commit()
        self.counts["unfinished"] += closed
        return closed
