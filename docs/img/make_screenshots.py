"""Take the screenshots docs/export.md shows: Phoenix's session view of a tracked conversation.

Starts a real Phoenix on 127.0.0.1 (as the tests do), sends it the scripted conversation
of ``tests/helpers/phoenix_session.py`` (system prompt, three turns, a tool call, feedback from
this process and from a second one), waits until Phoenix has it, and photographs the
session page in headless Chromium. Needs the test extras (``pip install -e '.[test]'``)
and Debian's ``chromium``.

    python docs/img/make_screenshots.py                 # writes docs/img/phoenix-session.png
    python docs/img/make_screenshots.py --dialect ""    # without OTEL_LUNARY_DIALECTS
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from helpers.phoenix_session import PhoenixUI, converse  # noqa: E402
from helpers.servers import poll_until, start_phoenix  # noqa: E402

PROJECT = "travel-assistant"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
    "--disable-component-update", "--disable-sync", "--hide-scrollbars",
]


def screenshot(url: str, out: Path, *, size: str, budget_ms: int, profile: Path) -> None:
    """One PNG of ``url`` after ``budget_ms`` of (virtual) page time, so the app has rendered."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is not installed (apt-get install -y chromium)")
    out.unlink(missing_ok=True)
    subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={size}",
         f"--virtual-time-budget={budget_ms}", f"--screenshot={out}", url],
        check=True, capture_output=True, timeout=180,
    )
    if not out.is_file() or out.stat().st_size == 0:
        raise SystemExit(f"chromium wrote no screenshot to {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialect", default="openinference", help="OTEL_LUNARY_DIALECTS for the recording ('' for none)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "phoenix-session.png")
    parser.add_argument("--size", default="1440,1500", help="browser window, width,height")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="otel-lunary-screenshots-"))
    os.environ["OTEL_RESOURCE_ATTRIBUTES"] = f"openinference.project.name={PROJECT}"
    os.environ.pop("OTEL_LUNARY_DIALECTS", None)
    if args.dialect:
        os.environ["OTEL_LUNARY_DIALECTS"] = args.dialect
    with start_phoenix(work) as phoenix:
        os.environ["OTEL_LUNARY_PHOENIX_ANNOTATIONS"] = phoenix.url
        conversation = converse(phoenix.url, service_name=PROJECT)
        ui = PhoenixUI(phoenix.url)

        def ready() -> bool | None:
            project_id = ui.project_id(PROJECT)
            session = ui.session(project_id, conversation.thread_id) if project_id else None
            if session is None:
                return None
            turns = ui.turns(session["id"])
            answered = [t for t in turns if t["rootSpan"] and t["rootSpan"]["output"]]
            return True if len(answered) == len(conversation.turns) else None

        poll_until(ready, timeout=90, what="the conversation in Phoenix")
        url = f"{phoenix.url}/redirects/sessions/{urllib.parse.quote(conversation.thread_id, safe='')}"
        screenshot(url, args.out, size=args.size, budget_ms=20000, profile=work / "chromium-profile")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
