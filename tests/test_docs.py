"""The API reference builds from the docstrings: a broken reference fails the suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import REPO


def test_api_reference_builds_strictly(tmp_path: Path) -> None:
    """``mkdocs build --strict`` succeeds: every ``:::`` entry of docs/api.md names a public
    object that exists, every cross-reference in a docstring resolves, no page links to a
    missing one."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    page = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    assert "track_message" in page and "ExportOptions" in page
