"""Replay helpers: the ``otel-lunary replay`` command in this process, and the checks that a
replayed conversation is the one the SDK tracked."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from fixtures.replay.sdk_conversation import Tracked
from otel_lunary.cli import build_parser
from otel_lunary.replay import Conversation, jsonparse
from otel_lunary.replay.command import replay


def run(*argv: str) -> tuple[int, str, str]:
    """``otel-lunary replay *argv`` in this process: (exit status, stdout, stderr)."""
    args = build_parser(["replay", *argv]).parse_args(["replay", *argv])
    out, err = io.StringIO(), io.StringIO()
    return replay(args, out, err), out.getvalue(), err.getvalue()


def only(conversations: list[Conversation], conversation_id: str) -> Conversation:
    found = [c for c in conversations if c.id == conversation_id]
    assert len(found) == 1, [c.id for c in conversations]
    return found[0]


def assert_replays(conversation: Conversation, tracked: Tracked) -> None:
    """Roles, content, order, ids, latest feedback, events and LLM calls in place."""
    assert [(m.role, m.content) for m in conversation.messages] == tracked.messages
    assert [m.id for m in conversation.messages] == tracked.message_ids
    assert [e.name for e in conversation.events] == tracked.events
    by_id = {m.id: m for m in conversation.messages}
    assert {i: by_id[i].feedback for i in tracked.feedback} == tracked.feedback
    assert all(not m.feedback for m in conversation.messages if m.id not in tracked.feedback)
    llm_calls = {m.id: sum(c.kind == "llm" for c in m.calls) for m in conversation.messages if m.calls}
    assert llm_calls == tracked.llm_calls_by_message
    tool_message = next(m for m in conversation.messages if m.role == "tool")
    assert tool_message.tool_call_id == tracked.tool_call_id
    asking = next(m for m in conversation.messages if m.tool_calls)
    assert [c.id for c in asking.tool_calls] == [tracked.tool_call_id]
    assert any(c.kind == "tool" and c.tool_name == "get_weather" for m in conversation.messages for c in m.calls)


@pytest.fixture(params=["json", "orjson"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Attribute text parsed by the standard library, or by orjson (as with and without
    it installed): import it into a test module to run its tests with both."""
    if request.param == "orjson":
        pytest.importorskip("orjson")
    monkeypatch.setenv(jsonparse.ENV_JSON_PARSER, "json" if request.param == "json" else "auto")
    monkeypatch.setattr(jsonparse, "_text_loads", jsonparse.text_parser())
    yield request.param
