"""Span ids the bridge chooses: a run's span id is fixed at its ``start`` event.

A Lunary run arrives as ``start`` then, maybe in a later request or after a restart,
``end``. Its children (an LLM call inside an agent) arrive in between and must name it
as their parent, so the run's span id exists before the span does. The SDK's own id
generator draws it at ``start``; the id and the start data go to the state store; the
span is created at ``end`` with exactly those ids, through this generator, which hands
out a forced id once and otherwise delegates to the SDK's random generator.
"""

from __future__ import annotations

import hashlib
import uuid

from otel_lunary.ids import ForcedIdGenerator

__all__ = ["ForcedIdGenerator", "python_wire_id"]


def python_wire_id(raw_id: str, app_id: str) -> str:
    """What the Python SDK puts on the wire for ``raw_id`` (lunary/utils.py create_uuid_from_string)."""
    return str(uuid.UUID(hashlib.sha256((raw_id + app_id).encode("utf-8")).hexdigest()[:32]))
