"""The boundary of every public tracking call: nothing escapes into the application."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from otel_lunary import _health

F = TypeVar("F", bound=Callable[..., Any])


def never_raises(default: Any = None) -> Callable[[F], F]:
    """Return ``default`` instead of raising; count and log the failure."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except Exception:  # noqa: BLE001 - the whole point of this boundary
                _health.report("internal_errors", "otel_lunary: %s failed and was skipped", func.__qualname__, exc_info=True)
                return default

        return guarded  # type: ignore[return-value]

    return decorate
