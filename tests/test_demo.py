"""``otel-lunary demo`` end to end, as a user runs it: a subprocess, offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_demo(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_"))}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "otel_lunary", "demo", "--dir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env, check=False,
    )


class TestDemo:
    def test_demo_prints_the_conversation_and_writes_its_files(self, tmp_path: Path) -> None:
        """The demo exits 0, replays the whole scripted conversation and leaves the trace file and HTML page."""
        result = run_demo(tmp_path)
        assert result.returncode == 0, result.stderr
        out = result.stdout
        expected_in_order = [
            "You are a friendly weather assistant.",
            "Hi! Can you help me plan my trip to Paris?",
            "◆ event open-document",
            "What's the weather like in Paris today?",
            "⚙ tool get_weather",
            "↳ calls get_weather",
            "🔧 tool ← call_weather_1",
            "👎",
            "Thanks, that's all!",
            "◆ event close-chat",
        ]
        positions = [out.index(text) for text in expected_in_order]
        assert positions == sorted(positions)
        assert "feedback history: thumb=up → thumb removed → thumb=down" in out
        assert (tmp_path / "demo" / "otel-lunary-traces.jsonl").stat().st_size > 0
        page = (tmp_path / "demo" / "otel-lunary-demo.html").read_text(encoding="utf-8")
        assert "What&#x27;s the weather like in Paris today?" in page and "👎" in page
        assert result.stderr == ""

    def test_demo_without_openai_explains_the_install(self, tmp_path: Path) -> None:
        """Without the openai package the demo exits 1 and says what to install."""
        code = "import sys; sys.modules['openai'] = None; from otel_lunary.cli import main; sys.exit(main(sys.argv[1:]))"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        result = subprocess.run(
            [sys.executable, "-c", code, "demo", "--dir", str(tmp_path / "demo")],
            capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env, check=False,
        )
        assert result.returncode == 1
        assert "pip install 'otel-lunary[openai]'" in result.stderr
