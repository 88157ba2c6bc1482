"""Entering and leaving a message's context (OTel span + conversation), never raising.

``lunary.parent`` and the spans of ``monitor``/``agent``/``tool`` both make a span
current and set the conversation; restoring must happen in reverse order and must not
mask the application's own exception if the context was left in an odd state.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import Context

from otel_lunary import _health
from otel_lunary._conversation import current_conversation, explicit_parent


class ContextStack:
    __slots__ = ("_entered",)

    def __init__(self) -> None:
        self._entered: list[tuple[ContextVar[Any] | None, Token[Any]]] = []

    def enter(self, context: Context, conversation: str | None, explicit: bool) -> None:
        try:
            self._entered.append((None, otel_context.attach(context)))
            if explicit:
                self._entered.append((explicit_parent, explicit_parent.set(True)))
            if conversation is not None:
                self._entered.append((current_conversation, current_conversation.set(conversation)))
        except Exception:  # noqa: BLE001 - tracking never raises into the app
            _health.report("internal_errors", "otel_lunary: could not enter the message context", exc_info=True)

    def exit(self) -> None:
        while self._entered:
            var, token = self._entered.pop()
            try:
                if var is None:
                    otel_context.detach(token)
                else:
                    var.reset(token)
            except Exception:  # noqa: BLE001 - e.g. left from another task; never mask the app's error
                _health.report("internal_errors", "otel_lunary: could not restore the context", exc_info=True)
