"""No tracking call ever raises into the application, whatever it is given."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

import otel_lunary as lunary
from otel_lunary.attributes import GEN_AI_CONVERSATION_ID


class Hostile:
    """An application object whose str, repr and hash all fail."""

    def __str__(self) -> str:
        raise RuntimeError("no str")

    __repr__ = __str__

    def __hash__(self) -> int:
        raise RuntimeError("no hash")


def _cyclic() -> dict:
    loop: dict = {"role": "user"}
    loop["content"] = loop
    return loop


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(),
    st.binary(max_size=32),
    st.just(math.inf),
    st.builds(object),
    st.builds(Hostile),
    st.just("x" * 200_000),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)
roles = st.one_of(st.sampled_from(["user", "assistant", "system", "tool", "USER", "bogus"]), values)
messages = st.one_of(
    values,
    st.just(_cyclic()),
    st.fixed_dictionaries(
        {"role": roles},
        optional={"content": values, "tool_calls": values, "tool_call_id": values, "id": values, "tags": values, "metadata": values, "is_retry": values},
    ),
)

# Only the example count differs from the CI-safe profile of conftest.py (no deadline, no
# health check about the machine's speed), which every other setting is inherited from.
FAST = settings(max_examples=150)


@FAST
@given(thread_id=values, tags=values, user_id=values, user_props=values, metadata=values, message=messages, feedback=values)
def test_thread_calls_never_raise(recorded, thread_id, tags, user_id, user_props, metadata, message, feedback):
    """open_thread, track_message and track_event accept anything without raising."""
    thread = lunary.open_thread(thread_id, tags=tags, user_id=user_id, user_props=user_props, metadata=metadata)
    msg_id = thread.track_message(message, user_id=user_id, user_props=user_props, feedback=feedback)
    thread.track_event(metadata, user_id=user_id, user_props=user_props, metadata=message)
    thread.track_event("event", metadata=metadata)
    assert msg_id is None or isinstance(msg_id, str)


@FAST
@given(run_id=values, feedback=values)
def test_feedback_and_parent_never_raise(recorded, run_id, feedback):
    """track_feedback and parent accept any id and any feedback without raising."""
    lunary.track_feedback(run_id, feedback)
    with lunary.parent(run_id):
        lunary.track_feedback(run_id, {"thumb": feedback})


@FAST
@given(client=values, arguments=values)
def test_monitor_and_decorators_never_raise(recorded, client, arguments):
    """monitor() on anything returns it; decorated functions run with any argument."""
    assert lunary.monitor(client) is client

    @lunary.tool()
    def echo(value):
        return value

    assert echo(arguments) is arguments


def test_invalid_calls_are_counted(recorded):
    """Dropped calls show in lunary.stats() so a user can notice them."""
    thread = lunary.open_thread()
    thread.track_message(None)
    thread.track_message({"role": "narrator", "content": "x"})
    lunary.track_feedback("some-id", "not a dict")
    assert lunary.stats()["invalid_arguments"] == 3
    assert recorded.all() == []


@settings(max_examples=60)
@given(model=values, user_id=values, tags=values, messages=values)
def test_monitor_never_changes_what_a_call_raises(recorded, llm, model, user_id, tags, messages):
    """Whatever arguments and Lunary options an LLM call gets, the monitored client raises
    (or returns) exactly as the plain client does: tracking adds no exception of its own."""
    import openai

    def outcome(client, **lunary_options):
        try:
            client.chat.completions.create(model=model, messages=messages, **lunary_options)
        except Exception as error:  # noqa: BLE001 - the outcome is what we compare
            return type(error)
        return None

    plain = openai.OpenAI(base_url=llm.base_url, api_key="test", max_retries=0)
    monitored = lunary.monitor(openai.OpenAI(base_url=llm.base_url, api_key="test", max_retries=0))
    with lunary.identify(user_id), lunary.tags(tags):
        assert outcome(monitored, user_id=user_id, tags=tags, metadata=messages) is outcome(plain)


@FAST
@given(name=values, user_id=values, tags=values, metadata=values)
def test_decorating_with_any_options_never_raises(recorded, name, user_id, tags, metadata):
    """@agent/@tool/@chain with unusable options still decorate, run and return the result."""
    for decorator in (lunary.agent, lunary.tool, lunary.chain):
        wrapped = decorator(name, user_id=user_id, tags=tags, metadata=metadata)(lambda value: value)
        assert wrapped(name) is name


def test_an_unusable_tag_does_not_cost_the_thread_its_id(recorded):
    """open_thread(id, tags=[obj whose str() raises]) keeps the id; only the bad field is left out."""
    thread = lunary.open_thread("conv-kept", tags=[Hostile()], user_id=Hostile())
    thread.track_message({"role": "user", "content": "hi"})
    assert thread.id == "conv-kept"
    assert recorded.one("message user").attributes[GEN_AI_CONVERSATION_ID] == "conv-kept"
    assert lunary.stats()["invalid_arguments"] == 2
