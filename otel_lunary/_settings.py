"""Reading settings, the one way: explicit argument > environment variable > default.

A wrong explicit argument is a programmer error and raises ``ValueError`` at setup; a
wrong environment value is an operator's typo in a running system, so it logs a warning
and falls back to the default rather than taking the application down. Export
(``otel_lunary.export``), the bridge and the tracking calls all read their settings
through the helpers here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import urlparse

logger = logging.getLogger("otel_lunary")

CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
MAX_CONTENT_LENGTH_ENV = "OTEL_LUNARY_MAX_CONTENT_LENGTH"
DIALECTS_ENV = "OTEL_LUNARY_DIALECTS"
TURN_TIMEOUT_ENV = "OTEL_LUNARY_TURN_TIMEOUT"
DEFAULT_MAX_CONTENT_LENGTH = 32768
# How long a turn waits for its reply before it ends unanswered (conventions/README.md, decision 2).
DEFAULT_TURN_TIMEOUT_S = 300.0
MAX_NAME_LENGTH_ENV = "OTEL_LUNARY_MAX_NAME_LENGTH"
MAX_TAGS_ENV = "OTEL_LUNARY_MAX_TAGS"
MAX_METADATA_LENGTH_ENV = "OTEL_LUNARY_MAX_METADATA_LENGTH"
OPENINFERENCE = "openinference"
LANGFUSE = "langfuse"
DIALECTS = (OPENINFERENCE, LANGFUSE)

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

# Where a turn (a user message) starts: a new trace linked to the current span, or under it.
TurnParent = Literal["new_trace", "current_span"]
TURN_PARENTS: tuple[TurnParent, ...] = ("new_trace", "current_span")
TURN_PARENT_ENV = "OTEL_LUNARY_TURN_PARENT"
DEFAULT_TURN_PARENT: TurnParent = "new_trace"
CURRENT_SPAN: TurnParent = "current_span"

# Whether lunary.monitor records its own LLM span when something else records the call.
MonitorSpans = Literal["auto", "always", "never"]
MONITOR_SPANS: tuple[MonitorSpans, ...] = ("auto", "always", "never")
MONITOR_SPANS_ENV = "OTEL_LUNARY_MONITOR_SPANS"
DEFAULT_MONITOR_SPANS: MonitorSpans = "auto"


# --- the environment ----------------------------------------------------------------------


def env_str(name: str) -> str | None:
    """The stripped value of ``name``, or None when unset or blank."""
    value = os.environ.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def warn_env(name: str, value: object, why: str, fallback: object) -> None:
    logger.warning("otel_lunary: ignoring %s=%r: %s; using %r", name, value, why, fallback)


def split_names(value: str | Iterable[str]) -> list[str]:
    """A comma-separated string (or a sequence) of names, lower-cased, blanks dropped, in order."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return [name for name in (str(item).strip().lower() for item in items) if name]


def _env_number(kind: type[int] | type[float], env: str) -> tuple[str | None, Any]:
    """``env``'s raw value (None: unset) and that value as ``kind`` (None: not one); what a
    bad value means (warn and fall back, or refuse) is the caller's decision."""
    raw = env_str(env)
    if raw is None:
        return None, None
    try:
        return raw, kind(raw)
    except ValueError:
        return raw, None


def _resolve_number(kind: type[int] | type[float], noun: str, explicit: Any, env: str | None, default: Any, minimum: float, what: str) -> Any:
    """A number of ``kind`` >= ``minimum``: explicit (checked) > ``env`` > ``default``."""
    if explicit is not None:
        accepted = (int,) if kind is int else (int, float)
        if isinstance(explicit, bool) or not isinstance(explicit, accepted) or not explicit >= minimum:
            raise ValueError(f"{what} must be {noun} >= {minimum}, got {explicit!r}")
        return kind(explicit)
    if not env:
        return default
    raw, value = _env_number(kind, env)
    if raw is None:
        return default
    if value is None:
        warn_env(env, raw, f"not {noun}", default)
        return default
    if not value >= minimum:
        warn_env(env, raw, f"must be >= {minimum}", default)
        return default
    return value


def resolve_int(explicit: int | None, env: str, default: int, minimum: int, what: str) -> int:
    """An integer setting >= ``minimum``."""
    return int(_resolve_number(int, "an integer", explicit, env, default, minimum, what))


def resolve_float(explicit: float | None, env: str | None, default: float | None, minimum: float, what: str) -> float | None:
    """A float setting >= ``minimum`` (``env`` None: no environment variable)."""
    value = _resolve_number(float, "a number", explicit, env, default, minimum, what)
    return None if value is None else float(value)


def command_setting(kind: type[int] | type[float], explicit: float | None, env: str, default: float, what: str) -> Any:
    """A positive, finite number of ``kind`` for a command (replay): explicit > ``env`` > default.

    Unlike a tracking setting, which warns and falls back so the host app runs on, a bad
    value here raises ``ValueError`` naming the variable: the person who ran the command is
    there to fix it, and a guess could read a huge file whole or wait forever.
    """
    noun = "a positive integer" if kind is int else "a positive number"
    value: Any = explicit
    if value is None:
        raw, value = _env_number(kind, env)
        if raw is None:
            return default
        if value is None:
            raise ValueError(f"{env} must be {noun}, got {raw!r}")
    accepted = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, accepted) or not 0 < value < float("inf"):
        raise ValueError(f"{what} ({env}) must be {noun}, got {value!r}")
    return kind(value)


def url_problem(url: str) -> str | None:
    """Why ``url`` is not a usable http(s) endpoint URL, or None when it is."""
    try:
        parsed = urlparse(url)
        parsed.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as error:
        return str(error)
    if parsed.scheme not in ("http", "https"):
        return "the scheme must be http or https"
    if not parsed.hostname:
        return "it has no host"
    return None


# --- the tracking calls' settings -----------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What every tracking call reads: content capture and its bounds, backend dialects,
    how long a turn waits for its reply."""

    capture_content: bool = True
    redact: Redactor | None = None
    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH
    dialects: frozenset[str] = frozenset()
    turn_parent: TurnParent = DEFAULT_TURN_PARENT
    turn_timeout: float = DEFAULT_TURN_TIMEOUT_S


def _capture_from_env() -> bool:
    raw = env_str(CAPTURE_CONTENT_ENV)
    if raw is None:
        return True
    value = _CAPTURE_VALUES.get(raw.lower())
    if value is None:
        warn_env(CAPTURE_CONTENT_ENV, raw, "expected true/false or NO_CONTENT/SPAN_ONLY/EVENT_ONLY/SPAN_AND_EVENT", True)
        return True
    return value


def resolve_dialects(value: str | Iterable[str] | None) -> frozenset[str]:
    """The dialects to emit: explicit ``value`` > ``OTEL_LUNARY_DIALECTS`` > none ("none" names none)."""
    if value is not None:
        if not isinstance(value, (str, Iterable)):
            raise ValueError(f"dialects must be a name or a list of names, got {value!r}")
        chosen = set(split_names(value)) - {"none"}
        unknown = sorted(chosen - set(DIALECTS))
        if unknown:
            raise ValueError(f"unknown dialect {', '.join(unknown)}: use {', '.join(DIALECTS)}")
        return frozenset(chosen)
    raw = env_str(DIALECTS_ENV)
    if raw is None:
        return frozenset()
    chosen = set(split_names(raw)) - {"none"}
    known = chosen & set(DIALECTS)
    if known != chosen:
        warn_env(DIALECTS_ENV, raw, f"dialects are {', '.join(DIALECTS)}", sorted(known))
    return frozenset(known)


def _resolve_choice(explicit: str | None, env: str, choices: tuple[str, ...], default: str, what: str) -> str:
    """One of ``choices``: explicit (a wrong one raises) > ``env`` (a wrong one warns) > default."""
    if explicit is not None:
        value = str(explicit).strip().lower()
        if value not in choices:
            raise ValueError(f"{what} must be one of {', '.join(choices)}, not {explicit!r}")
        return value
    raw = env_str(env)
    if raw is None:
        return default
    if raw.lower() not in choices:
        warn_env(env, raw, f"expected one of {', '.join(choices)}", default)
        return default
    return raw.lower()


def resolve_turn_parent(explicit: str | None) -> TurnParent:
    """``configure(turn_parent=...)`` > ``OTEL_LUNARY_TURN_PARENT`` > ``new_trace``."""
    return cast(TurnParent, _resolve_choice(explicit, TURN_PARENT_ENV, TURN_PARENTS, DEFAULT_TURN_PARENT, "turn_parent"))


def resolve_monitor_spans(explicit: str | None) -> MonitorSpans:
    """``monitor(client, spans=...)`` > ``OTEL_LUNARY_MONITOR_SPANS`` > ``auto``."""
    return cast(MonitorSpans, _resolve_choice(explicit, MONITOR_SPANS_ENV, MONITOR_SPANS, DEFAULT_MONITOR_SPANS, "spans"))


def resolve_settings(
    *,
    capture_content: bool | None = None,
    redact: Redactor | None = None,
    max_content_length: int | None = None,
    dialects: str | Iterable[str] | None = None,
    turn_parent: str | None = None,
    turn_timeout: float | None = None,
) -> Settings:
    if capture_content is not None and not isinstance(capture_content, bool):
        raise ValueError(f"capture_content must be True, False or None, not {capture_content!r}")
    if redact is not None and not callable(redact):
        raise ValueError(f"redact must be a callable taking and returning a str, not {redact!r}")
    return Settings(
        capture_content=_capture_from_env() if capture_content is None else capture_content,
        redact=redact,
        max_content_length=resolve_int(max_content_length, MAX_CONTENT_LENGTH_ENV, DEFAULT_MAX_CONTENT_LENGTH, 1, "max_content_length"),
        dialects=resolve_dialects(dialects),
        turn_parent=resolve_turn_parent(turn_parent),
        turn_timeout=resolve_float(turn_timeout, TURN_TIMEOUT_ENV, DEFAULT_TURN_TIMEOUT_S, 0.0, "turn_timeout") or 0.0,
    )


# --- bounds on what callers control besides content ---------------------------------------


@dataclass(frozen=True)
class Limits:
    """The longest name or id, the most tags and the longest metadata JSON a span carries
    (see ``otel_lunary._bounds``); content has its own bound, ``max_content_length``."""

    max_name_length: int = 256
    max_tags: int = 64
    max_metadata_length: int = 8192


# A cut id keeps a 16-character hash and a marker: shorter limits leave no room for a prefix.
MIN_NAME_LENGTH = 32


def resolve_limits(max_name_length: int | None = None, max_tags: int | None = None, max_metadata_length: int | None = None) -> Limits:
    """Each limit: explicit argument > ``OTEL_LUNARY_MAX_*`` > default."""
    default = Limits()
    return Limits(
        max_name_length=resolve_int(max_name_length, MAX_NAME_LENGTH_ENV, default.max_name_length, MIN_NAME_LENGTH, "max_name_length"),
        max_tags=resolve_int(max_tags, MAX_TAGS_ENV, default.max_tags, 0, "max_tags"),
        max_metadata_length=resolve_int(
            max_metadata_length, MAX_METADATA_LENGTH_ENV, default.max_metadata_length, 2, "max_metadata_length"
        ),
    )
