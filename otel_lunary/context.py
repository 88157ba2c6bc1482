"""``with lunary.parent(msg_id):`` makes a message the parent of everything inside.

It makes the message's span the current OTel span, so any span started inside (an LLM
call, an agent, an HTTP request, from any instrumentation) nests under the message in its
trace, and it sets the conversation so those spans carry ``gen_ai.conversation.id``.
Context variables make it safe across threads and asyncio tasks.
"""

from __future__ import annotations

from types import TracebackType
from otel_lunary import _health, _index
from otel_lunary._context_stack import ContextStack
from otel_lunary._spans import context_of


class parent:  # noqa: N801 - Lunary's name, used as `with lunary.parent(...)`
    """Context manager (sync or async) nesting the enclosed work under a message."""

    def __init__(self, message_id: str) -> None:
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
