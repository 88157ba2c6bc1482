"""Bridge settings: explicit argument (CLI flag) > ``OTEL_LUNARY_BRIDGE_*`` env > default.

- ``OTEL_LUNARY_BRIDGE_KEYS``: ``key=project,key2=project2`` (a bare ``key`` maps to
  project ``default``); required: a bridge with no keys accepts nothing.
- ``OTEL_LUNARY_BRIDGE_HOST`` / ``_PORT``: listen address, default ``127.0.0.1:8077``.
- ``OTEL_LUNARY_BRIDGE_CORS_ORIGINS``: ``*`` (default) or comma-separated origins.
- ``OTEL_LUNARY_BRIDGE_STATE``: the SQLite file, default ``./otel-lunary-bridge.sqlite``.
- ``OTEL_LUNARY_BRIDGE_STATE_TTL``: seconds a run id is remembered, default 7 days.
- ``OTEL_LUNARY_BRIDGE_STATE_MAX_ROWS``: per table, default 1,000,000.
- ``OTEL_LUNARY_BRIDGE_RUN_TIMEOUT``: seconds before a run with no end is closed as
  unfinished, default 600.
- ``OTEL_LUNARY_BRIDGE_MAX_BODY``: request body limit in bytes, default 5 MiB.
- ``OTEL_LUNARY_BRIDGE_MAX_EVENTS``: events per request, default 10,000.
- ``OTEL_LUNARY_BRIDGE_MAX_CONNECTIONS``: open connections; requests above it get 503,
  default 1,000.
- ``OTEL_LUNARY_BRIDGE_MAX_PENDING``: spans waiting in the outbox for the exporter; at
  the bound new requests get 503, default 1,000,000.
- ``OTEL_LUNARY_BRIDGE_STATE_BUSY_TIMEOUT``: seconds a request waits for the state
  file's write lock (held by another process) before it is answered 503, default 5.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from otel_lunary._settings import env_str, resolve_float, resolve_int, warn_env

ENV_KEYS = "OTEL_LUNARY_BRIDGE_KEYS"
ENV_HOST = "OTEL_LUNARY_BRIDGE_HOST"
ENV_PORT = "OTEL_LUNARY_BRIDGE_PORT"
ENV_CORS = "OTEL_LUNARY_BRIDGE_CORS_ORIGINS"
ENV_STATE = "OTEL_LUNARY_BRIDGE_STATE"
ENV_STATE_TTL = "OTEL_LUNARY_BRIDGE_STATE_TTL"
ENV_STATE_MAX_ROWS = "OTEL_LUNARY_BRIDGE_STATE_MAX_ROWS"
ENV_RUN_TIMEOUT = "OTEL_LUNARY_BRIDGE_RUN_TIMEOUT"
ENV_MAX_BODY = "OTEL_LUNARY_BRIDGE_MAX_BODY"
ENV_MAX_EVENTS = "OTEL_LUNARY_BRIDGE_MAX_EVENTS"
ENV_MAX_CONNECTIONS = "OTEL_LUNARY_BRIDGE_MAX_CONNECTIONS"
ENV_MAX_PENDING = "OTEL_LUNARY_BRIDGE_MAX_PENDING"
ENV_STATE_BUSY_TIMEOUT = "OTEL_LUNARY_BRIDGE_STATE_BUSY_TIMEOUT"

DEFAULT_PORT = 8077
DEFAULT_PROJECT = "default"


def parse_keys(text: str) -> dict[str, str]:
    """``key=project,key2=project2`` -> {key: project}; raises ValueError when malformed."""
    keys: dict[str, str] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, _, project = item.partition("=")
        key, project = key.strip(), project.strip() or DEFAULT_PROJECT
        if not key:
            raise ValueError(f"app key entry {item!r} has no key (expected key=project)")
        keys[key] = project
    return keys


def parse_origins(text: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in text.split(",") if o.strip())
    return origins or ("*",)


@dataclass(frozen=True)
class BridgeConfig:
    keys: Mapping[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    cors_origins: tuple[str, ...] = ("*",)
    state_path: str = "otel-lunary-bridge.sqlite"
    state_ttl_s: float = 7 * 86400.0
    state_max_rows: int = 1_000_000
    run_timeout_s: float = 600.0
    max_body_bytes: int = 5 * 1024 * 1024
    max_events: int = 10_000
    max_connections: int = 1000
    max_pending: int = 1_000_000
    state_busy_timeout_s: float = 5.0

    def allows_origin(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin value for ``origin``, or None (not allowed)."""
        if "*" in self.cors_origins:
            return "*"
        if origin is not None and origin.rstrip("/") in self.cors_origins:
            return origin
        return None


# The defaults resolve_config falls back to: the dataclass's own, written once.
_DEFAULTS = BridgeConfig()


def resolve_config(
    *,
    keys: str | Mapping[str, str] | None = None,
    host: str | None = None,
    port: int | None = None,
    cors_origins: str | None = None,
    state_path: str | None = None,
    state_ttl_s: float | None = None,
    state_max_rows: int | None = None,
    run_timeout_s: float | None = None,
    max_body_bytes: int | None = None,
    max_events: int | None = None,
    max_connections: int | None = None,
    max_pending: int | None = None,
    state_busy_timeout_s: float | None = None,
) -> BridgeConfig:
    if keys is None:
        keys = env_str(ENV_KEYS) or ""
    key_map = parse_keys(keys) if isinstance(keys, str) else dict(keys)
    if not key_map:
        raise ValueError(f"no app keys: pass --keys key=project,... or set {ENV_KEYS}")
    origins = cors_origins if cors_origins is not None else env_str(ENV_CORS)
    state = state_path or env_str(ENV_STATE) or _DEFAULTS.state_path
    if state == ":memory:" or state.startswith("file::memory:"):
        raise ValueError("the bridge state must be a file: its outbox is read back by a second connection, and a restart must find it")
    default = _DEFAULTS
    return BridgeConfig(
        keys=key_map,
        host=host or env_str(ENV_HOST) or default.host,
        port=resolve_int(port, ENV_PORT, default.port, 0, "port"),
        cors_origins=parse_origins(origins) if origins else default.cors_origins,
        state_path=state,
        state_ttl_s=resolve_float(state_ttl_s, ENV_STATE_TTL, default.state_ttl_s, 1.0, "state TTL") or default.state_ttl_s,
        state_max_rows=resolve_int(state_max_rows, ENV_STATE_MAX_ROWS, default.state_max_rows, 100, "state max rows"),
        run_timeout_s=resolve_float(run_timeout_s, ENV_RUN_TIMEOUT, default.run_timeout_s, 0.01, "run timeout") or default.run_timeout_s,
        max_body_bytes=resolve_int(max_body_bytes, ENV_MAX_BODY, default.max_body_bytes, 1024, "max body bytes"),
        max_events=resolve_int(max_events, ENV_MAX_EVENTS, default.max_events, 1, "max events"),
        max_connections=resolve_int(max_connections, ENV_MAX_CONNECTIONS, default.max_connections, 1, "max connections"),
        max_pending=resolve_int(max_pending, ENV_MAX_PENDING, default.max_pending, 1, "max pending spans"),
        state_busy_timeout_s=_busy_timeout(state_busy_timeout_s, default.state_busy_timeout_s),
    )


def _busy_timeout(explicit: float | None, default: float) -> float:
    """SQLite's busy timeout is a number of milliseconds: infinity is not one."""
    value = resolve_float(explicit, ENV_STATE_BUSY_TIMEOUT, default, 0.0, "state busy timeout")
    if value is not None and math.isfinite(value):
        return value
    if explicit is not None:
        raise ValueError(f"state busy timeout must be a finite number of seconds, got {explicit!r}")
    warn_env(ENV_STATE_BUSY_TIMEOUT, str(value), "must be a finite number", default)
    return default
