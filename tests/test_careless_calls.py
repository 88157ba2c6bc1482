"""Issue 13 item 16 (SDK): what a careless caller or operator passes never raises into the
app, never silently loses what was valid, and is reported once, not per batch.

- ``flush``/``shutdown`` timeouts: None means the default, a non-number is reported and
  the default used, inf/NaN/negative are clamped to a bounded value;
- ``OTEL_LUNARY_EXIT_TIMEOUT=inf`` is refused with a warning, not a traceback at exit;
- feedback with one bad key (``{"thumb": [...]}``) records the other keys and reports it;
- an unwritable default file is reported once, not once per batch.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import otel_lunary as lunary
from otel_lunary import _health
from otel_lunary.attributes import GEN_AI_EVALUATION_NAME, LUNARY_FEEDBACK
from helpers import REPO

pytestmark = pytest.mark.usefixtures("clean_otel_env")

def messages_in(path: Path) -> int:
    """How many message spans the OTLP JSON Lines file holds."""
    if not path.exists():
        return 0
    count = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        for resource in json.loads(line)["resourceSpans"]:
            for scope in resource["scopeSpans"]:
                count += sum(1 for span in scope["spans"] if span["name"].startswith("message "))
    return count


class TestTimeouts:
    @pytest.mark.parametrize(
        ("timeout", "reported"),
        [(None, False), (2, False), ("1", True), (b"1", True), (True, True), ([], True), (math.inf, True), (math.nan, True), (-1, True)],
        ids=["None", "2", "str", "bytes", "bool", "list", "inf", "nan", "negative"],
    )
    def test_flush_and_shutdown_never_raise_whatever_the_timeout(self, tmp_path, timeout, reported):
        path = tmp_path / "traces.jsonl"
        _health.reset()
        lunary.configure(exporter="file", file_path=str(path))
        lunary.open_thread().track_message({"role": "user", "content": "hi"})
        flushed = lunary.flush(timeout)
        assert isinstance(flushed, bool)
        lunary.shutdown(timeout)
        assert (lunary.stats().get("invalid_arguments", 0) > 0) is reported
        if not (isinstance(timeout, (int, float)) and timeout < 0):
            # the default (None, non-numbers, NaN) and inf (clamped, not zero) wait for the write
            assert flushed is True
            assert messages_in(path) == 1


class TestExitTimeout:
    def test_inf_exit_timeout_is_refused_with_a_warning_not_a_traceback(self, tmp_path):
        path = tmp_path / "traces.jsonl"
        script = textwrap.dedent("""
            import otel_lunary as lunary
            lunary.open_thread().track_message({"role": "user", "content": "hi"})
        """)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update(PYTHONPATH=str(REPO), OTEL_LUNARY_EXIT_TIMEOUT="inf", OTEL_LUNARY_FILE_PATH=str(path))
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        assert "OTEL_LUNARY_EXIT_TIMEOUT" in done.stderr  # the operator is told which setting was ignored
        assert messages_in(path) == 1  # the exit hook ran, with the default budget


class TestFeedback:
    @pytest.mark.parametrize("thumb", [["up"], {"up": 1}, "sideways", 1])
    def test_a_bad_thumb_is_reported_and_the_rest_recorded(self, recorded, thumb, caplog):
        thread = lunary.open_thread()
        msg_id = thread.track_message({"role": "user", "content": "hi"})
        lunary.track_feedback(msg_id, {"thumb": thumb, "rating": 4, "comment": "nice"})
        feedback = recorded.all()[-1]
        assert LUNARY_FEEDBACK in feedback.attributes, "the feedback call was dropped"
        assert [e.attributes[GEN_AI_EVALUATION_NAME] for e in feedback.events] == ["rating", "comment"]
        assert json.loads(feedback.attributes[LUNARY_FEEDBACK]) == {"rating": 4, "comment": "nice"}
        assert lunary.stats()["invalid_arguments"] == 1
        assert "thumb" in caplog.text

    def test_a_key_whose_str_raises_is_left_out(self, recorded):
        class Unprintable:
            def __str__(self) -> str:
                raise RuntimeError("no")

            def __hash__(self) -> int:
                return 1

        thread = lunary.open_thread()
        msg_id = thread.track_message({"role": "user", "content": "hi"})
        lunary.track_feedback(msg_id, {Unprintable(): 1, "thumb": "up"})
        feedback = recorded.all()[-1]
        assert [e.attributes[GEN_AI_EVALUATION_NAME] for e in feedback.events] == ["thumb"]
        assert lunary.stats()["invalid_arguments"] == 1


class TestUnwritableFile:
    def test_an_unwritable_default_file_is_reported_once_not_per_batch(self, tmp_path, monkeypatch, caplog):
        """The default file in the working directory cannot be written (here a directory has
        its name): every batch fails and is counted, but the log says so once (the file
        exporter logs write errors at most once a minute)."""
        monkeypatch.chdir(tmp_path)
        (tmp_path / "otel-lunary-traces.jsonl").mkdir()
        _health.reset()
        caplog.set_level(logging.WARNING, logger="otel_lunary.export")
        lunary.configure(exporter="file")
        thread = lunary.open_thread()
        for i in range(5):
            thread.track_message({"role": "user", "content": f"hi {i}"})
            assert lunary.flush(5.0) is False
        lunary.shutdown()
        assert lunary.stats()["spans_dropped"] == 10  # each question's message and its turn (ended by the flush)
        warnings = [r for r in caplog.records if r.name == "otel_lunary.export" and "could not write" in r.getMessage()]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
