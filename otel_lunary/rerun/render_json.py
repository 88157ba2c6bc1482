"""The rerun report as one JSON document (schema: ``RerunReport.as_dict``), for scripts and CI."""

from __future__ import annotations

import json
from typing import TextIO

from otel_lunary.rerun.results import RerunReport


def render(report: RerunReport, out: TextIO) -> None:
    json.dump(report.as_dict(), out, ensure_ascii=False, indent=2, default=str)
    out.write("\n")
