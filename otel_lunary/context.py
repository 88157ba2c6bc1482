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
from otel_lunary import _health, _index
from otel_lunary._context_stack import ContextStack
from otel_lunary._serialize import to_json, to_string_list
from otel_lunary._spans import context_of
from otel_lunary.attributes import LUNARY_METADATA, LUNARY_TAGS, LUNARY_USER_PROPS, USER_ID


class parent:  # noqa: N801 - Lunary's name, used as `with lunary.parent(...)`
    """Context manager (sync or async) nesting the enclosed work under a message."""

    def __init__(self, message_id: str | None) -> None:
        self._message_id = message_id
        self._stack = ContextStack()

    def __enter__(self) -> parent:
        try:
            target = _index.resolve(self._message_id)
        except Exception:  # noqa: BLE001 - tracking never raises into the app
            target = None
        if target is None:
            _health.report("unknown_parent", "otel_lunary: parent(%r) is not a message id this process can link to", self._message_id)
            return self
        self._stack.enter(context_of(target.span_context), target.conversation_id, explicit=True)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stack.exit()

    async def __aenter__(self) -> parent:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stack.exit()


_identity: ContextVar[tuple[Any, Any] | None] = ContextVar("otel_lunary_identity", default=None)
_tags: ContextVar[list[str] | None] = ContextVar("otel_lunary_tags", default=None)


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
    return _ContextValue(_identity, (user_id, user_props))


def tags(tags: list[str]) -> _ContextValue:  # noqa: A001 - Lunary's name
    """Lunary's ``tags``: LLM calls and runs inside the block carry these tags."""
    try:
        values = to_string_list(tags)
    except Exception:  # noqa: BLE001 - a tag whose str() raises; the block still runs
        _health.report("invalid_arguments", "otel_lunary: tags() got a value it cannot turn into text; ignored")
        values = []
    return _ContextValue(_tags, values)


def with_run_options(attributes: dict[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """Add Lunary's per-call ``user_id``, ``user_props``, ``tags`` and ``metadata`` options,
    which LLM calls, agent/tool/chain runs and the bridge's runs all accept the same way."""
    if options.get("user_id") is not None:
        attributes[USER_ID] = str(options["user_id"])
    if options.get("user_props") is not None:
        attributes[LUNARY_USER_PROPS] = to_json(options["user_props"])
    tags = to_string_list(options.get("tags"))
    if tags:
        attributes[LUNARY_TAGS] = tags
    if options.get("metadata") is not None:
        attributes[LUNARY_METADATA] = to_json(options["metadata"])
    return attributes


def with_ambient_identity(attributes: dict[str, Any]) -> dict[str, Any]:
    """Add the user and tags of enclosing ``identify``/``tags`` blocks; explicit values win."""
    identity = _identity.get()
    if identity is not None:
        user_id, user_props = identity
        if user_id is not None and USER_ID not in attributes:
            attributes[USER_ID] = str(user_id)
        if user_props is not None and LUNARY_USER_PROPS not in attributes:
            attributes[LUNARY_USER_PROPS] = to_json(user_props)
    ambient_tags = _tags.get()
    if ambient_tags:
        attributes[LUNARY_TAGS] = list(dict.fromkeys([*attributes.get(LUNARY_TAGS, ()), *ambient_tags]))
    return attributes
