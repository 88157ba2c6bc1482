"""conventions/ is the contract: generated files are current and the code keeps to it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import openai
import pytest

import otel_lunary as lunary
from otel_lunary._fake_llm import FakeLLM

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "conventions"))
import generate  # noqa: E402

ATTRIBUTES, SIGNALS = generate.load_model()
# Spans the native SDK emits; the bridge's own (Lunary `chain` runs) are tested with it.
SPANS = {signal.id: signal for signal in SIGNALS if signal.kind == "span" and "otel-lunary bridge" not in signal.brief}


def test_generated_files_are_current():
    """otel_lunary/attributes.py and docs/conventions.md match conventions/model/."""
    done = subprocess.run([sys.executable, str(ROOT / "conventions" / "generate.py"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_attribute_name_spelled_outside_the_generated_module():
    """Package code uses the generated constants; no attribute name appears as a literal."""
    names = {name for name in ATTRIBUTES if "." in name}  # bare words like "metadata" are also dict keys
    offenders = []
    for path in (ROOT / "otel_lunary").rglob("*.py"):
        if path.name == "attributes.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert offenders == []


def full_flow() -> None:
    with FakeLLM() as llm:
        client = lunary.monitor(openai.OpenAI(base_url=llm.base_url, api_key="test"))
        thread = lunary.open_thread(tags=["support"], user_id="u1", user_props={"plan": "pro"}, metadata={"channel": "web"})
        msg_id = thread.track_message({"role": "user", "content": "weather?", "tags": ["q"], "metadata": {"k": 1}})
        thread.track_message({"role": "system", "content": "be nice"})
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], parent=msg_id, user_id="u1", tags=["t"], metadata={"m": 1})
        thread.track_message({"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]})
        thread.track_message({"role": "tool", "tool_call_id": "c1", "content": "sunny"})
        reply = thread.track_message({"role": "assistant", "content": "x" * 100, "is_retry": True})
        thread.track_event("open-document", user_id="u2", user_props={"email": "e"}, metadata={"doc": "a.pdf"})
        lunary.track_feedback(reply, {"thumb": "up", "comment": "ok", "rating": 4, "emoji": "🎉"})
        lunary.track_feedback(reply, {"thumb": None})

        @lunary.agent("Helper")
        def helper(question):
            return step(question)

        @lunary.chain("step")
        def step(question):
            return tool_run(question)

        @lunary.tool("lookup")
        def tool_run(question):
            raise LookupError(question)

        with lunary.parent(msg_id), pytest.raises(LookupError):
            helper("q")


def test_every_emitted_attribute_is_in_the_registry(recorded):
    """Every attribute on every span and event the SDK emits is defined in conventions/."""
    lunary.configure(tracer_provider=recorded.provider, max_content_length=50)
    full_flow()
    emitted = set()
    for span in recorded.all():
        emitted.update(span.attributes)
        for event in span.events:
            emitted.update(key for key in event.attributes if not key.startswith("exception."))
    assert emitted - set(ATTRIBUTES) == set()


@pytest.mark.parametrize("span_id", sorted(SPANS))
def test_spans_carry_their_required_attributes(recorded, span_id):
    """Each span kind the registry defines is emitted with every required attribute."""
    full_flow()
    signal = SPANS[span_id]
    prefix = signal.name.split("{")[0]
    matching = [span for span in recorded.all() if span.name.startswith(prefix) and (prefix or span.kind.name == "CLIENT")]
    assert matching, f"no span emitted for {span_id}"
    required = [ref for ref, level in signal.refs if level == "required"]
    for span in matching:
        assert [ref for ref in required if ref not in span.attributes] == [], span.name
