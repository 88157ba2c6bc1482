"""``otel-lunary rerun`` as a user runs it: a subprocess, Ctrl-C, the progress bar, usage errors.

The fake model runs in this process; the command runs in a child process with the
usual variables (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``OTEL_LUNARY_FILE_PATH``).
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fixtures.rerun_recordings import Recording
from otel_lunary._fake_llm import TERSE_MODEL, FakeLLM
from otel_lunary.replay import assemble_file
from helpers.servers import poll_until

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "rerun.md"


def environment(llm: FakeLLM, record_to: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_"))}
    env.update(
        PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
        OPENAI_BASE_URL=llm.base_url,
        OPENAI_API_KEY="test-key",
        OTEL_LUNARY_FILE_PATH=str(record_to),
        NO_COLOR="1",
    )
    return env


def command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "otel_lunary", "rerun", *arguments]


def interrupt_when(process: subprocess.Popen[str], ready: Callable[[], bool], what: str) -> tuple[str, str]:
    """Ctrl-C (SIGINT) ``process`` once ``ready()``; its stdout and stderr. Killed if it outlives the test."""
    try:
        poll_until(lambda: ready() or process.poll() is not None, timeout=60, what=what)
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGINT)
        return process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


class TestInterrupt:
    def test_ctrl_c_keeps_the_finished_conversations(self, recording: Recording, llm: FakeLLM, tmp_path: Path) -> None:
        """SIGINT while the third conversation waits on the model: exit 130, a report of the two done, both recorded."""
        record_to = tmp_path / "rerun.jsonl"
        process = subprocess.Popen(
            command(str(recording.path), "--tag", "quick", "--concurrency", "1", "--model", "stall-after-2", "--format", "json"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment(llm, record_to), cwd=tmp_path,
        )
        out, err = interrupt_when(process, lambda: len(llm.requests) >= 3, "the third request")
        assert process.returncode == 130, err
        report = json.loads(out)
        assert report["summary"]["interrupted"] is True
        done = [c for c in report["conversations"] if c["turns"]]
        stopped = [c for c in report["conversations"] if c["interrupted"]]
        assert len(done) == 2 and all(c["turns"][0]["status"] == "same" for c in done)
        assert len(stopped) == 1 and stopped[0]["turns"] == []
        assert "rerun: 2 turns in 3 conversations: 0 changed, 2 same, 0 errors; 1 not run; interrupted" in err
        recorded = {c.id: c for c in assemble_file(record_to)}
        for conversation in done:
            replies = [m.content for m in recorded[conversation["rerun_conversation_id"]].messages if m.role == "assistant"]
            assert replies == ["You're welcome, enjoy Paris!"]


    def test_concurrency_bounds_the_requests_in_flight(self, recording: Recording, llm: FakeLLM, tmp_path: Path) -> None:
        """--concurrency 2 with every request held: two are sent, the third conversation waits and is never asked."""
        process = subprocess.Popen(
            command(str(recording.path), "--tag", "quick", "--concurrency", "2", "--model", "stall-after-0", "--format", "json", "--no-record"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment(llm, tmp_path / "r.jsonl"), cwd=tmp_path,
        )
        out, err = interrupt_when(process, lambda: len(llm.requests) >= 2, "two requests in flight")
        assert process.returncode == 130, err
        assert len(llm.requests) == 2
        report = json.loads(out)
        assert [c["interrupted"] for c in report["conversations"]] == [True, True, True]


class TestProgress:
    def test_progress_bar_is_drawn_on_a_terminal(self, recording: Recording, llm: FakeLLM, tmp_path: Path) -> None:
        """With stderr on a pseudo-terminal the bar counts turns and conversations; stdout keeps the report."""
        primary, secondary = pty.openpty()
        process = subprocess.Popen(
            command(str(recording.path), "--tag", "quick", "--model", TERSE_MODEL, "--no-record"),
            stdout=subprocess.PIPE, stderr=secondary, text=True, env=environment(llm, tmp_path / "r.jsonl"), cwd=tmp_path,
        )
        os.close(secondary)
        seen = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # the child closed its end
                    break
                if not chunk:
                    break
                seen += chunk
            elif process.poll() is not None:
                break
        os.close(primary)
        out = process.communicate(timeout=60)[0]
        assert process.returncode == 0
        assert "rerun [" in seen.decode() and "3/3 turns · 3/3 conversations" in seen.decode()
        assert "rerun [" not in out and out.rstrip().splitlines()[-1].startswith("rerun: 3 turns in 3 conversations: 0 changed, 3 same, 0 errors")

    def test_no_progress_bar_when_stderr_is_not_a_terminal(self, recording: Recording, llm: FakeLLM, tmp_path: Path) -> None:
        """Piped stderr (CI logs) gets no bar, only the report on stdout."""
        done = subprocess.run(
            command(str(recording.path), "--tag", "quick", "--model", TERSE_MODEL, "--no-record"),
            capture_output=True, text=True, env=environment(llm, tmp_path / "r.jsonl"), cwd=tmp_path, timeout=120, check=False,
        )
        assert done.returncode == 0 and done.stderr == ""
        assert "turn 1  = same" in done.stdout


class TestUsage:
    def test_without_an_api_key_it_says_so_and_exits_2(self, recording: Recording, llm: FakeLLM, tmp_path: Path) -> None:
        """No OPENAI_API_KEY: a usage error naming the missing key, before any request."""
        env = environment(llm, tmp_path / "r.jsonl")
        del env["OPENAI_API_KEY"]
        done = subprocess.run(command(str(recording.path)), capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False)
        assert done.returncode == 2 and "OPENAI_API_KEY" in done.stderr
        assert llm.requests == []

    @pytest.mark.parametrize(
        ("arguments", "message"),
        [
            (["--tools", "missing.json"], "--tools: cannot read missing.json"),
            (["--system-prompt", "missing.txt"], "--system-prompt: cannot read missing.txt"),
            (["--limit", "0"], "--limit must be at least 1"),
            (["--concurrency", "0"], "concurrency must be at least 1"),
            (["--since", "yesterday-ish"], "yesterday-ish"),
        ],
    )
    def test_bad_options_exit_2_with_the_reason(self, recording: Recording, llm: FakeLLM, tmp_path: Path, arguments: list[str], message: str) -> None:
        """Each bad option is named in one line on stderr, exit status 2."""
        done = subprocess.run(command(str(recording.path), *arguments), capture_output=True, text=True, env=environment(llm, tmp_path / "r.jsonl"), cwd=tmp_path, timeout=120, check=False)
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert llm.requests == []

    def test_an_unreadable_source_exits_1(self, llm: FakeLLM, tmp_path: Path) -> None:
        """A source that does not exist: nothing to rerun, exit 1."""
        done = subprocess.run(command(str(tmp_path / "nope.jsonl")), capture_output=True, text=True, env=environment(llm, tmp_path / "r.jsonl"), cwd=tmp_path, timeout=120, check=False)
        assert done.returncode == 1 and "nope.jsonl" in done.stderr


def normalised(text: str) -> list[str]:
    """Output lines with what differs between runs (ids, milliseconds, seconds) masked."""
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>", text)
    text = re.sub(r"\d+ ms", "<n> ms", text)
    text = re.sub(r"\(\d+\.\d s\)", "(<t> s)", text)
    return [line.rstrip() for line in text.strip().splitlines()]


class TestDocs:
    def test_the_demo_rerun_in_the_docs_is_what_the_command_prints(self, llm: FakeLLM, tmp_path: Path) -> None:
        """docs/rerun.md's first example, run for real on a fresh demo recording, prints the same lines."""
        shown = DOCS.read_text(encoding="utf-8").split("$ otel-lunary rerun --model terse\n", 1)[1].split("```", 1)[0]
        env = environment(llm, tmp_path / "demo" / "otel-lunary-traces.jsonl")
        demo = subprocess.run([sys.executable, "-m", "otel_lunary", "demo", "--dir", "demo", "--no-replay"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False)
        assert demo.returncode == 0, demo.stderr
        done = subprocess.run(command("--model", TERSE_MODEL), capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert normalised(done.stdout) == normalised(shown)
