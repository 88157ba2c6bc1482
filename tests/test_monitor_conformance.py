"""LLM spans against the GenAI inference-span convention (semantic-conventions-genai
``model/gen-ai/spans.yaml`` and ``registry.yaml``): what was sent is recorded, streams
say they stream, and a stream that did not finish says so."""

from __future__ import annotations

import asyncio
import gc
import json

import openai
import pytest

import otel_lunary as lunary
from otel_lunary.attributes import (
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_OUTPUT_TYPE,
    GEN_AI_REQUEST_CHOICE_COUNT,
    GEN_AI_REQUEST_FREQUENCY_PENALTY,
    GEN_AI_REQUEST_PRESENCE_PENALTY,
    GEN_AI_REQUEST_SEED,
    GEN_AI_REQUEST_STOP_SEQUENCES,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    LUNARY_MESSAGE_CONTENT,
)

QUESTION = [{"role": "user", "content": "Plan a trip to Paris"}]


class TestRequestAttributes:
    def test_what_was_sent_is_recorded(self, recorded, client, llm):
        """seed, n, stop, penalties: on the span as sent."""
        client.chat.completions.create(
            model="gpt-4o", messages=QUESTION, seed=42, n=3, stop=["\n\n", "END"], frequency_penalty=0.5, presence_penalty=-0.25
        )
        attributes = recorded.one("chat gpt-4o").attributes
        sent = llm.requests[0]
        assert attributes[GEN_AI_REQUEST_SEED] == sent["seed"] == 42
        assert attributes[GEN_AI_REQUEST_CHOICE_COUNT] == 3
        assert attributes[GEN_AI_REQUEST_STOP_SEQUENCES] == ("\n\n", "END")
        assert attributes[GEN_AI_REQUEST_FREQUENCY_PENALTY] == 0.5
        assert attributes[GEN_AI_REQUEST_PRESENCE_PENALTY] == -0.25
        assert GEN_AI_REQUEST_STREAM not in attributes

    def test_single_stop_string_and_one_choice(self, recorded, client):
        """stop as a string is a one-element list; n=1 is the default and not recorded."""
        client.chat.completions.create(model="gpt-4o", messages=QUESTION, stop="END", n=1)
        attributes = recorded.one("chat gpt-4o").attributes
        assert attributes[GEN_AI_REQUEST_STOP_SEQUENCES] == ("END",)
        assert GEN_AI_REQUEST_CHOICE_COUNT not in attributes

    @pytest.mark.parametrize(
        ("response_format", "output_type"),
        [
            ({"type": "json_object"}, "json"),
            ({"type": "json_schema", "json_schema": {"name": "trip", "schema": {"type": "object"}}}, "json"),
            ({"type": "text"}, "text"),
        ],
    )
    def test_output_type_from_response_format(self, recorded, client, response_format, output_type):
        client.chat.completions.create(model="gpt-4o", messages=QUESTION, response_format=response_format)
        assert recorded.one("chat gpt-4o").attributes[GEN_AI_OUTPUT_TYPE] == output_type

    def test_no_response_format_no_output_type(self, recorded, client):
        client.chat.completions.create(model="gpt-4o", messages=QUESTION)
        assert GEN_AI_OUTPUT_TYPE not in recorded.one("chat gpt-4o").attributes


class TestFinishReasons:
    def test_output_messages_carry_no_finish_reason(self, recorded, client):
        """The output-messages schema deprecates it: gen_ai.response.finish_reasons has it."""
        client.chat.completions.create(model="gpt-4o", messages=QUESTION)
        span = recorded.one("chat gpt-4o")
        assert span.attributes[GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
        assert all("finish_reason" not in message for message in json.loads(span.attributes[GEN_AI_OUTPUT_MESSAGES]))

    def test_assistant_message_carries_no_finish_reason(self, recorded):
        lunary.open_thread().track_message({"role": "assistant", "content": "Paris it is"})
        (message,) = json.loads(recorded.one("message assistant").attributes[LUNARY_MESSAGE_CONTENT])
        assert "finish_reason" not in message


class TestStreams:
    def test_stream_says_it_streams_and_when_the_first_chunk_came(self, recorded, client):
        stream = client.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=True)
        for _ in stream:
            pass
        span = recorded.one("chat gpt-4o")
        assert span.attributes[GEN_AI_REQUEST_STREAM] is True
        first_chunk = span.attributes[GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
        assert 0 < first_chunk <= (span.end_time - span.start_time) / 1e9
        assert span.attributes[GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)

    def test_async_stream_too(self, recorded, llm):
        client = lunary.monitor(openai.AsyncOpenAI(base_url=llm.base_url, api_key="test", max_retries=0))

        async def run() -> None:
            stream = await client.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=True)
            async for _ in stream:
                pass

        asyncio.run(run())
        attributes = recorded.one("chat gpt-4o").attributes
        assert attributes[GEN_AI_REQUEST_STREAM] is True and attributes[GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0

    def test_stream_closed_early_finishes_with_error(self, recorded, client):
        """No reason from the model: the registry's `error`, not an empty string, and no invented `stop`."""
        with client.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=True) as stream:
            next(iter(stream))
        span = recorded.one("chat gpt-4o")
        assert span.attributes[GEN_AI_RESPONSE_FINISH_REASONS] == ("error",)
        assert all("finish_reason" not in message for message in json.loads(span.attributes[GEN_AI_OUTPUT_MESSAGES]))

    def test_stream_dropped_without_closing_still_records_the_response(self, recorded, client):
        """An abandoned stream ends its span with what arrived: id, model, finish reason `error`."""
        stream = client.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=True)
        first = next(iter(stream))
        del stream
        gc.collect()
        span = recorded.one("chat gpt-4o")
        assert span.attributes[GEN_AI_RESPONSE_ID] == first.id
        assert span.attributes[GEN_AI_RESPONSE_MODEL] == first.model
        assert span.attributes[GEN_AI_RESPONSE_FINISH_REASONS] == ("error",)
