"""``lunary.monitor(client)``: GenAI inference spans for the real ``openai`` client.

Wraps ``client.chat.completions.create`` on that client instance (sync or async,
streaming or not) and accepts Lunary's extra keyword arguments (``parent``, ``user_id``,
``user_props``, ``tags``, ``metadata``), which never reach OpenAI. ``parent=msg_id``
nests the call under the message, in the message's trace.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

from opentelemetry.trace import SpanKind

from otel_lunary import _health
from otel_lunary._content import ContentPolicy, genai_message
from otel_lunary._operation import Operation
from otel_lunary._serialize import to_json
from otel_lunary._spans import span_name
from otel_lunary.attributes import (
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OPERATION_NAME,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MAX_TOKENS,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_REQUEST_TEMPERATURE,
    GEN_AI_REQUEST_TOP_P,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    LUNARY_CONTENT_TRUNCATED,
    SPAN_NAME_GEN_AI_INFERENCE_CLIENT,
    SERVER_ADDRESS,
    SERVER_PORT,
    GenAiOperationNameValues,
)
from otel_lunary.context import with_run_options

PROVIDER = "openai"
CHAT = GenAiOperationNameValues.CHAT.value
_WRAPPED = "_otel_lunary_wrapped"
_REQUEST_NUMBERS = (
    ("temperature", GEN_AI_REQUEST_TEMPERATURE, float),
    ("top_p", GEN_AI_REQUEST_TOP_P, float),
    ("max_tokens", GEN_AI_REQUEST_MAX_TOKENS, int),
    ("max_completion_tokens", GEN_AI_REQUEST_MAX_TOKENS, int),
)


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    dump = getattr(value, "model_dump", None)
    return dump() if callable(dump) else {}


def _server(client: Any) -> dict[str, Any]:
    url = getattr(client, "base_url", None)
    host, port = getattr(url, "host", None), getattr(url, "port", None)
    found: dict[str, Any] = {}
    if host:
        found[SERVER_ADDRESS] = host
    if port:
        found[SERVER_PORT] = int(port)
    return found


def request_attributes(model: str, params: Mapping[str, Any], lunary_options: Mapping[str, Any]) -> dict[str, Any]:
    """The GenAI inference span's request attributes (shared with the bridge)."""
    attributes: dict[str, Any] = {
        GEN_AI_OPERATION_NAME: CHAT,
        GEN_AI_PROVIDER_NAME: PROVIDER,
        GEN_AI_REQUEST_MODEL: model,
    }
    for key, attribute, cast in _REQUEST_NUMBERS:
        value = params.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            attributes[attribute] = cast(value)
    return with_run_options(attributes, lunary_options)


def inference_span_name(model: str) -> str:
    return span_name(SPAN_NAME_GEN_AI_INFERENCE_CLIENT, {GEN_AI_OPERATION_NAME: CHAT, GEN_AI_REQUEST_MODEL: model}).strip()


def input_messages_attributes(messages: Any, policy: ContentPolicy) -> dict[str, Any]:
    """``gen_ai.input.messages`` for a list of OpenAI-style messages (capture on)."""
    if not isinstance(messages, list):
        return {}
    structured = [genai_message(_as_dict(m), policy, output=False) for m in messages]
    return {GEN_AI_INPUT_MESSAGES: to_json(structured)}


def _start(kwargs: dict[str, Any], server: dict[str, Any], lunary_options: dict[str, Any]) -> Operation:
    """The call's span; arguments it cannot read (their ``str`` raises) leave the call unrecorded."""
    try:
        model = str(kwargs.get("model", ""))
        attributes = {**request_attributes(model, kwargs, lunary_options), **server}
        name = inference_span_name(model)
    except Exception:  # noqa: BLE001 - the app's objects; tracking never raises into the app
        _health.report("invalid_arguments", "otel_lunary: could not read an LLM call's arguments; call not recorded", exc_info=True)
        return Operation.unrecorded()
    operation = Operation(name, SpanKind.CLIENT, attributes, lunary_options.get("parent"))
    if operation.span is not None and operation.policy.capture:
        try:
            operation.set(input_messages_attributes(kwargs.get("messages"), operation.policy))
        except Exception:  # noqa: BLE001 - e.g. a message whose model_dump() raises
            _health.report("internal_errors", "otel_lunary: could not record an LLM call's input", exc_info=True)
    return operation


def _record_response(operation: Operation, response: Any) -> None:
    if operation.span is None:
        return
    attributes: dict[str, Any] = {}
    if getattr(response, "model", None):
        attributes[GEN_AI_RESPONSE_MODEL] = str(response.model)
    if getattr(response, "id", None):
        attributes[GEN_AI_RESPONSE_ID] = str(response.id)
    choices = getattr(response, "choices", None) or []
    reasons = [str(getattr(choice, "finish_reason", None) or "") for choice in choices]
    if reasons:
        attributes[GEN_AI_RESPONSE_FINISH_REASONS] = reasons
    usage = getattr(response, "usage", None)
    if usage is not None:
        for source, attribute in (("prompt_tokens", GEN_AI_USAGE_INPUT_TOKENS), ("completion_tokens", GEN_AI_USAGE_OUTPUT_TOKENS)):
            value = getattr(usage, source, None)
            if isinstance(value, int):
                attributes[attribute] = value
    if operation.policy.capture and choices:
        outputs = []
        for choice, reason in zip(choices, reasons):
            structured = genai_message(_as_dict(getattr(choice, "message", None)), operation.policy, output=True)
            structured["finish_reason"] = reason or structured["finish_reason"]
            outputs.append(structured)
        attributes[GEN_AI_OUTPUT_MESSAGES] = to_json(outputs)
        if operation.policy.truncated:
            attributes[LUNARY_CONTENT_TRUNCATED] = True
    operation.set(attributes)


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

    def __init__(self, operation: Operation) -> None:
        self.operation = operation
        self.chunks = _ChunkAccumulator()
        # A stream read to its end and then closed (``with``, ``close()``) ends twice:
        # the second end must not rebuild the response the span no longer takes.
        self.ended = False

    def on_chunk(self, chunk: Any) -> None:
        try:
            self.chunks.add(chunk)
        except Exception:  # noqa: BLE001
            _health.report("internal_errors", "otel_lunary: could not read a stream chunk", exc_info=True)

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
        if self.ended:
            return
        self.ended = True
        if error is not None:
            self.operation.fail(error)
            return
        try:
            _record_response(self.operation, self.chunks.response())
        except Exception:  # noqa: BLE001
            _health.report("internal_errors", "otel_lunary: could not record a stream", exc_info=True)
        self.operation.finish()


class _StreamProxy:
    """Base of the stream wrappers: everything not overridden goes to the real stream."""

    def __init__(self, stream: Any, recorder: _StreamRecorder) -> None:
        self._stream = stream
        self._recorder = recorder

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __del__(self) -> None:
        self._recorder.operation.finish()


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


def _completed(operation: Operation, response: Any, streaming: bool, stream_type: type[_StreamProxy]) -> Any:
    if streaming:
        return stream_type(response, _StreamRecorder(operation))
    try:
        _record_response(operation, response)
    except Exception:  # noqa: BLE001
        _health.report("internal_errors", "otel_lunary: could not record a response", exc_info=True)
    operation.finish()
    return response


def _wrap_sync(original: Any, server: dict[str, Any]) -> Any:
    @functools.wraps(original)
    def create(*args: Any, **kwargs: Any) -> Any:
        options = _split(kwargs)
        operation = _start(kwargs, server, options)
        with operation.running():
            response = original(*args, **kwargs)
        return _completed(operation, response, bool(kwargs.get("stream")), SyncStream)

    setattr(create, _WRAPPED, True)
    return create


def _wrap_async(original: Any, server: dict[str, Any]) -> Any:
    @functools.wraps(original)
    async def create(*args: Any, **kwargs: Any) -> Any:
        options = _split(kwargs)
        operation = _start(kwargs, server, options)
        with operation.running():
            response = await original(*args, **kwargs)
        return _completed(operation, response, bool(kwargs.get("stream")), AsyncStream)

    setattr(create, _WRAPPED, True)
    return create


def monitor(client: Any) -> Any:
    """Record every chat completion of this OpenAI client (sync or async); returns the client."""
    try:
        completions = client.chat.completions
        original = completions.create
        if getattr(original, _WRAPPED, False):
            return client
        # openai's async resources are not always coroutine functions (decorated), so
        # the resource class tells too.
        is_async = inspect.iscoroutinefunction(original) or type(completions).__name__.startswith("Async")
        wrap = _wrap_async if is_async else _wrap_sync
        completions.create = wrap(original, _server(client))
    except Exception:  # noqa: BLE001 - an unknown client is left as it is
        _health.report("invalid_arguments", "otel_lunary: monitor() could not wrap %s", type(client).__name__, exc_info=True)
    return client
