"""The command's outputs and filters, run through ``otel-lunary replay`` on a fixture file."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from fixtures.replay import raw_conversation as raw
from helpers.replay import run
from otel_lunary.cli import build_parser
from otel_lunary.export.otlp_json import encode_line
from otel_lunary.replay.command import replay
from otel_lunary.replay.render_terminal import render as render_terminal
from otel_lunary.replay import assemble_file


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    path = tmp_path / "traces.jsonl"
    path.write_bytes(encode_line(raw.record()))
    return path


class TestFormats:
    def test_terminal_reads_like_a_chat(self, trace_file: Path) -> None:
        """The transcript shows roles, content in order, the thumbs-down and the event."""
        status, out, _ = run(str(trace_file), "-c", raw.CONVERSATION)
        assert status == 0
        positions = [out.index(text) for text in ("You are a weather bot.", "Weather in Paris?", "get_weather", "open-document", "It is 14°C in Paris.", "👎", "And tomorrow?")]
        assert positions == sorted(positions)
        assert "\x1b[" not in out

    def test_terminal_colour_only_on_request(self, trace_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """ANSI colour appears when colour is on and never with NO_COLOR set on a TTY."""
        conversations = assemble_file(trace_file)
        coloured = io.StringIO()
        render_terminal(conversations, coloured, colour=True)
        assert "\x1b[" in coloured.getvalue()

        class Tty(io.StringIO):
            def isatty(self) -> bool:
                return True

        monkeypatch.setenv("NO_COLOR", "1")
        tty = Tty()
        render_terminal(conversations, tty)
        assert "\x1b[" not in tty.getvalue()

    def test_json_lines_one_object_per_conversation(self, trace_file: Path) -> None:
        """JSON output is one object per conversation with items, feedback and calls."""
        _, out, _ = run(str(trace_file), "--format", "json")
        objects = [json.loads(line) for line in out.splitlines()]
        assert [o["conversation_id"] for o in objects] == [raw.CONVERSATION, raw.OTHER_CONVERSATION]
        items = objects[0]["items"]
        assert [i["type"] for i in items].count("event") == 1
        assert items[5]["feedback"] == {"thumb": "down", "comment": "too vague"}
        assert items[1]["calls"][0]["model"] == "gpt-4o-mini-2024-07-18"

    def test_openai_messages(self, trace_file: Path) -> None:
        """OpenAI format keeps roles, content, tool_calls and tool_call_id, one line per thread."""
        _, out, _ = run(str(trace_file), "--format", "openai", "-c", raw.CONVERSATION)
        (line,) = out.splitlines()
        messages = json.loads(line)["messages"]
        assert [m["role"] for m in messages] == [role for role, _ in raw.EXPECTED_MESSAGES]
        assert messages[2]["tool_calls"] == [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]
        assert messages[3] == {"role": "tool", "content": '{"temp_c": 14}', "tool_call_id": "call_1"}

    def test_markdown(self, trace_file: Path) -> None:
        """Markdown has a heading per thread and quoted message text."""
        _, out, _ = run(str(trace_file), "--format", "markdown")
        assert f"# Thread `{raw.CONVERSATION}`" in out and "> It is 14°C in Paris." in out

    def test_output_file(self, trace_file: Path, tmp_path: Path) -> None:
        """``-o`` writes the output to a file."""
        from otel_lunary.replay.command import run as run_command

        target = tmp_path / "out.html"
        args = build_parser(["replay"]).parse_args(["replay", str(trace_file), "--format", "html", "-o", str(target)])
        assert run_command(args) == 0
        assert target.read_text(encoding="utf-8").startswith("<!doctype html>")


class TestListAndFilters:
    def test_list_shows_threads(self, trace_file: Path) -> None:
        """--list has one row per thread: first message, count, users, tags, feedback."""
        _, out, _ = run(str(trace_file), "--list")
        rows = out.splitlines()
        assert len(rows) == 3
        assert all(text in rows[1] for text in (raw.CONVERSATION, " 7 ", "alice", "support,weather", "thumb=down", "Weather in Paris?"))

    @pytest.mark.parametrize(
        ("options", "expected"),
        [
            (["--feedback", "thumb=down"], [raw.CONVERSATION]),
            (["--feedback", "thumb=up"], [raw.OTHER_CONVERSATION]),
            (["--feedback", "rating"], [raw.CONVERSATION]),
            (["--user", "bob"], [raw.OTHER_CONVERSATION]),
            (["--tag", "weather"], [raw.CONVERSATION]),
            (["--conversation", raw.OTHER_CONVERSATION], [raw.OTHER_CONVERSATION]),
            (["--since", "2026-01-01T00:00:13"], [raw.OTHER_CONVERSATION]),
            (["--until", "2026-01-01T00:00:05"], [raw.CONVERSATION]),
            (["--since", "2027-01-01"], []),
        ],
    )
    def test_filters(self, trace_file: Path, options: list[str], expected: list[str]) -> None:
        """Each filter keeps exactly the threads it describes."""
        _, out, _ = run(str(trace_file), "--format", "json", *options)
        assert [json.loads(line)["conversation_id"] for line in out.splitlines()] == expected

    def test_bad_time_is_a_usage_error(self, trace_file: Path) -> None:
        """An unparseable --since exits 2 with a message."""
        status, _, err = run(str(trace_file), "--since", "yesterday-ish")
        assert status == 2 and "not a time" in err

    def test_default_source_missing_says_what_to_do(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """With no SOURCE and no default file, replay exits 1 and suggests the demo."""
        monkeypatch.setenv("OTEL_LUNARY_FILE_PATH", str(tmp_path / "none.jsonl"))
        status, _, err = run()
        assert status == 1 and "otel-lunary demo" in err
