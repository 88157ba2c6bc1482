"""JSON Lines output: one conversation object per line (schema in ``serialize``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TextIO

from otel_lunary.replay._gc import deferred_collections
from otel_lunary.replay.model import Conversation
from otel_lunary.replay.serialize import conversation_dict


@deferred_collections()  # see _gc: rendering makes no cycles either
def render(conversations: Iterable[Conversation], out: TextIO) -> None:
    for conversation in conversations:
        out.write(json.dumps(conversation_dict(conversation), ensure_ascii=False, default=str))
        out.write("\n")
