"""Which conversations to show: ``--user``, ``--tag``, ``--feedback``, ``--since/--until``, ``--conversation``.

Each criterion is a predicate over a whole conversation; repeating an option means any
of its values, different options must all hold (the way people narrow a search).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from otel_lunary.replay.model import Conversation


def parse_feedback(text: str) -> tuple[str, str | None]:
    """``thumb=down`` -> ("thumb", "down"); ``comment`` -> ("comment", None): any value."""
    key, sep, value = text.partition("=")
    if not key.strip():
        raise ValueError(f"--feedback wants KEY=VALUE or KEY, got {text!r}")
    return key.strip(), value.strip() if sep else None


@dataclass(frozen=True)
class Filters:
    conversations: frozenset[str] = frozenset()
    users: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    feedback: tuple[tuple[str, str | None], ...] = ()
    since_ns: int | None = None
    until_ns: int | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def matches(self, conversation: Conversation) -> bool:
        if self.conversations and conversation.id not in self.conversations:
            return False
        if self.users and not self.users.intersection(conversation.users):
            return False
        if self.tags and not self.tags.intersection(conversation.all_tags):
            return False
        if self.feedback and not any(_has_feedback(conversation, key, value) for key, value in self.feedback):
            return False
        if self.since_ns is not None and conversation.end_ns < self.since_ns:
            return False
        if self.until_ns is not None and conversation.start_ns >= self.until_ns:
            return False
        return bool(conversation.items) or bool(conversation.unplaced_calls)

    def apply(self, conversations: Iterable[Conversation]) -> Iterator[Conversation]:
        return (c for c in conversations if self.matches(c))


def _has_feedback(conversation: Conversation, key: str, value: str | None) -> bool:
    """Some message's latest feedback has ``key`` (equal to ``value`` when given)."""
    for message in conversation.messages:
        if key in message.feedback and (value is None or _same(message.feedback[key], value)):
            return True
    return False


def _same(actual: object, wanted: str) -> bool:
    if isinstance(actual, bool):
        return str(actual).lower() == wanted.lower()
    if isinstance(actual, (int, float)):
        try:
            return float(actual) == float(wanted)
        except ValueError:
            return False
    return str(actual) == wanted
