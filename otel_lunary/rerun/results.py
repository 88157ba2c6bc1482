"""What a rerun found: per turn, the recorded reply beside the new one.

Plain dataclasses read by the renderers (terminal, JSON, HTML) and by the exit status;
``as_dict`` is the JSON output's schema.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Literal

from otel_lunary.rerun.turns import canonical_arguments

Status = Literal["same", "changed", "error"]
STATUSES: tuple[Status, ...] = ("changed", "same", "error")


@dataclass(slots=True)
class ToolUse:
    """A tool call in a reply; for the new model's, whether the recording could answer it."""

    name: str
    arguments: Any
    answered: bool = True  # False: the recording never made this call, so it was not run

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments, "answered": self.answered}


@dataclass(slots=True)
class Reply:
    """One side of a comparison: the text, its tool calls and what it cost."""

    content: str | None
    message_id: str | None = None
    tool_calls: list[ToolUse] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_ms: float | None = None
    model: str | None = None

    @property
    def length(self) -> int:
        return len(self.content or "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "model": self.model,
            "content": self.content,
            "length": self.length,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 3),
            "tool_calls": [call.as_dict() for call in self.tool_calls],
        }


def plural(count: int, noun: str) -> str:
    """``1 turn``, ``2 turns``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _normalised(text: str | None) -> str:
    return " ".join((text or "").split())


@dataclass(slots=True)
class TurnResult:
    """One recorded turn redone: ``same`` when the text (whitespace aside) and the tool calls match."""

    index: int
    question: str | None
    recorded: Reply
    new: Reply | None = None
    feedback: dict[str, Any] = field(default_factory=dict)  # the recorded reply's latest feedback
    error: str | None = None

    @property
    def unrecorded_tool_calls(self) -> list[ToolUse]:
        return [call for call in self.new.tool_calls if not call.answered] if self.new is not None else []

    @property
    def status(self) -> Status:
        if self.error is not None or self.new is None:
            return "error"
        if self.unrecorded_tool_calls:
            return "changed"
        same_text = _normalised(self.recorded.content) == _normalised(self.new.content)
        return "same" if same_text and _calls(self.recorded) == _calls(self.new) else "changed"

    @property
    def similarity(self) -> float | None:
        """How much of the text is shared (difflib's ratio, 1.0 identical), None without a new reply."""
        if self.new is None:
            return None
        return difflib.SequenceMatcher(None, _normalised(self.recorded.content), _normalised(self.new.content)).ratio()

    def as_dict(self) -> dict[str, Any]:
        similarity = self.similarity
        return {
            "index": self.index,
            "status": self.status,
            "question": self.question,
            "similarity": None if similarity is None else round(similarity, 3),
            "feedback": self.feedback,
            "error": self.error,
            "recorded": self.recorded.as_dict(),
            "new": None if self.new is None else self.new.as_dict(),
        }


def _calls(reply: Reply) -> list[tuple[str, str]]:
    return sorted((call.name, canonical_arguments(call.arguments)) for call in reply.tool_calls)


@dataclass(slots=True)
class ConversationResult:
    """A recorded conversation rerun: its turns in order, as far as they got."""

    conversation_id: str
    model: str | None
    total_turns: int
    turns: list[TurnResult] = field(default_factory=list)
    rerun_conversation_id: str | None = None  # the thread the rerun was recorded as
    error: str | None = None  # why the conversation stopped early
    interrupted: bool = False  # stopped by Ctrl-C: the turns done are kept

    def count(self, status: Status) -> int:
        return sum(1 for turn in self.turns if turn.status == status)

    def as_dict(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "rerun_conversation_id": self.rerun_conversation_id,
            "model": self.model,
            "total_turns": self.total_turns,
            "error": self.error,
            "interrupted": self.interrupted,
            "turns": [turn.as_dict() for turn in self.turns],
        }


@dataclass(slots=True)
class RerunReport:
    """Everything one ``otel-lunary rerun`` found, in the order the conversations were selected."""

    conversations: list[ConversationResult]
    history: Literal["recorded", "regenerated"] = "recorded"
    model: str | None = None  # the --model override, None when each conversation used its own
    interrupted: bool = False
    elapsed_s: float = 0.0

    def count(self, status: Status) -> int:
        return sum(conversation.count(status) for conversation in self.conversations)

    @property
    def turns(self) -> int:
        return sum(len(conversation.turns) for conversation in self.conversations)

    @property
    def failed_conversations(self) -> int:
        """Conversations that stopped on an error (not on Ctrl-C)."""
        return sum(1 for conversation in self.conversations if conversation.error is not None)

    @property
    def not_run_turns(self) -> int:
        return sum(conversation.total_turns - len(conversation.turns) for conversation in self.conversations)

    def summary(self) -> str:
        """The one line CI logs show: what was compared and what differed."""
        line = (
            f"rerun: {plural(self.turns, 'turn')} in {plural(len(self.conversations), 'conversation')}: "
            f"{self.count('changed')} changed, {self.count('same')} same, {plural(self.count('error'), 'error')}"
        )
        if self.not_run_turns:
            line += f"; {self.not_run_turns} not run"
        if self.interrupted:
            line += "; interrupted"
        return line + f" ({self.elapsed_s:.1f} s)"

    def as_dict(self) -> dict[str, Any]:
        return {
            "summary": {
                "conversations": len(self.conversations),
                "turns": self.turns,
                "same": self.count("same"),
                "changed": self.count("changed"),
                "errors": self.count("error"),
                "failed_conversations": self.failed_conversations,
                "not_run_turns": self.not_run_turns,
                "interrupted": self.interrupted,
                "history": self.history,
                "model": self.model,
                "elapsed_s": round(self.elapsed_s, 3),
                "line": self.summary(),
            },
            "conversations": [conversation.as_dict() for conversation in self.conversations],
        }
