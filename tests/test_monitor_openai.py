"""``lunary.monitor`` with the real ``openai`` client against a local OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest
from opentelemetry.trace import SpanKind, StatusCode

import otel_lunary as lunary
from otel_lunary._fake_llm import ERROR_MODEL
from otel_lunary.attributes import (
    ERROR_TYPE,
    GEN_AI_CONVERSATION_ID,
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OPERATION_NAME,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_REQUEST_TEMPERATURE,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    LUNARY_TAGS,
    SERVER_ADDRESS,
    SERVER_PORT,
    USER_ID,
)

QUESTION = [{"role": "user", "content": "What is OpenTelemetry?"}]


@pytest.fixture
def async_client(llm):
    return lunary.monitor(openai.AsyncOpenAI(base_url=llm.base_url, api_key="test", max_retries=0))


def output_text(span):
    return json.loads(span.attributes[GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]["content"]


class TestPlainCalls:
    def test_inference_span_follows_genai_conventions(self, recorded, client, llm):
        """A plain call records a CLIENT span `chat {model}` with request, response and usage."""
        response = client.chat.completions.create(model="gpt-4o", messages=QUESTION, temperature=0.2)
        span = recorded.one("chat gpt-4o")
        assert span.kind is SpanKind.CLIENT
        assert span.attributes[GEN_AI_OPERATION_NAME] == "chat"
        assert span.attributes[GEN_AI_PROVIDER_NAME] == "openai"
        assert span.attributes[GEN_AI_REQUEST_MODEL] == "gpt-4o"
        assert span.attributes[GEN_AI_REQUEST_TEMPERATURE] == 0.2
        assert span.attributes[GEN_AI_RESPONSE_MODEL] == response.model
        assert span.attributes[GEN_AI_RESPONSE_ID] == response.id
        assert span.attributes[GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
        assert span.attributes[GEN_AI_USAGE_INPUT_TOKENS] == response.usage.prompt_tokens
        assert span.attributes[GEN_AI_USAGE_OUTPUT_TOKENS] == response.usage.completion_tokens
        assert span.attributes[SERVER_ADDRESS] == "127.0.0.1"
        assert isinstance(span.attributes[SERVER_PORT], int)
        assert json.loads(span.attributes[GEN_AI_INPUT_MESSAGES]) == [
            {"role": "user", "parts": [{"type": "text", "content": "What is OpenTelemetry?"}]}
        ]
        assert output_text(span) == response.choices[0].message.content

    def test_lunary_arguments_are_recorded_not_sent(self, recorded, client, llm):
        """user_id and tags go on the span and never reach the OpenAI API."""
        client.chat.completions.create(model="gpt-4o", messages=QUESTION, user_id="u-7", tags=["beta"])
        span = recorded.one("chat gpt-4o")
        assert span.attributes[USER_ID] == "u-7"
        assert span.attributes[LUNARY_TAGS] == ("beta",)
        assert "user_id" not in llm.requests[0] and "tags" not in llm.requests[0]

    def test_tool_call_response(self, recorded, client):
        """A response with tool calls records them as tool_call parts and finish reason."""
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "weather?"}], tools=tools)
        span = recorded.one("chat gpt-4o")
        (message,) = json.loads(span.attributes[GEN_AI_OUTPUT_MESSAGES])
        assert span.attributes[GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)
        assert "finish_reason" not in message  # deprecated in the output schema
        assert message["parts"] == [{"type": "tool_call", "id": "call_weather_1", "name": "get_weather", "arguments": {"city": "Paris"}}]

    def test_error_response(self, recorded, client):
        """An API error re-raises unchanged and the span records error.type and ERROR status."""
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model=ERROR_MODEL, messages=QUESTION)
        span = recorded.one(f"chat {ERROR_MODEL}")
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes[ERROR_TYPE] == "InternalServerError"
        assert span.end_time is not None

    def test_monitor_twice_wraps_once(self, recorded, client):
        """Monitoring an already monitored client does not double the spans."""
        lunary.monitor(client)
        client.chat.completions.create(model="gpt-4o", messages=QUESTION)
        assert len(recorded.named("chat gpt-4o")) == 1


class TestStreaming:
    def test_stream_records_the_assembled_reply(self, recorded, client):
        """A streamed call ends its span when the stream is consumed, with the full text and usage."""
        stream = client.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=True, stream_options={"include_usage": True})
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        span = recorded.one("chat gpt-4o")
        assert output_text(span) == text == "You said: What is OpenTelemetry?"
        assert span.attributes[GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
        assert span.attributes[GEN_AI_USAGE_OUTPUT_TOKENS] > 0

    def test_stream_as_context_manager_closed_early(self, recorded, client):
        """Closing a stream before its end still ends the span."""
        with client.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=True) as stream:
            next(iter(stream))
        assert recorded.one("chat gpt-4o").end_time is not None

    def test_async_stream(self, recorded, async_client):
        """Async streaming records the same span as sync streaming."""

        async def run():
            stream = await async_client.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=True)
            return "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])

        text = asyncio.run(run())
        assert output_text(recorded.one("chat gpt-4o")) == text


class TestAsync:
    def test_async_call_with_parent(self, recorded, async_client):
        """An async call with parent=msg_id nests under the message and carries the conversation."""
        thread = lunary.open_thread()
        msg_id = thread.track_message({"role": "user", "content": "hi"})
        asyncio.run(async_client.chat.completions.create(model="gpt-4o", messages=QUESTION, parent=msg_id))
        user, call = recorded.one("message user"), recorded.one("chat gpt-4o")
        assert call.parent.span_id == user.context.span_id
        assert call.attributes[GEN_AI_CONVERSATION_ID] == thread.id

    def test_async_error(self, recorded, async_client):
        """Async API errors are recorded and re-raised."""
        with pytest.raises(openai.InternalServerError):
            asyncio.run(async_client.chat.completions.create(model=ERROR_MODEL, messages=QUESTION))
        assert recorded.one(f"chat {ERROR_MODEL}").status.status_code is StatusCode.ERROR
