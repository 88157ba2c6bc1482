"""Replay's memory is bounded by the longest line it accepts (issue 13, item 12).

A file without newlines (a sparse 200 MB file here) or a decompression bomb used to be
read whole; lines longer than the limit (``OTEL_LUNARY_REPLAY_MAX_LINE_BYTES``, 64 MiB by
default) are now skipped a chunk at a time with a reason, and the good lines around them
replay. Peak memory is measured in a fresh interpreter (``ru_maxrss``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from fixtures.replay import raw_conversation as raw
from otel_lunary.export.otlp_json import encode_line
from otel_lunary.replay.reader import ENV_MAX_LINE_BYTES, max_line_bytes

MEASURE = """
import io, json, resource, sys
from otel_lunary.cli import build_parser
from otel_lunary.replay.command import replay
args = build_parser(["replay"]).parse_args(["replay", sys.argv[1], "--format", "json"])
out, err = io.StringIO(), io.StringIO()
status = replay(args, out, err)
print(json.dumps({"status": status, "out": out.getvalue(), "err": err.getvalue(),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _replay_measured(path: Path, **env: str) -> dict:
    result = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, env={**os.environ, **env}, check=True, timeout=300)
    return json.loads(result.stdout)


def _baseline_mb(tmp_path: Path) -> float:
    small = tmp_path / "small.jsonl"
    small.write_bytes(encode_line(raw.record()))
    return float(_replay_measured(small)["peak_mb"])


def test_a_huge_line_without_newline_is_skipped_in_bounded_memory(tmp_path: Path) -> None:
    """200 MB with no newline between two good lines: skipped with its reason; memory stays near a small replay's."""
    path = tmp_path / "sparse.jsonl"
    good = encode_line(raw.record())
    with path.open("wb") as handle:
        handle.write(good)
        handle.truncate(len(good) + 200 * 2**20)  # sparse: 200 MB of zero bytes, no newline, no disk used
        handle.seek(0, os.SEEK_END)
        handle.write(b"\n" + good)
    result = _replay_measured(path, **{ENV_MAX_LINE_BYTES: str(2**20)})
    assert result["status"] == 0
    assert f"{path}:2: line longer than {2**20} bytes" in result["err"] and "; skipped" in result["err"]
    assert len(result["out"].splitlines()) == 2  # both conversations of the good lines
    assert result["peak_mb"] < _baseline_mb(tmp_path) + 40, result["peak_mb"]


def test_a_gzip_bomb_is_bounded(tmp_path: Path) -> None:
    """A 200 KB gzip that inflates to 200 MB on one line is skipped without inflating it into memory."""
    path = tmp_path / "bomb.jsonl.gz"
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip container
    chunks = [compressor.compress(encode_line(raw.record()))]
    zeros = b"0" * 2**20
    chunks.extend(compressor.compress(zeros) for _ in range(200))
    chunks.append(compressor.compress(b"\n" + encode_line(raw.record())))
    chunks.append(compressor.flush())
    path.write_bytes(b"".join(chunks))
    assert path.stat().st_size < 2**20
    result = _replay_measured(path, **{ENV_MAX_LINE_BYTES: str(2**20)})
    assert result["status"] == 0 and "line longer than" in result["err"]
    assert len(result["out"].splitlines()) == 2
    assert result["peak_mb"] < _baseline_mb(tmp_path) + 40, result["peak_mb"]


def test_limit_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The limit resolves argument > environment > 64 MiB; a bad value is refused (the command: exit 2, before reading)."""
    assert max_line_bytes(10) == 10
    assert max_line_bytes() == 64 * 2**20
    monkeypatch.setenv(ENV_MAX_LINE_BYTES, "123")
    assert max_line_bytes() == 123 and max_line_bytes(7) == 7
    monkeypatch.setenv(ENV_MAX_LINE_BYTES, "lots")
    with pytest.raises(ValueError, match=ENV_MAX_LINE_BYTES):
        max_line_bytes()
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError):
            max_line_bytes(bad)  # type: ignore[arg-type]
    path = tmp_path / "t.jsonl"
    path.write_bytes(encode_line(raw.record()))
    result = subprocess.run([sys.executable, "-m", "otel_lunary", "replay", str(path)], capture_output=True, text=True, env={**os.environ})
    assert result.returncode == 2 and ENV_MAX_LINE_BYTES in result.stderr and "Traceback" not in result.stderr
