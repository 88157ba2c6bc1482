"""The README's "Send to Jaeger through a Collector" block runs as written.

The block is taken from README.md and run by bash from the repository root, in a network
namespace of its own (`unshare --net`, loopback only), so its fixed ports (4317, 4318,
13133, 14317, 16686) cannot meet another test's servers. Two things stand in for the
reader: `python my_chatbot.py` runs a chatbot written here (the otel-lunary API with the
offline fake LLM, configured only by the block's OTEL_* variables), and before the
`otel-lunary replay` line the harness waits (30 s at most) until Jaeger's own search API
finds the conversation, because the Collector forwards in batches. The two servers' log files go to the test's temporary
folder rather than the repository root, and an exit trap stops them if a line fails.
Everything else is the README's text.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.collector import REPO, binaries

pytestmark = pytest.mark.slow

SECTION = "## Send to Jaeger through a Collector"

CHATBOT = textwrap.dedent(
    """
    import sys
    import openai
    import otel_lunary as lunary
    from otel_lunary._fake_llm import FakeLLM

    with FakeLLM() as llm:
        client = lunary.monitor(openai.OpenAI(base_url=llm.base_url, api_key="test", max_retries=0))
        thread = lunary.open_thread(tags=["readme"])
        question = thread.track_message({"role": "user", "content": "Plan a trip to Paris"})
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Plan a trip to Paris"}], parent=question)
        answer = thread.track_message({"role": "assistant", "content": reply.choices[0].message.content})
        lunary.track_feedback(answer, {"thumb": "down"})
    lunary.shutdown()
    open(sys.argv[1], "w").write(thread.id)
    """
)


def readme_block() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index(SECTION) :]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match, "no sh block in the README's Jaeger section"
    return match.group(1)


@dataclass
class BlockRun:
    done: subprocess.CompletedProcess[str]
    conversation_id: str
    search: dict
    replay_output: str
    logs: str


@pytest.fixture(scope="module")
def block_run(tmp_path_factory: pytest.TempPathFactory) -> BlockRun:
    """The README block, run once in a network namespace of its own."""
    binaries()  # skip (fail under CI) when not built; the block's build line is then a no-op
    if not shutil.which("unshare") or subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode != 0:
        pytest.fail("`unshare --net` is needed to give the README's fixed ports a network of their own")
    tmp_path = tmp_path_factory.mktemp("readme")
    block = readme_block()
    assert "python my_chatbot.py" in block and "otel-lunary replay --jaeger" in block
    (tmp_path / "my_chatbot.py").write_text(CHATBOT)
    conversation_file, search_file, replay_file = tmp_path / "conversation-id", tmp_path / "search.json", tmp_path / "replay.txt"
    lines = []
    for line in block.splitlines():
        if line.strip() == "python my_chatbot.py":
            line = f'python "{tmp_path}/my_chatbot.py" "{conversation_file}"'
        elif line.startswith("otel-lunary replay"):
            command = line.split("#", 1)[0].strip()
            # Wait (30 s at most) until Jaeger's own search has the conversation, then run the line as written.
            search = (
                "http://localhost:16686/api/traces?service=my-chatbot&lookback=1h&limit=20"
                f'&tags=%7B%22gen_ai.conversation.id%22%3A%22$(cat "{conversation_file}")%22%7D'
            )
            lines.append(f'for attempt in $(seq 120); do curl -fs "{search}" > "{search_file}" && grep -q spanID "{search_file}" && break; sleep 0.25; done')
            line = f'{command} > "{replay_file}" 2>&1 || true'
        lines.append(line)
    script = "set -e\nip link set lo up\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + "\n".join(lines) + "\n"
    logs_dir = tmp_path / "logs"
    logs_dir.mkdir()
    script = script.replace("> jaeger.log", f'> "{logs_dir}/jaeger.log"').replace("> otelcol.log", f'> "{logs_dir}/otelcol.log"')
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    # `python` and `otel-lunary` are the test interpreter's, as in an activated venv.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        ["unshare", "--net", "--fork", "--kill-child", "bash", "-c", f'cd "{REPO}" && exec bash -c "$0"', script],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs_dir.glob("*.log"))
    read = lambda path: path.read_text() if path.exists() else ""  # noqa: E731
    return BlockRun(done, read(conversation_file).strip(), json.loads(read(search_file) or "{}"), read(replay_file), logs)


def test_block_runs_and_jaeger_has_the_conversation(block_run: BlockRun) -> None:
    """Every line of the block succeeds, and Jaeger's search by conversation tag finds the chatbot's turn."""
    run = block_run
    assert run.done.returncode == 0, f"{run.done.stdout[-3000:]}\n{run.done.stderr[-3000:]}\n{run.logs}"
    assert run.conversation_id
    (trace,) = run.search.get("data") or [None]
    assert trace, run.logs
    names = sorted(span["operationName"] for span in trace["spans"])
    assert "feedback" in names and any(name.startswith("chat ") for name in names), names


def test_block_replay_lists_the_conversation(block_run: BlockRun) -> None:
    """The block's last command, `otel-lunary replay --jaeger ... --list`, lists the chatbot's conversation."""
    assert block_run.conversation_id and block_run.conversation_id in block_run.replay_output, block_run.replay_output[-2000:]
