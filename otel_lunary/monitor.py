"""``lunary.monitor(client)``: GenAI inference spans for the real ``openai`` client.

Wraps ``client.chat.completions.create`` on that client instance (sync or async,
streaming or not) and accepts Lunary's extra keyword arguments (``parent``, ``user_id``,
``user_props``, ``tags``, ``metadata``), which never reach OpenAI. ``parent=msg_id``
nests the call under the message, in the message's trace.

One call, one LLM span: when another instrumentation already records the call (openai-v2,
OpenInference, OpenLLMetry, or an enclosing LangChain LLM span), monitor records none and
gives that span the conversation and options instead (``spans="auto"``, the default;
``"always"``/``"never"`` force it; ``OTEL_LUNARY_MONITOR_SPANS``). See
``otel_lunary._other_recorders``.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind

from otel_lunary import _record, _state
from otel_lunary._health import never_raises
from otel_lunary._other_recorders import other_recorder, warn_deferring_once
from otel_lunary._record import NO_FINISH_REASON, Handover, Operation
from otel_lunary._settings import MonitorSpans, resolve_monitor_spans
from otel_lunary.attributes import SERVER_ADDRESS, SERVER_PORT

_WRAPPED = "_otel_lunary_wrapped"
_READ_ARGUMENTS = never_raises("could not read an LLM call's arguments; call not recorded", kind="invalid_arguments")
_RECORD_INPUT = never_raises("could not record an LLM call's input")  # e.g. a message whose model_dump() raises
_RECORD_RESPONSE = never_raises("could not record an LLM call's response")
_READ_CHUNK = never_raises("could not read a stream chunk")
_FIND_RECORDERS = never_raises("could not tell whether another instrumentation records an LLM call")


def _server(client: Any) -> dict[str, Any]:
    url = getattr(client, "base_url", None)
    host, port = getattr(url, "host", None), getattr(url, "port", None)
    found: dict[str, Any] = {}
    if host:
        found[SERVER_ADDRESS] = host
    if port:
        found[SERVER_PORT] = int(port)
    return found


def _start(kwargs: dict[str, Any], server: dict[str, Any], lunary_options: dict[str, Any]) -> Operation:
    """The call's span; arguments it cannot read (their ``str`` raises) leave the call unrecorded."""
    with _READ_ARGUMENTS:
        name, attributes = _record.inference(str(kwargs.get("model", "")), kwargs, lunary_options)
        operation = Operation(name, SpanKind.CLIENT, {**attributes, **server}, lunary_options.get("parent"))
        policy = operation.policy
        if policy is not None and policy.capture:
            with _RECORD_INPUT:
                operation.set(_record.inference_input(kwargs.get("messages"), policy))
        return operation
    return Operation.unrecorded()


def _record_response(operation: Operation, response: Any, time_to_first_chunk_s: float | None = None) -> None:
    """The response's attributes on the call's span, then the span ends. A choice without a
    finish reason (a stream that stopped before the model gave one) reports ``error``."""
    policy = operation.policy
    if policy is not None:
        with _RECORD_RESPONSE:
            choices = getattr(response, "choices", None) or []
            usage = getattr(response, "usage", None)
            prompt, completion = (getattr(usage, name, None) for name in ("prompt_tokens", "completion_tokens"))
            operation.set(
                _record.inference_result(
                    policy,
                    outputs=[_record.as_dict(getattr(choice, "message", None)) for choice in choices],
                    finish_reasons=[str(getattr(choice, "finish_reason", None) or NO_FINISH_REASON) for choice in choices],
                    input_tokens=prompt if isinstance(prompt, int) else None,
                    output_tokens=completion if isinstance(completion, int) else None,
                    response_model=str(response.model) if getattr(response, "model", None) else None,
                    response_id=str(response.id) if getattr(response, "id", None) else None,
                    time_to_first_chunk_s=time_to_first_chunk_s,
                )
            )
    operation.finish()


class _ChunkAccumulator:
    """Rebuilds the response from streamed chunks so a streamed call records like a plain one."""

    def __init__(self) -> None:
        self.id: str | None = None
        self.model: str | None = None
        self.usage: Any = None
        self.choices: dict[int, dict[str, Any]] = {}

    def add(self, chunk: Any) -> None:
        self.id = self.id or getattr(chunk, "id", None)
        self.model = self.model or getattr(chunk, "model", None)
        if getattr(chunk, "usage", None) is not None:
            self.usage = chunk.usage
        for choice in getattr(chunk, "choices", None) or []:
            state = self.choices.setdefault(getattr(choice, "index", 0), {"content": [], "tool_calls": {}, "finish_reason": None, "role": "assistant"})
            delta = getattr(choice, "delta", None)
            content = getattr(delta, "content", None)
            if content:
                state["content"].append(content)
            for call in getattr(delta, "tool_calls", None) or []:
                slot = state["tool_calls"].setdefault(getattr(call, "index", 0), {"id": None, "name": None, "arguments": []})
                slot["id"] = slot["id"] or getattr(call, "id", None)
                function = getattr(call, "function", None)
                name = getattr(function, "name", None)
                if name:
                    slot["name"] = name
                arguments = getattr(function, "arguments", None)
                if arguments:
                    slot["arguments"].append(arguments)
            if getattr(choice, "finish_reason", None):
                state["finish_reason"] = choice.finish_reason

    def response(self) -> Any:
        choices = []
        for index in sorted(self.choices):
            state = self.choices[index]
            calls = [
                {"id": slot["id"], "type": "function", "function": {"name": slot["name"], "arguments": "".join(slot["arguments"])}}
                for _, slot in sorted(state["tool_calls"].items())
            ]
            message = {"role": state["role"], "content": "".join(state["content"]) or None, "tool_calls": calls or None}
            choices.append(SimpleNamespace(message=message, finish_reason=state["finish_reason"]))
        return SimpleNamespace(id=self.id, model=self.model, usage=self.usage, choices=choices)


class _StreamRecorder:
    """What sync and async stream wrappers share: accumulate, finish once."""

    def __init__(self, operation: Operation, requested_at: float) -> None:
        self.operation = operation
        self.chunks = _ChunkAccumulator()
        self.requested_at = requested_at  # time.monotonic() when the request was issued
        self.time_to_first_chunk_s: float | None = None
        # A stream read to its end and then closed (``with``, ``close()``) ends twice:
        # the second end must not rebuild the response the span no longer takes.
        self.ended = False

    def on_chunk(self, chunk: Any) -> None:
        if self.time_to_first_chunk_s is None:
            self.time_to_first_chunk_s = time.monotonic() - self.requested_at
        with _READ_CHUNK:
            self.chunks.add(chunk)

    @contextmanager
    def next_chunk(self) -> Iterator[None]:
        """Around fetching one chunk: the end of the stream or an error finishes the span."""
        try:
            yield
        except (StopIteration, StopAsyncIteration):
            self.on_end()
            raise
        except Exception as error:
            self.on_end(error)
            raise

    def on_end(self, error: BaseException | None = None) -> None:
        """The stream ended: read to its end, closed early, failed, or dropped unclosed.
        Whatever arrived is recorded; choices the model did not finish report ``error``."""
        if self.ended:
            return
        self.ended = True
        if error is not None:
            self.operation.fail(error)
            return
        with _RECORD_RESPONSE:
            _record_response(self.operation, self.chunks.response(), self.time_to_first_chunk_s)
        self.operation.finish()


class _StreamProxy:
    """Base of the stream wrappers: everything not overridden goes to the real stream."""

    def __init__(self, stream: Any, recorder: _StreamRecorder) -> None:
        self._stream = stream
        self._recorder = recorder

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __del__(self) -> None:
        # Dropped without being read to its end or closed: the span still ends with
        # what arrived (never raising from a finaliser).
        with _RECORD_RESPONSE:
            self._recorder.on_end()


class SyncStream(_StreamProxy):
    def __iter__(self) -> SyncStream:
        return self

    def __next__(self) -> Any:
        with self._recorder.next_chunk():
            chunk = next(self._stream)
        self._recorder.on_chunk(chunk)
        return chunk

    def __enter__(self) -> SyncStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._recorder.on_end()
        self._stream.close()


class AsyncStream(_StreamProxy):
    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> Any:
        with self._recorder.next_chunk():
            chunk = await self._stream.__anext__()
        self._recorder.on_chunk(chunk)
        return chunk

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        self._recorder.on_end()
        await self._stream.close()


LUNARY_OPTIONS = ("parent", "user_id", "user_props", "tags", "metadata", "name")


def _split(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {key: kwargs.pop(key) for key in LUNARY_OPTIONS if key in kwargs}


def _completed(operation: Operation, response: Any, streaming: bool, stream_type: type[_StreamProxy], requested_at: float) -> Any:
    if streaming:
        return stream_type(response, _StreamRecorder(operation, requested_at))
    _record_response(operation, response)
    return response


class _HandedOverStream:
    """A stream that another instrumentation records and that left its span attached as
    the current context until the stream ends (util-genai does): the call's own context
    is left after theirs, at the end of the stream, so the two are detached in order and
    neither leaks into the application's context."""

    def __init__(self, stream: Any, stack: _state.ContextStack) -> None:
        self._stream = stream
        self._stack: _state.ContextStack | None = stack

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def _leave(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.exit()

    def __del__(self) -> None:
        self._leave()


class _HandedOverSyncStream(_HandedOverStream):
    def __iter__(self) -> _HandedOverSyncStream:
        return self

    def __next__(self) -> Any:
        try:
            return next(self._stream)
        except BaseException:
            self._leave()
            raise

    def __enter__(self) -> _HandedOverSyncStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._leave()


class _HandedOverAsyncStream(_HandedOverStream):
    def __aiter__(self) -> _HandedOverAsyncStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self._stream.__anext__()
        except BaseException:
            self._leave()
            raise

    async def __aenter__(self) -> _HandedOverAsyncStream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        try:
            await self._stream.close()
        finally:
            self._leave()


def _handed_over(stack: _state.ContextStack, entered: Any, response: Any, streaming: bool, stream_type: type[_HandedOverStream]) -> Any:
    """End a handed-over call's context now, or, for a stream whose recorder attached its
    own context on top of ours and keeps it until the stream ends, at the stream's end."""
    if streaming and otel_context.get_current() is not entered:
        return stream_type(response, stack)
    stack.exit()
    return response


class _Calls:
    """What a wrapped ``create`` needs, sync or async: the real ``create`` to call, the
    server, and whether to record a span of its own."""

    def __init__(self, completions: Any, server: dict[str, Any], spans: MonitorSpans) -> None:
        self.completions = completions
        # A ``create`` already set on this instance (someone else's wrapper) is kept;
        # otherwise the class's is looked up at each call, so an instrumentation that
        # patches the class after monitor() is still called, and seen.
        self._pinned = vars(completions).get("create")
        self.server = server
        self.spans = spans

    def original(self) -> Callable[..., Any]:
        if self._pinned is not None:
            return self._pinned  # type: ignore[no-any-return]
        resource = type(self.completions)
        return resource.create.__get__(self.completions, resource)  # type: ignore[no-any-return]

    def handover(self, options: dict[str, Any]) -> Handover | None:
        """A Handover when monitor must not record this call's span, else None."""
        if self.spans == "always":
            return None
        recorder = None
        with _FIND_RECORDERS:
            recorder = other_recorder(self.completions)
        if recorder is None and self.spans == "auto":
            return None
        if recorder is not None:
            warn_deferring_once(recorder.name)
        return Handover(_record.with_run_options({}, options), options.get("parent"), recorder.enclosing if recorder else None)


def _wrap_sync(calls: _Calls, original: Any) -> Any:
    @functools.wraps(original)
    def create(*args: Any, **kwargs: Any) -> Any:
        options = _split(kwargs)
        handover = calls.handover(options)
        if handover is not None:
            stack, entered = handover.enter(), otel_context.get_current()
            try:
                response = calls.original()(*args, **kwargs)
            except BaseException:
                stack.exit()
                raise
            return _handed_over(stack, entered, response, bool(kwargs.get("stream")), _HandedOverSyncStream)
        operation = _start(kwargs, calls.server, options)
        with operation.running():
            requested_at = time.monotonic()  # the request is issued now, inside the span
            response = calls.original()(*args, **kwargs)
        return _completed(operation, response, bool(kwargs.get("stream")), SyncStream, requested_at)

    setattr(create, _WRAPPED, True)
    return create


def _wrap_async(calls: _Calls, original: Any) -> Any:
    @functools.wraps(original)
    async def create(*args: Any, **kwargs: Any) -> Any:
        options = _split(kwargs)
        handover = calls.handover(options)
        if handover is not None:
            stack, entered = handover.enter(), otel_context.get_current()
            try:
                response = await calls.original()(*args, **kwargs)
            except BaseException:
                stack.exit()
                raise
            return _handed_over(stack, entered, response, bool(kwargs.get("stream")), _HandedOverAsyncStream)
        operation = _start(kwargs, calls.server, options)
        with operation.running():
            requested_at = time.monotonic()  # the request is issued now, inside the span
            response = await calls.original()(*args, **kwargs)
        return _completed(operation, response, bool(kwargs.get("stream")), AsyncStream, requested_at)

    setattr(create, _WRAPPED, True)
    return create


def monitor(client: Any, spans: str | None = None) -> Any:
    """Record every chat completion of this OpenAI client (sync or async); returns the client.

    ``spans`` (``OTEL_LUNARY_MONITOR_SPANS``): ``auto`` (default) records the call's LLM span
    unless another instrumentation records it, ``always`` records it anyway, ``never``
    records none (the call still runs under ``parent=``). A wrong value raises ``ValueError``.
    """
    mode = resolve_monitor_spans(spans)
    with never_raises(f"monitor() could not wrap {type(client).__name__}", kind="invalid_arguments"):
        completions = client.chat.completions
        original = completions.create
        if getattr(original, _WRAPPED, False):
            return client
        # openai's async resources are not always coroutine functions (decorated), so
        # the resource class tells too.
        is_async = inspect.iscoroutinefunction(original) or type(completions).__name__.startswith("Async")
        calls = _Calls(completions, _server(client), mode)
        completions.create = (_wrap_async if is_async else _wrap_sync)(calls, original)
    return client  # an unknown client is left as it is
