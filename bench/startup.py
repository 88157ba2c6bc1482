"""Section 6: start-up cost: ``import otel_lunary`` and ``otel-lunary --help``, fresh processes.

Each figure is the median of interleaved runs, every run a new interpreter:

- import time of a statement: ``python -X importtime -c "<statement>"``, summing the
  cumulative time of every module the statement itself imported (the lines after a
  marker written just before it, at the top nesting level), and, as a check, the wall
  time of the statement measured inside the process (``perf_counter``);
- the statements: ``import otel_lunary``; ``import otel_lunary`` then its whole public API
  (``from otel_lunary import *``: what an application that tracks pays, the SDK
  included); and the reference, ``import opentelemetry.sdk.trace`` plus the OTLP/HTTP
  span exporter (what any OTel application that exports pays);
- ``otel-lunary --help``: wall time of the whole command, interpreter start included
  (the console script's code: ``from otel_lunary.cli import main``), next to ``python -c
  pass``.

    python bench/startup.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Any

MARK = "otel-lunary-bench-mark"
STATEMENTS = {
    "import otel_lunary": "import otel_lunary",
    "import otel_lunary + its API": "import otel_lunary\nfrom otel_lunary import *",
    "reference: sdk.trace + OTLP/HTTP exporter": (
        "import opentelemetry.sdk.trace\nimport opentelemetry.exporter.otlp.proto.http.trace_exporter"
    ),
}
PROGRAM = """
import sys, time
sys.stderr.write({mark!r} + "\\n")
t0 = time.perf_counter()
{statement}
print(time.perf_counter() - t0)
"""
HELP = "import sys\nfrom otel_lunary.cli import main\nsys.argv[0] = 'otel-lunary'\nsys.exit(main())"


def environment() -> dict[str, str]:
    import common

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(common.ROOT), env.get("PYTHONPATH")]))
    return env


def import_run(statement: str, env: dict[str, str]) -> tuple[float, float, dict[str, float]]:
    """(importtime ms of the statement's imports, in-process wall ms, ms per top-level module)."""
    program = PROGRAM.format(mark=MARK, statement=statement)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", program], capture_output=True, text=True, env=env, check=True)
    lines = proc.stderr.split(MARK, 1)[1].splitlines()
    top: dict[str, float] = {}
    for line in lines:
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:"):].split("|")
        if not name.startswith("  ") and name.strip():  # depth 0: imported by the statement itself
            top[name.strip()] = int(cumulative) / 1000
    return sum(top.values()), float(proc.stdout.split()[-1]) * 1000, top


def wall_run(args: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    import common

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int)
    args = parser.parse_args()
    repeats = args.repeats or (5 if args.quick else 15)
    env = environment()
    names = list(STATEMENTS) + ["otel-lunary --help", "python -c pass"]
    importtime: dict[str, list[float]] = {n: [] for n in STATEMENTS}
    inprocess: dict[str, list[float]] = {n: [] for n in STATEMENTS}
    modules: dict[str, dict[str, list[float]]] = {n: {} for n in STATEMENTS}
    wall: dict[str, list[float]] = {"otel-lunary --help": [], "python -c pass": []}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            if name in STATEMENTS:
                total, measured, top = import_run(STATEMENTS[name], env)
                importtime[name].append(total)
                inprocess[name].append(measured)
                for module, ms in top.items():
                    modules[name].setdefault(module, []).append(ms)
            elif name == "otel-lunary --help":
                wall[name].append(wall_run([sys.executable, "-c", HELP, "--help"], env))
            else:
                wall[name].append(wall_run([sys.executable, "-c", "pass"], env))
    reference = "reference: sdk.trace + OTLP/HTTP exporter"
    result: dict[str, Any] = {"repeats": repeats, "imports": {}, "commands": {}}
    for name in STATEMENTS:
        result["imports"][name] = {
            "importtime_ms": common.stats(importtime[name]),
            "inprocess_ms": common.stats(inprocess[name]),
            "ratio_to_reference": common.stats([a / b for a, b in zip(importtime[name], importtime[reference])]),
            "top_modules_ms": {m: statistics.median(v) for m, v in sorted(modules[name].items(), key=lambda kv: -statistics.median(kv[1]))[:8]},
        }
    for name, values in wall.items():
        result["commands"][name] = {"wall_ms": common.stats(values)}
    common.emit(result)


if __name__ == "__main__":
    sys.exit(main())
