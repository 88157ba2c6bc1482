"""JSON for attribute values: OTel attributes cannot hold maps, so objects travel as JSON.

Whatever the application hands us (sets, datetimes, its own classes, cycles) must turn
into a string without raising; what JSON cannot represent becomes its ``repr``.
"""

from __future__ import annotations

import json
from typing import Any

_encoder = json.JSONEncoder(ensure_ascii=False, default=repr, check_circular=True, separators=(",", ":"))
# The C encoder that ``_encoder.encode`` builds on every call, called directly: same
# output, without the per-call Python set-up (``encode`` -> ``iterencode`` -> list).
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
json_string = json.encoder.encode_basestring  # a str as JSON, exactly as ``_encoder`` writes it


def to_json(value: Any) -> str:
    try:
        if isinstance(value, str):
            return json_string(value)
        if _c_make_encoder is None:  # pragma: no cover - interpreters without the C accelerator
            return _encoder.encode(value)
        # markers: a fresh dict per call, as check_circular=True does
        return "".join(_c_make_encoder({}, repr, json_string, None, ":", ",", False, False, True)(value, 0))
    except Exception:  # noqa: BLE001 - a cycle, or an application repr that raises anything
        # Fall back to something readable.
        try:
            return json.dumps(repr(value), ensure_ascii=False)
        except Exception:  # noqa: BLE001 - repr of user objects can raise anything
            return '"<unserialisable>"'


def to_string_list(value: Any) -> list[str]:
    """Tags as OTel wants them: a list of strings, from a list, tuple, set or one string."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [item if isinstance(item, str) else str(item) for item in value if item is not None]
    return [str(value)]
