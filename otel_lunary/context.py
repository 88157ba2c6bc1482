"""What the enclosed code runs under: a message (``parent``), a user (``identify``), tags.

``with lunary.parent(msg_id):`` makes a message the parent of everything inside.

It makes the message's span the current OTel span, so any span started inside (an LLM
call, an agent, an HTTP request, from any instrumentation) nests under the message in its
trace, and it sets the conversation so those spans carry ``gen_ai.conversation.id``.
Context variables make it safe across threads and asyncio tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

from otel_lunary import _health, _state
from otel_lunary._content import to_string_list
from otel_lunary._health import never_raises

_RESOLVE = never_raises("parent() could not read the message id", kind="invalid_arguments")
_TAGS = never_raises("tags() got a value it cannot turn into text; ignored", kind="invalid_arguments")


class parent:  # noqa: N801 - Lunary's name, used as `with lunary.parent(...)`
    """Context manager (sync or async) nesting the enclosed work under a message."""

    def __init__(self, message_id: str | None) -> None:
        self._message_id = message_id
        self._stack = _state.ContextStack()

    def __enter__(self) -> parent:
        target = None
        with _RESOLVE:
            target = _state.resolve(self._message_id)
        if target is None:
            _health.report("unknown_parent", "otel_lunary: parent(%r) is not a message id this process can link to", self._message_id)
            return self
        self._stack.enter(_state.context_of(target.span_context), target.conversation_id, explicit=True)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stack.exit()

    async def __aenter__(self) -> parent:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stack.exit()


class _ContextValue:
    """Set a context variable for a ``with`` block (sync or async) and restore it after."""

    def __init__(self, var: ContextVar[Any], value: Any) -> None:
        self._var = var
        self._value = value
        self._token: Token[Any] | None = None

    def __enter__(self) -> None:
        self._token = self._var.set(self._value)

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            try:
                self._var.reset(self._token)
            except ValueError:  # left in another context: never mask the app's error
                self._var.set(None)
            self._token = None

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()


def identify(user_id: str, user_props: Mapping[str, Any] | None = None) -> _ContextValue:
    """Lunary's ``identify``: LLM calls and runs inside the block are attributed to this user."""
    return _ContextValue(_state.identity, (user_id, user_props))


def tags(tags: list[str]) -> _ContextValue:  # noqa: A001 - Lunary's name
    """Lunary's ``tags``: LLM calls and runs inside the block carry these tags."""
    values: list[str] = []
    with _TAGS:
        values = to_string_list(tags)
    return _ContextValue(_state.ambient_tags, values)
