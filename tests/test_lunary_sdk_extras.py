"""The rest of the Lunary Python SDK's surface that chat code uses: chain, identify, tags, config."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest

import otel_lunary as lunary
from otel_lunary.attributes import GEN_AI_CONVERSATION_ID, LUNARY_RUN_NAME, LUNARY_SPAN_TYPE, LUNARY_TAGS, LUNARY_USER_PROPS, USER_ID


@pytest.fixture
def client(llm):
    return lunary.monitor(openai.OpenAI(base_url=llm.base_url, api_key="test"))


def test_chain_decorator_nests_its_llm_call(recorded, client):
    """@lunary.chain records a `chain {name}` span; the LLM call inside is its child."""
    thread = lunary.open_thread()
    msg_id = thread.track_message({"role": "user", "content": "hi"})

    @lunary.chain("retrieve-and-answer")
    def answer(question):
        return client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": question}])

    with lunary.parent(msg_id):
        answer("hi")
    chain, call, user = recorded.one("chain retrieve-and-answer"), recorded.one("chat gpt-4o"), recorded.one("message user")
    assert chain.attributes[LUNARY_SPAN_TYPE] == "chain"
    assert chain.attributes[LUNARY_RUN_NAME] == "retrieve-and-answer"
    assert chain.parent.span_id == user.context.span_id
    assert call.parent.span_id == chain.context.span_id
    assert chain.attributes[GEN_AI_CONVERSATION_ID] == thread.id


def test_identify_and_tags_apply_to_runs_inside(recorded, client):
    """LLM calls and agents inside identify()/tags() blocks carry that user and those tags."""

    @lunary.agent("Helper", tags=["own"])
    def helper():
        return "done"

    with lunary.identify("user-9", user_props={"plan": "pro"}), lunary.tags(["beta"]):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        helper()
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "after"}], user_id="explicit")
    inside, after = recorded.named("chat gpt-4o")
    agent = recorded.one("invoke_agent Helper")
    assert inside.attributes[USER_ID] == agent.attributes[USER_ID] == "user-9"
    assert json.loads(inside.attributes[LUNARY_USER_PROPS]) == {"plan": "pro"}
    assert inside.attributes[LUNARY_TAGS] == ("beta",)
    assert agent.attributes[LUNARY_TAGS] == ("own", "beta")
    assert after.attributes[USER_ID] == "explicit"
    assert LUNARY_TAGS not in after.attributes


def test_identify_is_isolated_between_tasks(recorded):
    """Each asyncio task sees only its own identify() block."""

    @lunary.tool("lookup")
    async def lookup(value):
        await asyncio.sleep(0)
        return value

    async def handle(user):
        async with lunary.identify(user):
            await lookup(user)

    async def main():
        await asyncio.gather(*(handle(f"user-{n}") for n in range(4)))

    asyncio.run(main())
    assert sorted(span.attributes[USER_ID] for span in recorded.named("execute_tool lookup")) == [f"user-{n}" for n in range(4)]


def test_lunary_config_is_accepted(recorded):
    """lunary.config(app_id=..., api_url=...) from Lunary code runs and changes nothing."""
    lunary.config(app_id="0x0", api_url="https://api.lunary.ai", verbose=True)
    lunary.open_thread().track_message({"role": "user", "content": "still recorded"})
    assert recorded.named("message user")
