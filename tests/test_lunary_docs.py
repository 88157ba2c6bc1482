"""The Python snippets of Lunary's "Chats & Threads" page run as written on otel-lunary.

Each test runs one snippet with ``import otel_lunary as lunary`` and checks the spans the
real OTel SDK recorded: trace layout, conversation attributes, feedback, events, and the
reconciliation of LLM calls with messages.
"""

from __future__ import annotations

import json

import openai

import otel_lunary as lunary
from otel_lunary.attributes import (
    GEN_AI_CONVERSATION_ID,
    GEN_AI_EVALUATION_NAME,
    GEN_AI_EVALUATION_SCORE_LABEL,
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OUTPUT_MESSAGES,
    LUNARY_EVENT_NAME,
    LUNARY_FEEDBACK_MESSAGE_ID,
    LUNARY_FEEDBACK_REMOVED,
    LUNARY_MESSAGE_CONTENT,
    LUNARY_MESSAGE_ID,
    LUNARY_METADATA,
    LUNARY_THREAD_TAGS,
    LUNARY_USER_PROPS,
    USER_ID,
)


def text_of(span, attribute):
    return json.loads(span.attributes[attribute])[0]["parts"][0]["content"]


class TestOpenThread:
    def test_new_thread_has_an_id(self, recorded):
        """open_thread() gives a thread with a fresh id that its messages carry."""
        thread = lunary.open_thread()
        thread.track_message({"role": "user", "content": "Hello, please help me"})
        assert thread.id
        assert recorded.one("message user").attributes[GEN_AI_CONVERSATION_ID] == thread.id

    def test_resume_existing_thread(self, recorded):
        """open_thread(existing_thread_id) records into that conversation."""
        existing_thread_id = "your-thread-id"  # Replace with your actual thread ID
        thread = lunary.open_thread(existing_thread_id)
        thread.track_message({"role": "user", "content": "Back again"})
        assert thread.id == existing_thread_id
        assert recorded.one("message user").attributes[GEN_AI_CONVERSATION_ID] == "your-thread-id"

    def test_thread_tags(self, recorded):
        """Thread tags ride on every span of the thread."""
        existing_thread_id = "tagged-thread"
        thread = lunary.open_thread(existing_thread_id, tags=["support"])
        thread.track_message({"role": "user", "content": "Hello"})
        thread.track_event("event-name")
        assert all(span.attributes[LUNARY_THREAD_TAGS] == ("support",) for span in recorded.all())


class TestTrackMessages:
    def test_user_then_assistant_is_one_turn(self, recorded):
        """The doc's two messages: one turn, a trace whose root goes from the question to the answer."""
        thread = lunary.open_thread()
        thread.track_message({"role": "user", "content": "Hello, please help me"})
        thread.track_message({"role": "assistant", "content": "Hello, how can I help you?"})
        turn = recorded.one("invoke_workflow turn")
        user, assistant = recorded.one("message user"), recorded.one("message assistant")
        assert turn.parent is None
        assert user.parent.span_id == assistant.parent.span_id == turn.context.span_id
        assert text_of(user, LUNARY_MESSAGE_CONTENT) == text_of(turn, GEN_AI_INPUT_MESSAGES) == "Hello, please help me"
        assert text_of(assistant, LUNARY_MESSAGE_CONTENT) == text_of(turn, GEN_AI_OUTPUT_MESSAGES) == "Hello, how can I help you?"

    def test_each_user_message_opens_a_new_trace(self, recorded):
        """A conversation is one trace per turn, grouped by gen_ai.conversation.id."""
        thread = lunary.open_thread()
        for turn in range(3):
            thread.track_message({"role": "user", "content": f"question {turn}"})
            thread.track_message({"role": "assistant", "content": f"answer {turn}"})
        traces = {span.context.trace_id for span in recorded.all()}
        assert len(traces) == 3
        assert {span.attributes[GEN_AI_CONVERSATION_ID] for span in recorded.all()} == {thread.id}

    def test_returned_id_is_on_the_span(self, recorded):
        """track_message returns the id that the message span carries in lunary.message.id."""
        thread = lunary.open_thread()
        msg_id = thread.track_message({"role": "assistant", "content": "Hope you like my answers :)"})
        assert recorded.one("message assistant").attributes[LUNARY_MESSAGE_ID] == msg_id

    def test_caller_supplied_id_is_honoured(self, recorded):
        """A message["id"] given by the caller is returned and usable for feedback in-process."""
        thread = lunary.open_thread()
        msg_id = thread.track_message({"id": "msg-42", "role": "assistant", "content": "hi"})
        lunary.track_feedback(msg_id, {"thumb": "up"})
        message, feedback = recorded.one("message assistant"), recorded.one("feedback")
        assert msg_id == "msg-42"
        assert message.attributes[LUNARY_MESSAGE_ID] == "msg-42"
        assert feedback.parent.span_id == message.context.span_id


class TestTrackEvents:
    def test_event_name_only(self, recorded):
        """thread.track_event("event-name") records the event in the thread."""
        thread = lunary.open_thread()
        thread.track_event("event-name")
        event = recorded.one("event event-name")
        assert event.attributes[LUNARY_EVENT_NAME] == "event-name"
        assert event.attributes[GEN_AI_CONVERSATION_ID] == thread.id

    def test_event_with_user_and_metadata(self, recorded):
        """Custom events keep their user, user props and metadata, inside the current turn."""
        thread = lunary.open_thread()
        thread.track_message({"role": "user", "content": "open my doc"})
        thread.track_event("open-document", user_id="user1", user_props={"email": "hello@test.com"}, metadata={"documentName": "my-document.pdf"})
        user, event = recorded.one("message user"), recorded.one("event open-document")
        assert event.attributes[USER_ID] == "user1"
        assert json.loads(event.attributes[LUNARY_USER_PROPS]) == {"email": "hello@test.com"}
        assert json.loads(event.attributes[LUNARY_METADATA]) == {"documentName": "my-document.pdf"}
        assert event.context.trace_id == user.context.trace_id


class TestFeedback:
    def test_feedback_added_then_removed(self, recorded):
        """Feedback is a child span of the message with an evaluation event; None records a removal."""
        thread = lunary.open_thread()
        msg_id = thread.track_message({"role": "assistant", "content": "Hope you like my answers :)"})
        lunary.track_feedback(msg_id, {"thumb": "up"})
        lunary.track_feedback(msg_id, {"thumb": None})
        message = recorded.one("message assistant")
        added, removed = recorded.named("feedback")
        for feedback in (added, removed):
            assert feedback.parent.span_id == message.context.span_id
            assert feedback.context.trace_id == message.context.trace_id
            assert feedback.attributes[LUNARY_FEEDBACK_MESSAGE_ID] == msg_id
            assert feedback.attributes[GEN_AI_CONVERSATION_ID] == thread.id
        (up,) = added.events
        assert up.name == "gen_ai.evaluation.result"
        assert up.attributes[GEN_AI_EVALUATION_NAME] == "thumb"
        assert up.attributes[GEN_AI_EVALUATION_SCORE_LABEL] == "up"
        (gone,) = removed.events
        assert gone.attributes[GEN_AI_EVALUATION_NAME] == "thumb"
        assert gone.attributes[LUNARY_FEEDBACK_REMOVED] is True
        assert GEN_AI_EVALUATION_SCORE_LABEL not in gone.attributes


class TestReconcile:
    def test_llm_call_with_parent_argument(self, recorded, llm):
        """client.chat.completions.create(..., parent=msg_id) nests the LLM span under the message."""
        client = lunary.monitor(openai.OpenAI(base_url=llm.base_url, api_key="test"))
        thread = lunary.open_thread()
        message = {"role": "user", "content": "Hello!"}
        msg_id = thread.track_message(message)
        chat_completion = client.chat.completions.create(messages=[message], model="gpt-4o", parent=msg_id)
        thread.track_message({"role": "assistant", "content": chat_completion.choices[0].message.content})
        user, call = recorded.one("message user"), recorded.one("chat gpt-4o")
        assert call.context.trace_id == user.context.trace_id
        assert user.context.span_id in recorded.ancestors(call)
        assert call.attributes[GEN_AI_CONVERSATION_ID] == thread.id
        assert "parent" not in llm.requests[0]

    def test_work_inside_parent_block_nests_under_message(self, recorded, llm):
        """Every OTel span started inside `with lunary.parent(msg_id)` descends from the message."""
        client = lunary.monitor(openai.OpenAI(base_url=llm.base_url, api_key="test"))
        thread = lunary.open_thread()
        msg_id = thread.track_message({"role": "user", "content": "Hello!"})

        @lunary.agent("ChatbotAgent")
        def chatbot_agent(query):
            return client.chat.completions.create(messages=[{"role": "user", "content": query}], model="gpt-4o")

        foreign = lunary.configure  # keep the linter quiet about unused names below
        del foreign
        from opentelemetry import trace

        with lunary.parent(msg_id):
            chatbot_agent("Hello!")
            with trace.get_tracer("some.other.instrumentation").start_as_current_span("HTTP GET"):
                pass
        user = recorded.one("message user")
        for name in ("invoke_agent ChatbotAgent", "chat gpt-4o", "HTTP GET"):
            span = recorded.one(name)
            assert span.context.trace_id == user.context.trace_id, name
            assert user.context.span_id in recorded.ancestors(span), name
            assert span.attributes[GEN_AI_CONVERSATION_ID] == thread.id, name
        assert recorded.one("invoke_agent ChatbotAgent").context.span_id in recorded.ancestors(recorded.one("chat gpt-4o"))

    def test_assistant_reply_inside_parent_block_joins_the_turn(self, recorded):
        """A reply tracked in a process that only knows the user message id lands in its turn."""
        thread = lunary.open_thread()
        msg_id = thread.track_message({"role": "user", "content": "Hello!"})
        resumed = lunary.open_thread(thread.id)
        lunary.shutdown()  # as in another process: nothing of the thread is remembered here
        lunary.configure(tracer_provider=recorded.provider)
        with lunary.parent(msg_id):
            resumed.track_message({"role": "assistant", "content": "Hi"})
        user, reply = recorded.one("message user"), recorded.one("message assistant")
        assert reply.parent.span_id == user.context.span_id
