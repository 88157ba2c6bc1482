"""Run decorators: Lunary's ``agent``/``wrap_agent``, ``tool``/``wrap_tool`` and ``chain``.

Agents and tools produce the GenAI ``invoke_agent {name}`` and ``execute_tool {name}``
spans; chains, which GenAI has no operation for, a ``chain {name}`` span. The span is
current while the function runs, so an LLM call inside nests under it, and under
``with lunary.parent(msg_id)`` the run nests under the message. ``lunary.identify`` and
``lunary.tags`` blocks add their user and tags at call time.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, overload

from opentelemetry.trace import SpanKind

from otel_lunary import _health
from otel_lunary._content import ContentPolicy, text_message_json
from otel_lunary._operation import Operation
from otel_lunary._serialize import to_json
from otel_lunary._spans import span_name
from otel_lunary.attributes import (
    GEN_AI_AGENT_NAME,
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OPERATION_NAME,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_TOOL_CALL_ARGUMENTS,
    GEN_AI_TOOL_CALL_RESULT,
    GEN_AI_TOOL_NAME,
    LUNARY_RUN_NAME,
    LUNARY_SPAN_TYPE,
    SPAN_NAME_GEN_AI_EXECUTE_TOOL_INTERNAL,
    SPAN_NAME_GEN_AI_INVOKE_AGENT_INTERNAL,
    SPAN_NAME_LUNARY_CHAIN,
    GenAiOperationNameValues,
    LunarySpanTypeValues,
)
from otel_lunary.context import with_run_options

F = TypeVar("F", bound=Callable[..., Any])


Recorder = Callable[[ContentPolicy, str], dict[str, Any]]


class _Kind:
    """What differs between run spans: fixed attributes, names, where input/output go."""

    def __init__(self, fixed: dict[str, Any], name_attribute: str, template: str, record_input: Recorder | None, record_output: Recorder | None) -> None:
        self.fixed = fixed
        self.name_attribute = name_attribute
        self.template = template
        self.record_input = record_input
        self.record_output = record_output


AGENT = _Kind(
    {GEN_AI_OPERATION_NAME: GenAiOperationNameValues.INVOKE_AGENT.value},
    GEN_AI_AGENT_NAME,
    SPAN_NAME_GEN_AI_INVOKE_AGENT_INTERNAL,
    lambda policy, text: {GEN_AI_INPUT_MESSAGES: text_message_json("user", policy.text(text), output=False)},
    lambda policy, text: {GEN_AI_OUTPUT_MESSAGES: text_message_json("assistant", policy.text(text), output=True)},
)
TOOL = _Kind(
    {GEN_AI_OPERATION_NAME: GenAiOperationNameValues.EXECUTE_TOOL.value},
    GEN_AI_TOOL_NAME,
    SPAN_NAME_GEN_AI_EXECUTE_TOOL_INTERNAL,
    lambda policy, text: {GEN_AI_TOOL_CALL_ARGUMENTS: policy.text(text)},
    lambda policy, text: {GEN_AI_TOOL_CALL_RESULT: policy.text(text)},
)
# GenAI has no chain operation and no attribute for a chain's input or output.
CHAIN = _Kind({LUNARY_SPAN_TYPE: LunarySpanTypeValues.CHAIN.value}, LUNARY_RUN_NAME, SPAN_NAME_LUNARY_CHAIN, None, None)


def _arguments_json(signature: inspect.Signature | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    if signature is not None:
        try:
            return to_json(dict(signature.bind_partial(*args, **kwargs).arguments))
        except TypeError:
            pass
    return to_json({"args": list(args), "kwargs": kwargs})


def result_text(result: Any) -> str:
    return result if isinstance(result, str) else to_json(result)


def run_attributes(kind: _Kind, run_name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The attributes a run span starts with (shared with the bridge)."""
    return with_run_options({**kind.fixed, kind.name_attribute: run_name}, options)


def run_span_name(kind: _Kind, run_name: str) -> str:
    return span_name(kind.template, {kind.name_attribute: run_name})


def _decorate(kind: _Kind, func: Callable[..., Any], name: str | None, options: dict[str, Any]) -> Callable[..., Any]:
    own_name = getattr(func, "__name__", None)
    fallback_name = own_name if isinstance(own_name, str) else "anonymous"
    try:
        signature: inspect.Signature | None = inspect.signature(func)
    except (TypeError, ValueError):
        signature = None
    try:
        run_name = str(name) if name else fallback_name
        base = run_attributes(kind, run_name, options)
        span_title = run_span_name(kind, run_name)
    except Exception:  # noqa: BLE001 - options whose str() raises must not break the app's import
        _health.report("invalid_arguments", "otel_lunary: unusable options for run %s; recorded without them", fallback_name, exc_info=True)
        base = run_attributes(kind, fallback_name, {})
        span_title = run_span_name(kind, fallback_name)

    def start(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Operation:
        operation = Operation(span_title, SpanKind.INTERNAL, dict(base))
        if operation.span is not None and operation.policy.capture and kind.record_input is not None:
            operation.set(kind.record_input(operation.policy, _arguments_json(signature, args, kwargs)))
        return operation

    def succeed(operation: Operation, result: Any) -> None:
        if operation.span is not None and operation.policy.capture and kind.record_output is not None:
            operation.set(kind.record_output(operation.policy, result_text(result)))
        operation.finish()

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            operation = start(args, kwargs)
            with operation.running():
                result = await func(*args, **kwargs)
            succeed(operation, result)
            return result

        return run_async

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        operation = start(args, kwargs)
        with operation.running():
            result = func(*args, **kwargs)
        succeed(operation, result)
        return result

    return run


def _decorator(kind: _Kind, name: Any, options: dict[str, Any]) -> Any:
    if callable(name):  # used bare: @lunary.agent
        return _decorate(kind, name, None, options)
    return lambda func: _decorate(kind, func, name, options)


Options = Any  # user_id, user_props, tags, metadata; Lunary's app_id is accepted and ignored


@overload
def agent(name: F) -> F: ...
@overload
def agent(name: str | None = None, *, user_id: str | None = None, user_props: Any = None, tags: list[str] | None = None, metadata: Any = None, **lunary_options: Options) -> Callable[[F], F]: ...
def agent(name: Any = None, *, user_id: str | None = None, user_props: Any = None, tags: list[str] | None = None, metadata: Any = None, **lunary_options: Options) -> Any:
    """Decorate a function as an agent run: ``@lunary.agent()`` or ``@lunary.agent("Name")``."""
    return _decorator(AGENT, name, {"user_id": user_id, "user_props": user_props, "tags": tags, "metadata": metadata})


@overload
def tool(name: F) -> F: ...
@overload
def tool(name: str | None = None, *, user_id: str | None = None, user_props: Any = None, tags: list[str] | None = None, metadata: Any = None, **lunary_options: Options) -> Callable[[F], F]: ...
def tool(name: Any = None, *, user_id: str | None = None, user_props: Any = None, tags: list[str] | None = None, metadata: Any = None, **lunary_options: Options) -> Any:
    """Decorate a function as a tool execution: ``@lunary.tool()`` or ``@lunary.tool("name")``."""
    return _decorator(TOOL, name, {"user_id": user_id, "user_props": user_props, "tags": tags, "metadata": metadata})


@overload
def chain(name: F) -> F: ...
@overload
def chain(name: str | None = None, *, user_id: str | None = None, user_props: Any = None, tags: list[str] | None = None, metadata: Any = None, **lunary_options: Options) -> Callable[[F], F]: ...
def chain(name: Any = None, *, user_id: str | None = None, user_props: Any = None, tags: list[str] | None = None, metadata: Any = None, **lunary_options: Options) -> Any:
    """Decorate a function as a chain run (a step of the application): ``@lunary.chain()``."""
    return _decorator(CHAIN, name, {"user_id": user_id, "user_props": user_props, "tags": tags, "metadata": metadata})


def wrap_agent(func: F, name: str | None = None, **options: Any) -> F:
    """Lunary JS's ``wrapAgent``: the agent decorator applied to ``func``."""
    return agent(name, **options)(func)  # type: ignore[no-any-return]


def wrap_tool(func: F, name: str | None = None, **options: Any) -> F:
    """Lunary JS's ``wrapTool``: the tool decorator applied to ``func``."""
    return tool(name, **options)(func)  # type: ignore[no-any-return]
