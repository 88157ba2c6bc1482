"""Reading export settings: explicit argument > environment variable > default.

An invalid explicit value raises ``ValueError`` (a programming error, caught at
``configure()``); an invalid environment value logs one warning and falls back to the
default (the environment belongs to the deployment, and tracking must not break the app).
"""

from __future__ import annotations

import logging
import os
from urllib.parse import urlparse

_logger = logging.getLogger("otel_lunary.export")


def env_str(name: str) -> str | None:
    """The stripped value of ``name``, or None when unset or blank."""
    value = os.environ.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def warn_env(name: str, value: object, why: str, fallback: object) -> None:
    _logger.warning("Ignoring %s=%r: %s; using %r", name, value, why, fallback)


def resolve_int(explicit: int | None, env: str, default: int, minimum: int, what: str) -> int:
    """An integer setting >= ``minimum``."""
    if explicit is not None:
        if isinstance(explicit, bool) or not isinstance(explicit, int) or explicit < minimum:
            raise ValueError(f"{what} must be an integer >= {minimum}, got {explicit!r}")
        return explicit
    raw = env_str(env)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        warn_env(env, raw, "not an integer", default)
        return default
    if value < minimum:
        warn_env(env, raw, f"must be >= {minimum}", default)
        return default
    return value


def resolve_float(explicit: float | None, env: str | None, default: float | None, minimum: float, what: str) -> float | None:
    """A float setting >= ``minimum`` (``env`` None: no environment variable)."""
    if explicit is not None:
        if isinstance(explicit, bool) or not isinstance(explicit, (int, float)) or not explicit >= minimum:
            raise ValueError(f"{what} must be a number >= {minimum}, got {explicit!r}")
        return float(explicit)
    if not env:
        return default
    raw = env_str(env)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        warn_env(env, raw, "not a number", default)
        return default
    if not value >= minimum:
        warn_env(env, raw, f"must be >= {minimum}", default)
        return default
    return value


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
