"""Settings of the tracking calls, resolved once: explicit argument > env > default.

A wrong explicit argument is a programmer error and raises ``ValueError`` at setup; a
wrong environment value is an operator's typo in a running system, so it logs a warning
and falls back to the default rather than taking the application down.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from otel_lunary.dialects import resolve_dialects

logger = logging.getLogger("otel_lunary")

CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
MAX_CONTENT_LENGTH_ENV = "OTEL_LUNARY_MAX_CONTENT_LENGTH"
DEFAULT_MAX_CONTENT_LENGTH = 32768

# Legacy booleans and the values of the gen_ai_latest_experimental opt-in. Content goes
# on spans only, so EVENT_ONLY means "not on spans": off for us.
_CAPTURE_VALUES = {
    "true": True,
    "1": True,
    "span_only": True,
    "span_and_event": True,
    "false": False,
    "0": False,
    "no_content": False,
    "event_only": False,
}

Redactor = Callable[[str], str]


@dataclass(frozen=True)
class Settings:
    capture_content: bool = True
    redact: Redactor | None = None
    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH
    dialects: frozenset[str] = frozenset()


def _capture_from_env() -> bool:
    raw = os.environ.get(CAPTURE_CONTENT_ENV)
    if raw is None or raw.strip() == "":
        return True
    value = _CAPTURE_VALUES.get(raw.strip().lower())
    if value is None:
        logger.warning("otel_lunary: ignoring %s=%r (expected true/false or NO_CONTENT/SPAN_ONLY/EVENT_ONLY/SPAN_AND_EVENT)", CAPTURE_CONTENT_ENV, raw)
        return True
    return value


def _max_length_from_env() -> int:
    raw = os.environ.get(MAX_CONTENT_LENGTH_ENV)
    if raw is None or raw.strip() == "":
        return DEFAULT_MAX_CONTENT_LENGTH
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        logger.warning("otel_lunary: ignoring %s=%r (expected a positive integer)", MAX_CONTENT_LENGTH_ENV, raw)
        return DEFAULT_MAX_CONTENT_LENGTH
    return value


def resolve_settings(
    *,
    capture_content: bool | None = None,
    redact: Redactor | None = None,
    max_content_length: int | None = None,
    dialects: str | Iterable[str] | None = None,
) -> Settings:
    if capture_content is not None and not isinstance(capture_content, bool):
        raise ValueError(f"capture_content must be True, False or None, not {capture_content!r}")
    if redact is not None and not callable(redact):
        raise ValueError(f"redact must be a callable taking and returning a str, not {redact!r}")
    if max_content_length is not None and (
        isinstance(max_content_length, bool) or not isinstance(max_content_length, int) or max_content_length <= 0
    ):
        raise ValueError(f"max_content_length must be a positive int, not {max_content_length!r}")
    return Settings(
        capture_content=_capture_from_env() if capture_content is None else capture_content,
        redact=redact,
        max_content_length=_max_length_from_env() if max_content_length is None else max_content_length,
        dialects=resolve_dialects(dialects),
    )
