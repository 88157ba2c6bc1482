"""Bounds on what a caller or an outsider controls besides content: names, ids, tags, metadata.

Content has its own policy (``_content``). Everything else a tracking call records comes
from the caller too, and some of it is copied widely: a thread's tags and metadata ride
on every span of the thread, an event or run name becomes a span name, a user id and
props ride on every message; through the bridge, any client holding a public app key
chooses them. So each is cut to a per-process limit (``Limits``: explicit ``configure()``
argument > ``OTEL_LUNARY_MAX_*`` > default), the cut is visible in the value and counted
(``values_truncated`` in ``otel_lunary.stats()``, with a rate-limited warning naming the
limit), and the recording layer (``_record``) applies it where each value enters, so every
producer (the SDK's calls and the bridge) gets it and the common path pays nothing:

- a name (event, run, model, feedback key, tag, error type) keeps its start and ends
  with ``…``;
- an id (thread, user, message, tool call) keeps its start and a hash of the whole id, so
  two long ids stay distinct and the same id is cut the same way in every process;
- tags keep the first ``max_tags``;
- metadata and user props (JSON) longer than the limit become a JSON string holding the
  start of the JSON text and ``…[truncated N chars]``, so the attribute still parses.

Limits are per process: ``configure()`` sets them; until it runs (a decorator applied at
import, a thread opened before the first tracking call) they come from the environment.
"""

from __future__ import annotations

import hashlib
from typing import Any

from otel_lunary import _health
from otel_lunary._content import json_string, to_json
from otel_lunary._settings import MAX_METADATA_LENGTH_ENV, MAX_NAME_LENGTH_ENV, MAX_TAGS_ENV, Limits, resolve_limits

_HASH_CHARS = 16
_active: Limits | None = None


def set_limits(limits: Limits) -> None:
    """The limits for every value recorded from now on (``configure()`` calls this)."""
    global _active
    _active = limits


def limits() -> Limits:
    active = _active
    if active is None:
        active = resolve_limits()
        set_limits(active)
    return active


def _cut(what: str, setting: str, length: int, limit: int) -> None:
    _health.report(
        "values_truncated",
        "otel_lunary: a %s of %d characters was cut to the %d-character limit (%s)",
        what,
        length,
        limit,
        setting,
        key=("values_truncated", what),
    )


def name(value: str, what: str = "name") -> str:
    """A name, tag or type: at most ``max_name_length`` characters, the last one ``…`` if cut."""
    limit = (_active or limits()).max_name_length  # the set limits without a call: hot path
    if len(value) <= limit:
        return value
    _cut(what, MAX_NAME_LENGTH_ENV, len(value), limit)
    return value[: limit - 1] + "…"


def identifier(value: str, what: str = "id") -> str:
    """An id: at most ``max_name_length`` characters; a longer one keeps its start, ``…``
    and a hash of the whole id (deterministic, so still an id)."""
    limit = (_active or limits()).max_name_length
    if len(value) <= limit:
        return value
    _cut(what, MAX_NAME_LENGTH_ENV, len(value), limit)
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    return value[: limit - _HASH_CHARS - 1] + "…" + digest


def tags(values: list[str], what: str = "tag") -> list[str]:
    """At most ``max_tags`` tags, each bounded as a name."""
    most = limits().max_tags
    if len(values) > most:
        _cut(f"list of {what}s", MAX_TAGS_ENV, len(values), most)
        values = values[:most]
    return [name(value, what) for value in values]


def json_value(value: Any, what: str = "metadata") -> str:
    """``value`` as JSON, at most ``max_metadata_length`` characters of JSON text; longer, a
    JSON string of its start and a marker (escaping can lengthen it: at most about 2x)."""
    text = to_json(value)
    limit = (_active or limits()).max_metadata_length
    if len(text) <= limit:
        return text
    _cut(what, MAX_METADATA_LENGTH_ENV, len(text), limit)
    return json_string(f"{text[:limit]}…[truncated {len(text) - limit} chars]")
