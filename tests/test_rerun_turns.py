"""How a recorded conversation is cut into turns, and how recorded tool results are found."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from otel_lunary.replay import CallRecord, Conversation, Message, ToolCall
from otel_lunary.rerun.turns import RecordedTools, split_turns

ROLES = ("system", "user", "assistant", "tool")


def conversation_of(roles: list[str]) -> Conversation:
    messages = [Message(id=f"m{i}", role=role, time_ns=i, span_id=f"{i:016x}", trace_id="0" * 32, content=f"{role} {i}") for i, role in enumerate(roles)]
    return Conversation(id="c", items=list(messages))


class TestSplitTurns:
    @given(st.lists(st.sampled_from(ROLES), max_size=30))
    def test_every_assistant_message_is_in_exactly_one_turn_and_nothing_is_reordered(self, roles: list[str]) -> None:
        """Turns are consecutive runs that start at an assistant message; history is exactly what came before."""
        conversation = conversation_of(roles)
        messages = conversation.messages
        turns = split_turns(conversation)
        covered: list[Message] = []
        for number, turn in enumerate(turns, start=1):
            assert turn.index == number
            assert turn.replies[0].role == "assistant"
            assert {m.role for m in turn.replies} <= {"assistant", "tool"}
            assert list(turn.history) == messages[: len(turn.history)]
            assert list(turn.prompt) == messages[len(covered): len(turn.history)]
            assert turn.reply is [m for m in turn.replies if m.role == "assistant"][-1]
            covered = messages[: len(turn.history) + len(turn.replies)]
        assert [m for m in covered if m.role == "assistant"] == [m for m in messages if m.role == "assistant"]
        assert all(m.role != "assistant" for m in messages[len(covered):])

    def test_a_tool_exchange_is_one_turn(self) -> None:
        """user, assistant asking a tool, tool, assistant answer: one turn, compared on the final answer."""
        (turn,) = split_turns(conversation_of(["system", "user", "assistant", "tool", "assistant", "user"]))
        assert [m.role for m in turn.prompt] == ["system", "user"]
        assert turn.reply.id == "m4"
        assert turn.question == "user 1"

    def test_a_greeting_before_any_question_is_a_turn_without_a_question(self) -> None:
        """An assistant that speaks first is a turn too; it was asked nothing."""
        first, second = split_turns(conversation_of(["system", "assistant", "user", "assistant"]))
        assert first.question is None and first.reply.id == "m1"
        assert second.question == "user 2"


def message(id_: str, role: str, **fields: object) -> Message:
    return Message(id=id_, role=role, time_ns=0, span_id="0" * 16, trace_id="0" * 32, **fields)


class TestRecordedTools:
    def test_arguments_match_whatever_their_key_order_and_spacing(self) -> None:
        """The model's JSON may order keys or space differently from the recording: still the same call."""
        conversation = Conversation(id="c", items=[
            message("a", "assistant", tool_calls=[ToolCall("call_1", "search", '{"q": "paris", "limit": 3}')]),
            message("t", "tool", tool_call_id="call_1", content="3 results"),
        ])
        tools = RecordedTools.of(conversation)
        found = tools.find("search", '{"limit":3,"q":"paris"}')
        assert found is not None and (found.content, found.message_id) == ("3 results", "t")
        assert tools.find("search", '{"limit": 4, "q": "paris"}') is None
        assert tools.find("lookup", '{"limit": 3, "q": "paris"}') is None

    def test_tool_spans_answer_calls_that_have_no_tool_message(self) -> None:
        """A lunary.tool span's recorded result is used when no tool message carried it."""
        span = CallRecord(kind="tool", name="execute_tool rates", span_id="1" * 16, trace_id="2" * 32, start_ns=0, end_ns=1,
                          tool_name="rates", tool_arguments={"currency": "EUR"}, tool_result={"rate": 1.1})
        conversation = Conversation(id="c", items=[message("u", "user", content="rate?", calls=[span])])
        tools = RecordedTools.of(conversation)
        found = tools.find("rates", {"currency": "EUR"})
        assert found is not None and found.content == '{"rate": 1.1}' and found.message_id is None

    def test_offered_tools_are_inferred_from_the_recorded_calls(self) -> None:
        """Without --tools the model is offered each recorded tool, its parameters typed from the recorded arguments."""
        conversation = Conversation(id="c", items=[
            message("a", "assistant", tool_calls=[ToolCall("call_1", "search", {"q": "paris", "limit": 3, "exact": True})]),
        ])
        (tool,) = RecordedTools.of(conversation).openai_tools()
        assert tool["function"]["name"] == "search"
        assert tool["function"]["parameters"]["properties"] == {"q": {"type": "string"}, "limit": {"type": "integer"}, "exact": {"type": "boolean"}}
