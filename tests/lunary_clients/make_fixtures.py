#!/usr/bin/env python3
"""Regenerate tests/fixtures/lunary-wire/*.jsonl by running the real Lunary SDKs.

    /work/venv/bin/python tests/lunary_clients/make_fixtures.py [--only python,node,browser]

For each client: starts capture_server.py on a free port, runs the client
against it, and writes one line per ingest POST as {"headers": {...}, "body": {...}}
(CORS preflights are left out). Also checks that every id the client returned
shows up as a runId on the wire (after the Python SDK's id rewrite).

Needs: the lunary/openai Python packages (python); `npm ci` done in
tests/lunary_clients/node (node, browser); Debian `chromium` (browser).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "lunary-wire"
APP_ID = "test-app-key"
KEEP_HEADERS = ("authorization", "content-type", "user-agent", "origin")


def py_wire_id(i: str, app_id: str = APP_ID) -> str:
    # lunary/utils.py create_uuid_from_string(str(id) + str(app_id))
    return str(uuid.UUID(hashlib.sha256((i + app_id).encode()).hexdigest()[:32]))


class Capture:
    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="lunary-cap-"))
        self.out = self.tmp / "cap.jsonl"
        url_file = self.tmp / "url"
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "capture_server.py"), "--out", str(self.out), "--url-file", str(url_file)],
            stdout=subprocess.DEVNULL)
        for _ in range(100):
            if url_file.exists() and url_file.read_text().strip():
                break
            time.sleep(0.05)
        self.url = url_file.read_text().strip()

    def records(self):
        if not self.out.exists():
            return []
        return [json.loads(l) for l in self.out.read_text().splitlines() if l.strip()]

    def close(self):
        self.proc.terminate()
        self.proc.wait(5)


def to_fixture(records) -> list[dict]:
    lines = []
    for r in records:
        if r["method"] != "POST":
            continue
        h = {k.lower(): v for k, v in r["headers"].items() if k.lower() in KEEP_HEADERS}
        lines.append({"headers": dict(sorted(h.items())), "body": r["body"]})
    return lines


def write(name: str, lines: list[dict]) -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    with open(FIXTURES / name, "w", encoding="utf-8") as f:
        for l in lines:
            f.write(json.dumps(l, ensure_ascii=False) + "\n")
    n = sum(len(l["body"]["events"]) for l in lines)
    print(f"wrote {FIXTURES / name}: {len(lines)} requests, {n} events")


def check_ids(returned: dict, lines: list[dict], rewrite) -> None:
    wire = {e["runId"] for l in lines for e in l["body"]["events"]}
    parents = {e.get("parentRunId") for l in lines for e in l["body"]["events"]}
    for k, v in returned.items():
        if k.startswith("msg_"):
            assert rewrite(v) in wire, (k, v)
        if k.startswith("thread"):
            assert rewrite(v) in parents, (k, v)
    print("  ids returned by the SDK match the wire ids" + (" after sha256 rewrite" if rewrite is py_wire_id else ""))


def run_client(command, cwd, wire_id, fixture):
    """Run one SDK client against a fresh capture server, check its ids, write its fixture."""
    cap = Capture()
    try:
        res = subprocess.run([*command, "--api-url", cap.url, "--app-id", APP_ID], cwd=cwd,
                             check=True, capture_output=True, text=True, timeout=120)
        time.sleep(0.3)
        lines = to_fixture(cap.records())
    finally:
        cap.close()
    out = json.loads(res.stdout)
    check_ids(out["returned_ids"], lines, wire_id)
    write(fixture, lines)


def run_python():
    run_client([sys.executable, str(HERE / "python_flow.py")], None, py_wire_id, "python-flow.jsonl")


def run_node():
    run_client(["node", "flow.mjs"], HERE / "node", lambda x: x, "node-flow.jsonl")


def run_browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("browser: no chromium, skipped")
        return
    cap = Capture()
    static = subprocess.Popen([sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory",
                               str(HERE / "node")], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = static.stdout.readline().split(" port ")[1].split()[0]
        page = f"http://127.0.0.1:{port}/browser/index.html?api={cap.url}&app={APP_ID}"
        prof = tempfile.mkdtemp(prefix="chromium-")
        res = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                              "--no-first-run", f"--user-data-dir={prof}", "--virtual-time-budget=10000", "--dump-dom",
                              page], capture_output=True, text=True, timeout=120)
        shutil.rmtree(prof, ignore_errors=True)
        assert "DONE " in res.stdout, res.stdout[-500:]
        time.sleep(0.3)
        recs = cap.records()
        assert any(r["method"] == "OPTIONS" for r in recs), "expected a CORS preflight"
        lines = to_fixture(recs)
    finally:
        static.terminate()
        cap.close()
    write("browser-flow.jsonl", lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="python,node,browser")
    which = ap.parse_args().only.split(",")
    for name in which:
        {"python": run_python, "node": run_node, "browser": run_browser}[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
