"""The README's "Send to Jaeger through a Collector" block runs as written.

The block is taken from README.md and run by bash from the repository root, in a network
namespace of its own (`unshare --net`, loopback only), so its fixed ports (4317, 4318,
13133, 14317, 16686) cannot meet another test's servers. Two things stand in for the
reader: `python my_chatbot.py` runs a chatbot written here (the otel-lunary API with the
offline fake LLM, configured only by the block's OTEL_* variables), and the `otel-lunary
replay` line is repeated until the conversation shows, for at most 30 s, because the
Collector forwards in batches. The two servers' log files go to the test's temporary
folder rather than the repository root, and an exit trap stops them if a line fails.
Everything else is the README's text.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from collector_support import REPO, binaries

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


def test_block_builds_runs_and_replays(tmp_path: Path) -> None:
    """The README's commands start Jaeger and the Collector, and replay lists the chatbot's conversation."""
    binaries()  # skip (fail under CI) when not built; the block's build line is then a no-op
    if not shutil.which("unshare") or subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode != 0:
        pytest.fail("`unshare --net` is needed to give the README's fixed ports a network of their own")
    block = readme_block()
    assert "python my_chatbot.py" in block and "otel-lunary replay --jaeger" in block
    (tmp_path / "my_chatbot.py").write_text(CHATBOT)
    conversation_file = tmp_path / "conversation-id"
    lines = []
    for line in block.splitlines():
        if line.strip() == "python my_chatbot.py":
            line = f'python "{tmp_path}/my_chatbot.py" "{conversation_file}"'
        elif line.startswith("otel-lunary replay"):
            command = line.split("#", 1)[0].strip()
            line = (
                f'for attempt in $(seq 120); do out="$({command})"; '
                f'grep -qF "$(cat "{conversation_file}")" <<< "$out" && break; sleep 0.25; done; echo "$out"'
            )
        lines.append(line)
    script = "set -e\nip link set lo up\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + "\n".join(lines) + "\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    # `python` and `otel-lunary` are the test interpreter's, as in an activated venv.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    work = tmp_path / "logs"
    work.mkdir()
    done = subprocess.run(
        ["unshare", "--net", "--fork", "--kill-child", "bash", "-c", f'cd "{REPO}" && exec bash -c "$0"', script.replace("> jaeger.log", f'> "{work}/jaeger.log"').replace("> otelcol.log", f'> "{work}/otelcol.log"')],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in work.glob("*.log"))
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n{logs}"
    conversation_id = conversation_file.read_text().strip()
    assert conversation_id and conversation_id in done.stdout, f"{done.stdout[-3000:]}\n{logs}"
