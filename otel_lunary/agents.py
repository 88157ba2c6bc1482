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

from otel_lunary._content import to_json
from otel_lunary._health import never_raises
from otel_lunary._record import AGENT, CHAIN, TOOL, Operation, RunKind

F = TypeVar("F", bound=Callable[..., Any])


def _arguments_json(signature: inspect.Signature | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    if signature is not None:
        try:
            return to_json(dict(signature.bind_partial(*args, **kwargs).arguments))
        except TypeError:
            pass
    return to_json({"args": list(args), "kwargs": kwargs})


def _decorate(kind: RunKind, func: Callable[..., Any], name: str | None, options: dict[str, Any]) -> Callable[..., Any]:
    own_name = getattr(func, "__name__", None)
    fallback_name = own_name if isinstance(own_name, str) else "anonymous"
    try:
        signature: inspect.Signature | None = inspect.signature(func)
    except (TypeError, ValueError):
        signature = None
    span_title, base = kind.start(fallback_name, {})
    # options whose str() raises must not break the app's import: recorded without them
    with never_raises(f"unusable options for run {fallback_name}; recorded without them", kind="invalid_arguments"):
        span_title, base = kind.start(str(name) if name else fallback_name, options)

    def start(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Operation:
        operation = Operation(span_title, SpanKind.INTERNAL, dict(base))
        policy = operation.policy
        if policy is not None and policy.capture:
            operation.set(kind.input(_arguments_json(signature, args, kwargs), policy))
        return operation

    def succeed(operation: Operation, result: Any) -> None:
        policy = operation.policy
        if policy is not None:
            operation.set(kind.output(result, policy))
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


def _decorator(kind: RunKind, name: Any, options: dict[str, Any]) -> Any:
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
