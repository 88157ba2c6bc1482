"""The streaming reader: bad input reported with file and line, compression, rotation."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from fixtures.replay import raw_conversation as raw
from otel_lunary.export.otlp_json import encode_line
from otel_lunary.replay import Problem, assemble_file
from otel_lunary.replay.reader import expand_paths, read_file


def good_lines() -> list[bytes]:
    """The raw fixture, one span per line."""
    return [encode_line([span]) for span in raw.record()]


def messages_of(path: Path) -> list[tuple[str, str | None]]:
    conversation = next(c for c in assemble_file(path) if c.id == raw.CONVERSATION)
    return [(m.role, m.content) for m in conversation.messages]


class TestUnreadableInput:
    def test_bad_lines_are_reported_with_file_and_line_and_skipped(self, tmp_path: Path) -> None:
        """Not-JSON, wrong JSON and a truncated last line are reported; every good line still replays."""
        lines = good_lines()
        path = tmp_path / "broken.jsonl"
        path.write_bytes(lines[0] + b"this is not json\n" + b"".join(lines[1:5]) + b'{"hello": "world"}\n' + b"".join(lines[5:]) + lines[0][:40])
        problems: list[Problem] = []
        conversation_messages = [
            (m.role, m.content) for c in assemble_file(path, on_problem=problems.append) if c.id == raw.CONVERSATION for m in c.messages
        ]
        assert conversation_messages == raw.EXPECTED_MESSAGES
        total = len(lines) + 3
        assert [(p.source, p.line) for p in problems] == [(str(path), 2), (str(path), 7), (str(path), total)]
        assert "not valid JSON" in problems[0].message and "resourceSpans" in problems[1].message
        assert "truncated" in problems[2].message

    def test_span_without_ids_is_reported_and_the_rest_of_its_line_kept(self, tmp_path: Path) -> None:
        """A span lacking spanId is skipped with its line; its siblings on that line still count."""
        request = json.loads(encode_line(raw.record()))
        spans = request["resourceSpans"][0]["scopeSpans"][0]["spans"]
        system_span = next(s for s in spans if s["name"] == "message system")
        del system_span["spanId"]
        path = tmp_path / "t.jsonl"
        path.write_text(json.dumps(request) + "\n")
        problems: list[Problem] = []
        spans_read = list(read_file(path, problems.append))
        assert len(spans_read) == len(spans) - 1
        assert [(p.line, "spanId" in p.message) for p in problems] == [(1, True)]
        assert messages_of(path) == raw.EXPECTED_MESSAGES[1:]

    def test_missing_file_is_a_problem_not_a_crash(self, tmp_path: Path) -> None:
        """A path that does not exist is reported as unreadable."""
        problems: list[Problem] = []
        assert list(read_file(tmp_path / "nope.jsonl", problems.append)) == []
        assert "cannot open" in problems[0].message


class TestFileKinds:
    def test_gzip_file_replays(self, tmp_path: Path) -> None:
        """A gzip-compressed JSON Lines file reads like the plain one."""
        path = tmp_path / "t.jsonl.gz"
        with gzip.open(path, "wb") as out:
            out.writelines(good_lines())
        assert messages_of(path) == raw.EXPECTED_MESSAGES

    def test_zstd_file_replays(self, tmp_path: Path) -> None:
        """A zstd-compressed file reads when the zstandard package is there."""
        zstandard = pytest.importorskip("zstandard")
        path = tmp_path / "t.jsonl.zst"
        path.write_bytes(zstandard.ZstdCompressor().compress(b"".join(good_lines())))
        assert messages_of(path) == raw.EXPECTED_MESSAGES

    def test_rotated_backups_are_read_with_their_file(self, tmp_path: Path) -> None:
        """``x.jsonl.1`` (and a gzipped collector backup) are read along with ``x.jsonl``."""
        lines = good_lines()
        third = len(lines) // 3
        (tmp_path / "x.jsonl.1").write_bytes(b"".join(lines[:third]))
        with gzip.open(tmp_path / "x-2026-01-01T00-00-00.000.jsonl.gz", "wb") as out:
            out.writelines(lines[third : 2 * third])
        (tmp_path / "x.jsonl").write_bytes(b"".join(lines[2 * third :]))
        (tmp_path / "xy.jsonl").write_bytes(b"garbage\n")
        assert len(expand_paths([tmp_path / "x.jsonl"])) == 3
        assert messages_of(tmp_path / "x.jsonl") == raw.EXPECTED_MESSAGES

    def test_directory_reads_every_trace_file(self, tmp_path: Path) -> None:
        """A directory source reads each JSON Lines file in it."""
        lines = good_lines()
        (tmp_path / "a.jsonl").write_bytes(b"".join(lines[:7]))
        (tmp_path / "b.jsonl").write_bytes(b"".join(lines[7:]))
        assert messages_of(tmp_path) == raw.EXPECTED_MESSAGES


def test_numeric_user_id_from_another_producer_renders(tmp_path, capsys):
    """A user.id sent as a number (another SDK) replays in every format, shown as text."""
    from otel_lunary.cli import main

    attributes = [
        {"key": "gen_ai.conversation.id", "value": {"stringValue": "c-num"}},
        {"key": "lunary.span.type", "value": {"stringValue": "message"}},
        {"key": "lunary.message.role", "value": {"stringValue": "user"}},
        {"key": "user.id", "value": {"intValue": "42"}},
        {"key": "gen_ai.input.messages", "value": {"stringValue": '[{"role":"user","parts":[{"type":"text","content":"hi"}]}]'}},
    ]
    span = {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "message user",
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000000000000", "attributes": attributes}
    source = tmp_path / "numeric-user.jsonl"
    source.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}) + "\n")
    for arguments in (["--format", "terminal"], ["--format", "markdown"], ["--format", "html"], ["--list"]):
        assert main(["replay", str(source), *arguments]) == 0, arguments
        assert "42" in capsys.readouterr().out, arguments
