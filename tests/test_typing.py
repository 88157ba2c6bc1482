"""otel-lunary ships ``py.typed``: user code written like Lunary's docs type-checks.

Both checks run mypy as a subprocess (the interpreter running the tests, ``-m mypy``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The Python snippets of Lunary's "Chats & Threads" page (and the SDK calls around them)
# as a user writes them, with otel-lunary in place of lunary. Under --strict the user's
# own functions carry annotations; the calls into otel-lunary are exactly the docs'.
USER_CODE = '''
from __future__ import annotations

import openai

import otel_lunary as lunary

lunary.config(app_id="app-id")
lunary.configure(exporter="console", service_name="support-bot", capture_content=True)

# monitor() returns the client as Any: Lunary's extra keywords (parent=...) type-check.
client = lunary.monitor(openai.OpenAI(api_key="sk-test", base_url="http://127.0.0.1:9/v1"))
message = {"role": "user", "content": "Hello!"}

# Open a thread
thread = lunary.open_thread()

# Resume an existing thread; tags
existing_thread_id = "your-thread-id"  # Replace with your actual thread ID
thread = lunary.open_thread(existing_thread_id)
thread = lunary.open_thread(existing_thread_id, tags=["support"])
saved_id: str = thread.id

# Track messages
thread.track_message({
  "role": "user",
  "content": "Hello, please help me"
})

thread.track_message({
  "role": "assistant",
  "content": "Hello, how can I help you?"
})

# Track custom events
thread.track_event("event-name")
thread.track_event("event-name", user_id="user1", user_props={"email": "hello@test.com"}, metadata={})

# Capture user feedback; remove it
msg_id = thread.track_message({
  "role": "assistant",
  "content": "Hope you like my answers :)"
})

lunary.track_feedback(msg_id, { "thumb": "up" })
lunary.track_feedback(msg_id, { "thumb": None })

# Reconciliate with LLM calls
msg_id = thread.track_message({ "role": "user", "content": "Hello!" })

chat_completion = client.chat.completions.create(
    messages=[message],
    model="gpt-4o",
    parent=msg_id
)

thread.track_message(
    {"role": "assistant", "content": chat_completion.choices[0].message.content})

# ... and with agents: the message as parent of the enclosed code
msg_id = thread.track_message({ "role": "user", "content": "Hello!" })

with lunary.parent(msg_id):
    # your custom code...
    pass


@lunary.tool(name="get_weather")
def get_weather(city: str) -> dict[str, str]:
    return {"city": city, "forecast": "sunny"}


@lunary.agent("ChatbotAgent")
def chatbot_agent(query: str) -> str:
    return get_weather("Paris")["forecast"] + " " + query


@lunary.agent
def bare_agent(query: str) -> str:
    return query


answer: str = chatbot_agent("Hello!") + bare_agent("again")

with lunary.identify("user1", user_props={"email": "hello@test.com"}), lunary.tags(["beta"]):
    with lunary.parent(msg_id):
        chatbot_agent("Hello!")

flushed: bool = lunary.flush()
lunary.shutdown()
'''

def run_mypy(cache: str, *args: str) -> subprocess.CompletedProcess[str]:
    """mypy on ``args`` from the repository root, with a cache per set of options."""
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", f".mypy_cache/{cache}", "--no-color-output", "--no-error-summary", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


class TestTyping:
    def test_lunary_docs_snippets_type_check_strictly(self, tmp_path: Path) -> None:
        """The docs' snippets against ``import otel_lunary as lunary`` pass ``mypy --strict``."""
        user_file = tmp_path / "lunary_chat_app.py"
        user_file.write_text(textwrap.dedent(USER_CODE))
        # Only the user's file is checked; otel_lunary is followed silently, as mypy
        # treats an installed py.typed package.
        result = run_mypy("user-strict", "--strict", "--follow-imports=silent", str(user_file))
        assert result.returncode == 0, result.stdout + result.stderr

    def test_package_type_checks(self) -> None:
        """mypy reports nothing on otel_lunary, the package users import with py.typed."""
        # Some dependencies (grpc) ship no type information.
        result = run_mypy("package", "--ignore-missing-imports", "otel_lunary")
        assert result.returncode == 0, result.stdout + result.stderr

