"""Rerun helpers: the ``otel-lunary rerun`` command body in this process, with its JSON report."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import otel_lunary as lunary
from otel_lunary._fake_llm import FakeLLM
from otel_lunary.cli import build_parser
from otel_lunary.rerun.command import rerun


def run_rerun(source: Path, llm: FakeLLM, *options: str, record_to: Path | None = None) -> tuple[int, dict[str, Any], str]:
    """Rerun ``source`` against the fake model with ``options``: exit status, JSON report, stderr.

    Records into ``record_to`` (a file) or, without it, not at all (``--no-record``).
    """
    argv = ["rerun", str(source), "--base-url", llm.base_url, "--format", "json", *options]
    if record_to is None:
        argv.append("--no-record")
    args = build_parser(argv).parse_args(argv)
    provider = lunary.configure(exporter="file", file_path=str(record_to)) if record_to is not None else None
    out, err = io.StringIO(), io.StringIO()
    try:
        status = rerun(args, out, err, provider=provider)
    finally:
        lunary.shutdown()
    return status, json.loads(out.getvalue()) if out.getvalue() else {}, err.getvalue()
